"""The demo's decisions: saved state, the return to the app, milestones, messages (no I/O)."""

from __future__ import annotations

import pytest

from ehiconnect.cli.demo_logic import (
    DEMO_REDIRECT_URI,
    DemoCredentials,
    DemoFailed,
    activity,
    furthest,
    milestones_passed,
    parse_return,
    parse_state,
    port_taken_message,
    render_state,
)
from ehiconnect.tracker.ledger import JobState

CREDENTIALS = DemoCredentials(
    org_id="7b5ab043-7113-4735-bab8-e0354535ec8f",
    public_id="public_test_abc",
    private_key="private_test_xyz",
    fhir_api_token="token",
)


def test_state_round_trips_and_refuses_what_the_demo_did_not_write() -> None:
    assert parse_state(render_state(CREDENTIALS)) == CREDENTIALS
    assert parse_state("not json") is None
    assert parse_state("[]") is None
    assert parse_state('{"org_id": "o", "public_id": "public_test_a"}') is None
    live = render_state(CREDENTIALS).replace("private_test_", "private_live_")
    assert parse_state(live) is None  # the demo only ever uses test keys
    older = '{"org_id": "o", "public_id": "public_test_a", "private_key": "private_test_b"}'
    assert parse_state(older) == DemoCredentials("o", "public_test_a", "private_test_b", "")


def test_return_to_the_app_gives_the_connection_or_the_error() -> None:
    connected = parse_return(
        f"{DEMO_REDIRECT_URI}?org_connection_id=c-1&connection_status=authorized&brand_id=b"
    )
    assert (connected.org_connection_id, connected.connection_status) == ("c-1", "authorized")
    with pytest.raises(DemoFailed, match="access_denied: the patient said no"):
        parse_return(
            f"{DEMO_REDIRECT_URI}?error=access_denied&error_description=the+patient+said+no"
        )
    with pytest.raises(DemoFailed, match="unexpected page"):
        parse_return("http://127.0.0.1:8400/v1/bridge/callback?code=secret")
    with pytest.raises(DemoFailed, match="no org_connection_id"):
        parse_return(f"{DEMO_REDIRECT_URI}?connection_status=authorized")


def test_milestones_skipped_by_polling_are_reported_once_and_in_order() -> None:
    assert milestones_passed(None, JobState.EXPORT_READY) == [
        JobState.CONSENTED,
        JobState.EXPORT_REQUESTED,
        JobState.EXPORT_READY,
    ]
    # downloading and ingesting are activities, not milestones
    assert milestones_passed(JobState.EXPORT_READY, JobState.INGESTED) == [
        JobState.DOWNLOADED,
        JobState.INGESTED,
    ]
    assert milestones_passed(JobState.INGESTED, JobState.INGESTED) == []
    assert milestones_passed(JobState.CONSENTED, JobState.FAILED) == []


def test_a_job_sent_back_does_not_lower_what_was_reached() -> None:
    # an export failed and was requested again: the job went back to consented
    reached = furthest(JobState.EXPORT_REQUESTED, JobState.CONSENTED)
    assert reached == JobState.EXPORT_REQUESTED
    assert milestones_passed(reached, JobState.EXPORT_REQUESTED) == []
    assert furthest(None, JobState.CONSENTED) == JobState.CONSENTED
    assert furthest(JobState.CONSENTED, JobState.FAILED) == JobState.CONSENTED


def test_activity_reports_the_exports_progress() -> None:
    text = activity(
        JobState.EXPORT_REQUESTED, "attachments", {"resources": 120, "attachment_bytes": 2_500_000}
    )
    assert text == "platform exporting (attachments): 120 resources, 2.5 MB of attachments"
    assert "webhook" in activity(None, None, {})


def test_port_message_names_the_port_and_the_way_out() -> None:
    failure = port_taken_message(
        "platform API", "127.0.0.1", 8400, "--api-port", "EHICONNECT_API__PORT"
    )
    assert failure.message == "port 8400 on 127.0.0.1 (platform API) is already in use"
    assert "`ehiconnect demo --api-port 8401`" in failure.hint
    assert "EHICONNECT_API__PORT" in failure.hint
    assert failure.exit_code == 1
