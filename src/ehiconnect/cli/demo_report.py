"""The demo's closing summary: as a dict (`--json`) and as text for the terminal.

The keys and tokens in it are the demo organization's test credentials, printed on purpose so
they can be reused; everything else is ids, counts, paths and synthetic patient ids.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from ehiconnect.cli.demo_flow import Collected
from ehiconnect.cli.demo_logic import duckdb_count, tracker_env
from ehiconnect.cli.demo_setup import DemoOrg
from ehiconnect.sandbox import HealthSystem, Persona
from ehiconnect.settings import Settings

TYPE_COLUMNS = 3  # resource type / count pairs per row of the table


def summary_of(
    settings: Settings,
    org: DemoOrg,
    system: HealthSystem,
    persona: Persona,
    collected: Collected,
    seconds: float,
    setup_seconds: float = 0.0,
    consent_seconds: float = 0.0,
) -> dict[str, Any]:
    keys = org.credentials
    urls = collected.urls
    connection_id = collected.connection.org_connection_id
    by_type = dict(sorted(collected.stats.get("total_by_resource_type", {}).items()))
    total = int(collected.stats.get("total_resources", 0))
    return {
        "seconds": round(seconds, 1),
        "stats": {"total_resources": total, "total_by_resource_type": by_type},
        "bytes": collected.file_size,
        "sha256": collected.file_sha256,
        "durations": {
            "setup": round(setup_seconds, 3),
            "consent": round(consent_seconds, 3),
            **collected.stage_seconds,
            "total": round(seconds, 3),
        },
        "ingested": collected.ingested,
        "org_id": keys.org_id,
        "org_reused": org.reused,
        "system": system.slug,
        "persona": persona.username,
        "patient_id": collected.patient_id,
        "org_connection_id": connection_id,
        "task_id": collected.task_id,
        "tracker_job_id": collected.job_id,
        "total_resources": total,
        "resources_by_type": by_type,
        "file": {
            "location": collected.file_location,
            "size": collected.file_size,
            "sha256": collected.file_sha256,
        },
        "parquet_dir": collected.parquet_dir,
        "observations_in_fhir_store": collected.observations_in_store,
        "urls": urls,
        "try": [
            f"curl -H 'Authorization: Bearer {keys.fhir_api_token}' '{collected.observations_url}'",
            f"curl -u '{keys.public_id}:{keys.private_key}' "
            f"{urls['api']}/v1/bridge/org_connection/{connection_id}",
            duckdb_count(collected.parquet_dir, "Observation"),
        ],
        "keys": {
            "public_id": keys.public_id,
            "private_key": keys.private_key,
            "webhook_endpoint_id": org.endpoint_id,
            "webhook_secret": org.webhook_secret,
            "tracker_fhir_api_token": keys.fhir_api_token,
        },
        "tracker_env": tracker_env(keys, org.webhook_secret),
        "data_dir": str(settings.data_dir.resolve()),
    }


def print_summary(out: Console, summary: dict[str, Any], keep_running: bool) -> None:
    file = summary["file"]
    out.print(
        f"\n[bold green]Done in {summary['seconds']} s[/bold green]: {summary['persona']}'s "
        f"record went from the {summary['system']} sandbox through the platform into the tracker."
    )
    for label, value in (
        ("org_connection_id", summary["org_connection_id"]),
        ("export task id", summary["task_id"]),
        ("tracker job id", summary["tracker_job_id"]),
        ("export file", f"{file['location']} ({file['size']:,} bytes)"),
        ("sha256", file["sha256"]),
        ("Parquet", summary["parquet_dir"]),
        (
            "FHIR store",
            f"{summary['observations_in_fhir_store']} Observations of patient "
            f"{summary['patient_id']}",
        ),
    ):
        _line(out, f"  {label:<18} {value}")
    out.print(resource_table(summary["resources_by_type"], summary["total_resources"]))
    when = (
        "now (Ctrl-C stops everything)" if keep_running else "with `ehiconnect demo --keep-running`"
    )
    if "console" in summary:
        login = summary["console"]
        out.print(
            "[bold]The console[/bold] (an operator account for this run; password shown once):"
        )
        _line(out, f"  {login['url']}  sign in as {login['email']}  password {login['password']}")
    out.print(f"[bold]Try it[/bold] {when}:")
    for line in summary["try"]:
        _line(out, f"  {line}")
    out.print("[bold]Keys of the demo organization[/bold] (test mode; reused on the next run):")
    keys = summary["keys"]
    for name in ("public_id", "private_key", "webhook_secret", "tracker_fhir_api_token"):
        _line(out, f"  {name:<24} {keys[name]}")
    out.print("To run this tracker under `ehiconnect up`, set:")
    for name, value in summary["tracker_env"].items():
        _line(out, f"  {name}='{value}'")


def resource_table(by_type: dict[str, int], total: int) -> Table:
    """Resources per type, several types per row so the table stays short."""
    table = Table(title=f"{total} resources in the export", title_justify="left")
    for _ in range(TYPE_COLUMNS):
        table.add_column("type")
        table.add_column("count", justify="right")
    items = list(by_type.items())
    rows = -(-len(items) // TYPE_COLUMNS)
    for row in range(rows):
        cells: list[str] = []
        for column in range(TYPE_COLUMNS):
            index = column * rows + row  # read down each column, like `ls`
            kind, count = items[index] if index < len(items) else ("", "")
            cells += [kind, str(count)]
        table.add_row(*cells)
    return table


def _line(out: Console, text: str) -> None:
    out.print(text, soft_wrap=True, markup=False, highlight=False)
