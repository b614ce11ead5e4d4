"""`ehiconnect webhooks ...`: manage webhook endpoints, send test events, read attempt logs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from ehiconnect.cli.common import console, listing, load_settings, print_json, with_runtime
from ehiconnect.webhooks import endpoints, history, outbox
from ehiconnect.webhooks.ports import WebhookPorts
from ehiconnect.webhooks.senders import deliverer_for

webhooks_app = typer.Typer(help="Webhook endpoints: add, list, rotate secrets, send tests.")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON")]
EndpointOpt = Annotated[str, typer.Option("--endpoint", help="The endpoint id")]
T = TypeVar("T")


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

    async def work(ports: WebhookPorts) -> endpoints.CreatedEndpoint:
        async with ports.database.transaction() as session:
            return await endpoints.add_endpoint(
                session,
                ports.clock,
                ports.cipher,
                org_id=org,
                api_mode=mode,
                url=url,
                event_types=types,
            )

    created = _run(work)
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

    async def work(ports: WebhookPorts) -> list[endpoints.EndpointView]:
        async with ports.database.transaction() as session:
            return await endpoints.list_every_endpoint(session, org_id=org, api_mode=mode)

    views = _run(work)
    if json:
        print_json([v.as_json() for v in views])
        return
    table = listing("endpoint_id", "org_id", "mode", "url", "events", "status")
    for v in views:
        status = v.status if v.disabled_reason is None else f"{v.status}: {v.disabled_reason}"
        table.add_row(
            v.endpoint_id, v.org_id, v.api_mode, v.url, ",".join(v.event_types) or "*", status
        )
    console.print(table)


@webhooks_app.command("disable")
def disable(endpoint: EndpointOpt, json: JsonFlag = False) -> None:
    """Stop delivering to an endpoint (pending deliveries wait until it is enabled)."""
    _show(_run(_switch(endpoint, enable=False)).as_json(), json)


@webhooks_app.command("enable")
def enable(endpoint: EndpointOpt, json: JsonFlag = False) -> None:
    """Resume delivering to an endpoint."""
    _show(_run(_switch(endpoint, enable=True)).as_json(), json)


def _switch(
    endpoint_id: str, *, enable: bool
) -> Callable[[WebhookPorts], Awaitable[endpoints.EndpointView]]:
    change = endpoints.enable_endpoint if enable else endpoints.disable_endpoint

    async def work(ports: WebhookPorts) -> endpoints.EndpointView:
        async with ports.database.transaction() as session:
            scope = await endpoints.owner_scope(session, endpoint_id)
            return await change(session, ports.clock, scope, endpoint_id)

    return work


@webhooks_app.command("remove")
def remove(endpoint: EndpointOpt, json: JsonFlag = False) -> None:
    """Delete an endpoint with its secrets and delivery history."""

    async def work(ports: WebhookPorts) -> None:
        async with ports.database.transaction() as session:
            scope = await endpoints.owner_scope(session, endpoint)
            await endpoints.remove_endpoint(session, ports.clock, scope, endpoint)

    _run(work)
    _show({"endpoint_id": endpoint, "removed": True}, json)


@webhooks_app.command("rotate-secret")
def rotate_secret(endpoint: EndpointOpt, json: JsonFlag = False) -> None:
    """Issue a new secret; the old one keeps signing too until the grace period ends."""

    async def work(ports: WebhookPorts) -> dict[str, Any]:
        grace = ports.settings.secret_rotation_grace
        async with ports.database.transaction() as session:
            scope = await endpoints.owner_scope(session, endpoint)
            secret = await endpoints.rotate_secret(
                session, ports.clock, ports.cipher, scope, endpoint, grace=grace
            )
        expires = (ports.clock.now() + grace).isoformat()
        return {"endpoint_id": endpoint, "secret": secret, "old_secrets_expire_at": expires}

    _show(_run(work), json)


@webhooks_app.command("test")
def send_test(endpoint: EndpointOpt, json: JsonFlag = False) -> None:
    """Send a webhook.test event to the endpoint now and show the receiver's answer."""

    async def work(ports: WebhookPorts) -> dict[str, Any]:
        async with ports.database.transaction() as session:
            scope = await endpoints.owner_scope(session, endpoint)
            event_id = await outbox.send_test_event(
                session, clock=ports.clock, scope=scope, endpoint_id=endpoint
            )
        async with deliverer_for(ports) as sender:
            await sender.run_pass(event_id=event_id)
        async with ports.database.transaction() as session:
            attempts = await history.list_attempts(session, event_id=event_id, limit=1)
        return {"event_id": event_id, "attempt": attempts[0] if attempts else None}

    result = _run(work)
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

    async def work(ports: WebhookPorts) -> list[dict[str, Any]]:
        async with ports.database.transaction() as session:
            return await history.list_attempts(
                session, endpoint_id=endpoint, event_id=event, limit=limit
            )

    rows = _run(work)
    if json:
        print_json(rows)
        return
    table = listing("attempted_at", "event_id", "#", "status", "ms", "outcome", "error")
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

    async def work(ports: WebhookPorts) -> dict[str, Any]:
        async with ports.database.transaction() as session:
            scope = await history.event_scope(session, event)
            count = await outbox.resend(
                session, clock=ports.clock, scope=scope, event_id=event, endpoint_id=endpoint
            )
        return {"event_id": event, "deliveries": count}

    _show(_run(work), json)


def _run(work: Callable[[WebhookPorts], Awaitable[T]]) -> T:
    """Run `work` with the webhooks feature's ports, as the operator: it acts for whichever
    organization owns the endpoint or event it names (`owner_scope`, `event_scope`)."""
    return with_runtime(load_settings(), lambda runtime: work(runtime.webhooks))


def _show(data: dict[str, Any], json: bool) -> None:
    if json:
        print_json(data)
        return
    for key, value in data.items():
        console.print(f"{key}={value}")
