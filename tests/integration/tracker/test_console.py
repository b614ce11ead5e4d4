"""The tracker's console over real HTTP (`tracker serve`'s app on loopback, a real PostgreSQL):
its own accounts, the ledger, failures, consent log and notifications, CSRF, bad input, and
that it stays apart from the platform (accounts, sessions, imports)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ehiconnect.cli.tracker import register
from ehiconnect.consolekit import accounts
from ehiconnect.consolekit.models import ROLE_OPERATOR
from ehiconnect.testing.servers import ThreadedServer
from ehiconnect.tracker import ledger_store as store
from ehiconnect.tracker.ledger import JobState, Step
from ehiconnect.tracker.runtime import TrackerRuntime
from tests.integration.console.support import PASSWORD, ConsoleClient, console_client
from tests.integration.tracker.conftest import drain
from tests.integration.tracker.fake_platform import FakePlatform
from tests.integration.tracker.helpers import forward, job_of, widget_complete


async def add_account(tracker: TrackerRuntime, email: str, *, realm: str = "tracker") -> None:
    async with tracker.database.transaction() as session:
        await accounts.add_user(
            session,
            tracker.clock,
            realm=realm,
            email=email,
            password=PASSWORD,
            role=ROLE_OPERATOR,
            org_id=None,
        )


async def failed_jobs(tracker: TrackerRuntime) -> list[str]:
    """Two export failures at one health system, one download failure at another."""
    now = tracker.clock.now()
    made = []
    async with tracker.database.transaction() as session:
        for brand, step, reason in [
            ("brand-harbor", Step.EXPORT, "scope_patient_missing"),
            ("brand-harbor", Step.EXPORT, "scope_patient_missing"),
            ("brand-summit", Step.DOWNLOAD, "attempts_exhausted"),
        ]:
            job = await store.create_job(
                session, now, org_connection_id=f"c-{brand}", external_id="pat-9", brand_id=brand
            )
            if step == Step.DOWNLOAD:
                for state in (JobState.EXPORT_REQUESTED, JobState.EXPORT_READY):
                    store.move(job, state, now)
            store.fail(job, step, reason, f"{reason} happened", now)
            job.notified_at = now
            await store.log_event(
                session, job.job_id, now, Step.NOTIFY, "sent", {"channels": ["email"]}
            )
            made.append(job.job_id)
    return made


@pytest.fixture
def browser(receiver: ThreadedServer) -> Iterator[ConsoleClient]:
    with console_client(receiver.url) as http:
        yield ConsoleClient(http)


async def test_an_account_of_the_tracker_follows_a_patient_from_consent_to_notification(
    platform: FakePlatform,
    receiver: ThreadedServer,
    tracker: TrackerRuntime,
    browser: ConsoleClient,
) -> None:
    await add_account(tracker, "support@customer.example")
    connection_id = platform.add_connection()
    assert (
        forward(receiver, widget_complete(connection_id, external_id="user-42")).status_code == 202
    )
    await drain(tracker)
    job = await job_of(tracker, connection_id)
    failed = await failed_jobs(tracker)

    assert browser.get("/console/jobs").status_code == 303  # not signed in
    browser.login("support@customer.example")

    overview = browser.get("/console/")
    assert overview.status_code == 200
    assert "support@customer.example (operator)" in overview.text
    assert 'name="mode"' not in overview.text  # one mode: no test/live switch
    assert "scope_patient_missing" in overview.text  # failures by reason

    ledger = browser.get("/console/jobs?external_id=user-42")
    assert ledger.status_code == 200
    assert job.job_id in ledger.text
    assert "export_requested" in ledger.text
    assert failed[0] not in ledger.text  # another patient's job is filtered out

    detail = browser.get(f"/console/jobs/{job.job_id}")
    assert detail.status_code == 200
    assert connection_id in detail.text
    assert "Export requested" in detail.text
    assert "widget.complete" in detail.text  # the connection's consent log
    assert "not yet" in detail.text  # later stages not reached

    failures = browser.get("/console/failures")
    assert failures.status_code == 200
    assert "3 failed jobs" in failures.text
    assert "brand-summit" in failures.text
    assert "attempts_exhausted" in failures.text
    assert f"/console/jobs/{failed[2]}" in failures.text

    consents = browser.get(f"/console/consents?connection={connection_id}")
    assert consents.status_code == 200
    assert consents.text.count(connection_id) >= 2  # the widget hand-off, then confirmed
    assert "confirmed" in consents.text
    assert "<td>test</td>" in consents.text  # the mode of the consent

    notices = browser.get("/console/notifications")
    assert notices.status_code == 200
    assert notices.text.count("email") >= 3
    assert failed[1] in notices.text


async def test_platform_accounts_and_sessions_do_not_open_the_tracker_console(
    receiver: ThreadedServer, tracker: TrackerRuntime, browser: ConsoleClient
) -> None:
    await add_account(tracker, "ops@example.org", realm="platform")

    refused = browser.try_login("ops@example.org", PASSWORD)
    assert refused.status_code == 401

    await add_account(tracker, "support@customer.example")
    browser.login("support@customer.example")
    cookie = browser.http.cookies["ehiconnect_tracker_console"]
    # The same session presented under the platform console's name is not the tracker's.
    with console_client(receiver.url) as other:
        other.cookies.set("ehiconnect_platform_console", cookie)
        assert other.get("/console/").status_code == 303


async def test_forms_without_the_sessions_csrf_token_are_refused(
    receiver: ThreadedServer, tracker: TrackerRuntime, browser: ConsoleClient
) -> None:
    await add_account(tracker, "support@customer.example")
    browser.login("support@customer.example")

    forged = browser.post("/console/logout")
    assert forged.status_code == 403
    assert "csrf_failed" in forged.text
    assert browser.get("/console/").status_code == 200  # still signed in
    as_json = browser.http.post("/console/logout", json={"csrf_token": browser.csrf()})
    assert as_json.status_code == 403
    assert as_json.json()["error"] == "csrf_failed"

    out = browser.post("/console/logout", {"csrf_token": browser.csrf()})
    assert out.status_code == 303
    assert browser.get("/console/").status_code == 303


async def test_five_wrong_passwords_lock_the_account(
    receiver: ThreadedServer, tracker: TrackerRuntime, browser: ConsoleClient
) -> None:
    await add_account(tracker, "support@customer.example")
    for _ in range(4):
        assert browser.try_login("support@customer.example", "wrong password!").status_code == 401
    assert browser.try_login("support@customer.example", "wrong password!").status_code == 429
    locked = browser.try_login("support@customer.example", PASSWORD)
    assert locked.status_code == 429
    assert "locked" in locked.text


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/console/jobs?state=bogus", 400, "invalid_request"),
        ("/console/jobs?page=abc", 400, "invalid_request"),
        ("/console/jobs?page=0", 400, "invalid_request"),
        ("/console/consents?kind=x", 400, "invalid_request"),
        ("/console/consents?external_id=" + "a" * 300, 400, "invalid_request"),
        ("/console/jobs?connection=%3Cscript%3E", 400, "invalid_request"),
        ("/console/jobs/not-a-job", 404, "not_found"),
        ("/console/jobs/" + "0" * 32, 404, "not_found"),
        ("/console/nothing-here", 404, "not_found"),
    ],
)
async def test_bad_input_answers_the_envelope_not_a_500(
    receiver: ThreadedServer,
    tracker: TrackerRuntime,
    browser: ConsoleClient,
    path: str,
    status: int,
    code: str,
) -> None:
    await add_account(tracker, "support@customer.example")
    browser.login("support@customer.example")
    response = browser.http.get(path)
    assert response.status_code == status, response.text
    assert response.json()["success"] is False
    assert response.json()["error"] == code
    page = browser.get(path)  # a browser gets the same answer as a page
    assert page.status_code == status
    assert page.headers["content-type"].startswith("text/html")


def test_the_tracker_imports_no_platform_feature() -> None:
    probe = (
        "import sys, json, ehiconnect.tracker.receiver, ehiconnect.tracker.console; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('ehiconnect'))))"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, check=True, text=True
        ).stdout
    )
    assert "ehiconnect.tracker.console" in loaded
    platform_features = (
        "ehiconnect.api",
        "ehiconnect.console.app",
        "ehiconnect.console.queries",
        "ehiconnect.orgs",
        "ehiconnect.connections",
        "ehiconnect.consent",
        "ehiconnect.catalog",
        "ehiconnect.runtime",
    )
    assert [m for m in loaded if m.startswith(platform_features)] == []


def test_cli_adds_a_tracker_console_account(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EHICONNECT_DATABASE_URL", database_url)
    monkeypatch.setenv("EHICONNECT_DATA_DIR", str(tmp_path / "data"))
    cli = typer.Typer()
    cli.command("noop")(lambda: None)
    register(cli)
    runner = CliRunner()

    added = runner.invoke(
        cli,
        ["tracker", "console", "add-user", "Support@Customer.example", "--password-stdin"],
        input=PASSWORD + "\n",
    )
    assert added.exit_code == 0, added.output
    short = runner.invoke(
        cli, ["tracker", "console", "add-user", "b@c.example", "--password-stdin"], input="x\n"
    )
    assert short.exit_code == 1
    assert "password" in short.output
    listed = runner.invoke(cli, ["tracker", "console", "users", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [u["email"] for u in json.loads(listed.output)] == ["support@customer.example"]
