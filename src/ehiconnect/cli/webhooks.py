"""`ehiconnect webhooks ...`: manage webhook endpoints, send test events, read attempt logs."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from ehiconnect.cli.common import console, load_settings, print_json, with_runtime
from ehiconnect.runtime import Runtime
from ehiconnect.webhooks import endpoints, history, outbox
from ehiconnect.webhooks.tasks import deliverer_for, webhook_settings

webhooks_app = typer.Typer(help="Webhook endpoints: add, list, rotate secrets, send tests.")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON")]
EndpointOpt = Annotated[str, typer.Option("--endpoint", help="The endpoint id")]


def register(app: typer.Typer) -> None:
    app.add_typer(webhooks_app, name="webhooks")


@webhooks_app.command("add")
def add(
    org: Annotated[str, typer.Option(help="The organization's org_id")],
    mode: Annotated[str, typer.Option(help="test or live")],
    url: Annotated[str, typer.Option(help="The receiver's URL")],
    events: Annotated[
        str | None, typer.Option(help="Comma-separated event types (default: every type)")
    ] = None,
    json: JsonFlag = False,
) -> None:
    """Register an endpoint. Its signing secret is shown only once."""
    types = [t.strip() for t in events.split(",") if t.strip()] if events else []

    async def work(runtime: Runtime) -> endpoints.CreatedEndpoint:
        async with runtime.database.transaction() as session:
            return await endpoints.add_endpoint(
                session,
                runtime.clock,
                runtime.cipher,
                org_id=org,
                api_mode=mode,
                url=url,
                event_types=types,
            )

    created = with_runtime(load_settings(), work)
    if json:
        print_json(created.as_json())
        return
    console.print(f"endpoint_id={created.endpoint_id}")
    console.print(f"secret={created.secret}")
    console.print("[yellow]Store the secret now: it is not shown again.[/yellow]")


@webhooks_app.command("list")
def list_(
    org: Annotated[str | None, typer.Option(help="Only this organization")] = None,
    mode: Annotated[str | None, typer.Option(help="Only test or live")] = None,
    json: JsonFlag = False,
) -> None:
    """List endpoints with their status."""

    async def work(runtime: Runtime) -> list[endpoints.EndpointView]:
        async with runtime.database.transaction() as session:
            return await endpoints.list_endpoints(session, org_id=org, api_mode=mode)

    views = with_runtime(load_settings(), work)
    if json:
        print_json([v.as_json() for v in views])
        return
    table = Table("endpoint_id", "org_id", "mode", "url", "events", "status")
    for v in views:
        status = v.status if v.disabled_reason is None else f"{v.status}: {v.disabled_reason}"
        table.add_row(
            v.endpoint_id, v.org_id, v.api_mode, v.url, ",".join(v.event_types) or "*", status
        )
    console.print(table)


@webhooks_app.command("disable")
def disable(endpoint: EndpointOpt, json: JsonFlag = False) -> None:
    """Stop delivering to an endpoint (pending deliveries wait until it is enabled)."""

    async def work(runtime: Runtime) -> endpoints.EndpointView:
        async with runtime.database.transaction() as session:
            return await endpoints.disable_endpoint(session, runtime.clock, endpoint)

    _show(with_runtime(load_settings(), work).as_json(), json)


@webhooks_app.command("enable")
def enable(endpoint: EndpointOpt, json: JsonFlag = False) -> None:
    """Resume delivering to an endpoint."""

    async def work(runtime: Runtime) -> endpoints.EndpointView:
        async with runtime.database.transaction() as session:
            return await endpoints.enable_endpoint(session, runtime.clock, endpoint)

    _show(with_runtime(load_settings(), work).as_json(), json)


@webhooks_app.command("remove")
def remove(endpoint: EndpointOpt, json: JsonFlag = False) -> None:
    """Delete an endpoint with its secrets and delivery history."""

    async def work(runtime: Runtime) -> None:
        async with runtime.database.transaction() as session:
            await endpoints.remove_endpoint(session, runtime.clock, endpoint)

    with_runtime(load_settings(), work)
    _show({"endpoint_id": endpoint, "removed": True}, json)


@webhooks_app.command("rotate-secret")
def rotate_secret(endpoint: EndpointOpt, json: JsonFlag = False) -> None:
    """Issue a new secret; the old one keeps signing too until the grace period ends."""
    settings = load_settings()
    grace = webhook_settings(settings).secret_rotation_grace

    async def work(runtime: Runtime) -> dict[str, Any]:
        async with runtime.database.transaction() as session:
            secret = await endpoints.rotate_secret(
                session, runtime.clock, runtime.cipher, endpoint, grace=grace
            )
        expires = (runtime.clock.now() + grace).isoformat()
        return {"endpoint_id": endpoint, "secret": secret, "old_secrets_expire_at": expires}

    _show(with_runtime(settings, work), json)


@webhooks_app.command("test")
def send_test(endpoint: EndpointOpt, json: JsonFlag = False) -> None:
    """Send a webhook.test event to the endpoint now and show the receiver's answer."""
    settings = load_settings()

    async def work(runtime: Runtime) -> dict[str, Any]:
        async with runtime.database.transaction() as session:
            event_id = await outbox.send_test_event(
                session, jobs=None, clock=runtime.clock, endpoint_id=endpoint
            )
        async with deliverer_for(runtime) as sender:
            await sender.run_pass(event_id=event_id)
        async with runtime.database.transaction() as session:
            attempts = await history.list_attempts(session, event_id=event_id, limit=1)
        return {"event_id": event_id, "attempt": attempts[0] if attempts else None}

    result = with_runtime(settings, work)
    _show(result, json)
    attempt = result["attempt"]
    if attempt is None or attempt["outcome"] != "succeeded":
        raise typer.Exit(1)


@webhooks_app.command("attempts")
def attempts(
    endpoint: Annotated[str | None, typer.Option(help="Only this endpoint")] = None,
    event: Annotated[str | None, typer.Option(help="Only this event id")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first")] = 20,
    json: JsonFlag = False,
) -> None:
    """Show the attempt log: time, status code, latency, response excerpt, error."""

    async def work(runtime: Runtime) -> list[dict[str, Any]]:
        async with runtime.database.transaction() as session:
            return await history.list_attempts(
                session, endpoint_id=endpoint, event_id=event, limit=limit
            )

    rows = with_runtime(load_settings(), work)
    if json:
        print_json(rows)
        return
    table = Table("attempted_at", "event_id", "#", "status", "ms", "outcome", "error")
    for r in rows:
        table.add_row(
            r["attempted_at"],
            r["event_id"],
            str(r["attempt"]),
            str(r["status_code"] or "-"),
            str(r["latency_ms"]),
            r["outcome"],
            r["error"] or "",
        )
    console.print(table)


@webhooks_app.command("resend")
def resend(
    event: Annotated[str, typer.Option(help="The event id")],
    endpoint: Annotated[str | None, typer.Option(help="Only to this endpoint")] = None,
    json: JsonFlag = False,
) -> None:
    """Deliver an event again (same id); the worker sends it."""

    async def work(runtime: Runtime) -> dict[str, Any]:
        async with runtime.database.transaction() as session:
            count = await outbox.resend(
                session,
                jobs=runtime.jobs,
                clock=runtime.clock,
                event_id=event,
                endpoint_id=endpoint,
            )
        return {"event_id": event, "deliveries": count}

    _show(with_runtime(load_settings(), work), json)


def _show(data: dict[str, Any], json: bool) -> None:
    if json:
        print_json(data)
        return
    for key, value in data.items():
        console.print(f"{key}={value}")
