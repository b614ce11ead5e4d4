"""`ehiconnect console ...`: accounts of the web console at /console."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ehiconnect.cli.common import (
    console,
    err_console,
    listing,
    load_settings,
    print_json,
    with_runtime,
)
from ehiconnect.consolekit import accounts
from ehiconnect.consolekit.models import ROLE_CUSTOMER, ROLE_OPERATOR
from ehiconnect.db.models import Organization
from ehiconnect.errors import NotFound
from ehiconnect.runtime import Runtime

REALM = "platform"
MAX_STDIN_PASSWORD = 4096

console_app = typer.Typer(help="Accounts of the web console (/console): operators and customers.")


def register(app: typer.Typer) -> None:
    app.add_typer(console_app, name="console")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline(MAX_STDIN_PASSWORD + 2)
        return line.rstrip("\r\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@console_app.command("add-user")
def add_user(
    email: Annotated[str, typer.Argument(help="The person's email address (their login)")],
    operator: Annotated[
        bool, typer.Option("--operator", help="An operator: sees every organization")
    ] = False,
    org: Annotated[
        str | None, typer.Option("--org", help="A customer of this org_id: sees only it")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input")
    ] = False,
) -> None:
    """Create a console account. The password is prompted for (or read from stdin)."""
    if operator == (org is not None):
        err_console.print("[red]error:[/red] give exactly one of --operator or --org ID")
        raise typer.Exit(2)
    password = _read_password(password_stdin)
    settings = load_settings()

    async def work(runtime: Runtime) -> str:
        async with runtime.database.transaction() as session:
            if org is not None and await session.get(Organization, org) is None:
                raise NotFound(f"no organization has org_id {org}; see `ehiconnect orgs list`")
            user = await accounts.add_user(
                session,
                runtime.clock,
                realm=REALM,
                email=email,
                password=password,
                role=ROLE_OPERATOR if operator else ROLE_CUSTOMER,
                org_id=org,
            )
            return user.email

    address = with_runtime(settings, work)
    role = "operator" if operator else f"customer of {org}"
    console.print(f"console account {address} created ({role}); sign in at /console/login")


@console_app.command("unlock")
def unlock(email: Annotated[str, typer.Argument(help="The account's email address")]) -> None:
    """Lift a lockout after too many wrong passwords."""
    settings = load_settings()

    async def work(runtime: Runtime) -> None:
        async with runtime.database.transaction() as session:
            await accounts.unlock(session, runtime.clock, realm=REALM, email=email)

    with_runtime(settings, work)
    console.print(f"console account {email.strip()} unlocked")


@console_app.command("users")
def users(json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """List console accounts."""
    settings = load_settings()

    async def work(runtime: Runtime) -> list[dict[str, object]]:
        async with runtime.database.transaction() as session:
            return [
                {
                    "email": user.email,
                    "role": user.role,
                    "org_id": user.org_id,
                    "locked_until": user.locked_until.isoformat() if user.locked_until else None,
                    "last_login_at": (
                        user.last_login_at.isoformat() if user.last_login_at else None
                    ),
                }
                for user in await accounts.list_users(session, REALM)
            ]

    rows = with_runtime(settings, work)
    if json:
        print_json(rows)
        return
    table = listing("email", "role", "org_id", "locked until", "last login")
    for row in rows:
        table.add_row(*(str(row[key] or "") for key in row))
    console.print(table)
