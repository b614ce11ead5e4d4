"""What `ehiconnect demo` decides, as plain functions over values (no I/O).

The saved demo organization (`<data_dir>/demo.json`), the patient's return to the app's redirect
URI, which milestones a tracker job has passed, the one-line activity shown beside the spinner,
and the messages for a port already taken.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ehiconnect.tracker.ledger import ORDER, JobState

DEMO_ORG_NAME = "ehiconnect demo"
# Where the demo "app" says its patients come back to. The demo's headless browser stops at
# this redirect and reads the result from it, so nothing needs to serve it.
DEMO_REDIRECT_URI = "http://localhost:3000/connected"
DEMO_ORIGIN = "http://localhost:3000"
STATE_FILE = "demo.json"


class DemoFailed(Exception):
    """The demo cannot go on: `message` says what happened, `hint` what to do."""

    def __init__(self, message: str, hint: str = "", exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code


@dataclass(frozen=True)
class DemoCredentials:
    """The demo organization's test key pair and the demo tracker's FHIR API token, kept
    between runs (the platform stores private keys hashed: this file is the only copy)."""

    org_id: str
    public_id: str
    private_key: str
    fhir_api_token: str = ""


def parse_state(text: str) -> DemoCredentials | None:
    """The saved credentials, or None when the file is not a demo state the demo wrote."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    fields = [data.get(name) for name in ("org_id", "public_id", "private_key")]
    if not all(isinstance(value, str) and value for value in fields):
        return None
    org_id, public_id, private_key = (str(value) for value in fields)
    if not (public_id.startswith("public_test_") and private_key.startswith("private_test_")):
        return None
    token = data.get("fhir_api_token")
    return DemoCredentials(
        org_id=org_id,
        public_id=public_id,
        private_key=private_key,
        fhir_api_token=token if isinstance(token, str) else "",
    )


def render_state(credentials: DemoCredentials) -> str:
    return json.dumps(asdict(credentials), indent=2) + "\n"


@dataclass(frozen=True)
class Connected:
    """What the platform's callback hands the app on success (the redirect's query)."""

    org_connection_id: str
    brand_id: str | None
    endpoint_id: str | None
    connection_status: str | None


def parse_return(location: str, redirect_uri: str = DEMO_REDIRECT_URI) -> Connected:
    """Read the platform's redirect back to the app; DemoFailed when it carries an error."""
    if not location.startswith(redirect_uri):
        raise DemoFailed(
            f"the platform sent the patient to an unexpected page ({urlsplit(location).path})",
            "run again with --verbose to see the platform's logs",
        )
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    if "error" in query:
        raise DemoFailed(
            f"the consent flow failed: {query['error']}: {query.get('error_description', '')}",
            "see docs/consent.md for what each error means",
        )
    connection_id = query.get("org_connection_id")
    if not connection_id:
        raise DemoFailed("the platform's redirect carries no org_connection_id")
    return Connected(
        org_connection_id=connection_id,
        brand_id=query.get("brand_id"),
        endpoint_id=query.get("endpoint_id"),
        connection_status=query.get("connection_status"),
    )


# The tracker job states worth a line of their own once passed, and what that line says.
MILESTONES: dict[JobState, str] = {
    JobState.CONSENTED: "tracker got the patient.connection_success webhook and logged the consent",
    JobState.EXPORT_REQUESTED: "tracker confirmed the connection and requested export {task_id}",
    JobState.EXPORT_READY: "platform finished the export; its signed patient.ehi_export_success "
    "webhook reached the tracker",
    JobState.DOWNLOADED: "tracker downloaded the file and checked its size and sha256",
    JobState.INGESTED: "tracker ingested it into its FHIR store and Parquet",
}


def milestones_passed(previous: JobState | None, current: JobState) -> list[JobState]:
    """Milestones after `previous` up to `current`, in order (polling can skip states).

    `previous` is the furthest state already reported, so a job sent back (an export that failed
    and is requested again) does not report a milestone twice.
    """
    if current not in ORDER:
        return []
    start = ORDER.index(previous) + 1 if previous in ORDER else 0
    end = ORDER.index(current) + 1
    return [state for state in ORDER[start:end] if state in MILESTONES]


def furthest(previous: JobState | None, current: JobState) -> JobState | None:
    """The further of two job states along the happy path (FAILED is not on it)."""
    if current not in ORDER:
        return previous
    if previous is None or ORDER.index(current) > ORDER.index(previous):
        return current
    return previous


def activity(state: JobState | None, export_phase: str | None, progress: dict[str, Any]) -> str:
    """What is happening now, for the line beside the spinner."""
    if state is None:
        return "waiting for the platform's patient.connection_success webhook to reach the tracker"
    if state == JobState.CONSENTED:
        return "tracker confirming the connection with the platform"
    if state == JobState.EXPORT_REQUESTED:
        resources = int(progress.get("resources", 0) or 0)
        megabytes = int(progress.get("attachment_bytes", 0) or 0) / 1e6
        return (
            f"platform exporting ({export_phase or 'queued'}): {resources} resources, "
            f"{megabytes:.1f} MB of attachments"
        )
    if state in (JobState.EXPORT_READY, JobState.DOWNLOADING):
        return "tracker downloading the export"
    if state in (JobState.DOWNLOADED, JobState.INGESTING):
        return "tracker ingesting into its FHIR store and Parquet"
    return f"tracker job {state}"


def port_taken_message(role: str, host: str, port: int, option: str, env: str) -> DemoFailed:
    return DemoFailed(
        f"port {port} on {host} ({role}) is already in use",
        f"stop what listens there (an `ehiconnect up` or another demo?), or choose another "
        f"port: `ehiconnect demo {option} {port + 1}` (or set {env})",
    )


def tracker_env(credentials: DemoCredentials, webhook_secret: str) -> dict[str, str]:
    """The settings that give `ehiconnect up` the same tracker the demo ran."""
    return {
        "EHICONNECT_TRACKER__PUBLIC_ID": credentials.public_id,
        "EHICONNECT_TRACKER__PRIVATE_KEY": credentials.private_key,
        "EHICONNECT_TRACKER__WEBHOOK_SECRETS": json.dumps([webhook_secret]),
        "EHICONNECT_TRACKER__FHIR_API_TOKEN": credentials.fhir_api_token,
        "EHICONNECT_TRACKER__PARQUET_ENABLED": "true",
    }


def duckdb_count(parquet_dir: str, resource_type: str) -> str:
    """A command line counting one resource type in the Parquet files (distinct ids: each
    collection writes its own files, so a resource collected twice has two rows)."""
    files = f"{parquet_dir}/{resource_type}/*.parquet"
    query = f"select count(distinct id) from read_parquet('{files}')"  # noqa: S608 - shown, not run
    return f'duckdb -c "{query}"'
