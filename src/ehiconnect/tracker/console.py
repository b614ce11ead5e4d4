"""The tracker's console under `/console` of `ehiconnect tracker serve`: its own login.

    Mount("/console", app=build_tracker_console(current))   # in receiver.build_tracker_app

Built on the console kit (`ConsoleKit(realm="tracker")`): accounts, sessions in PostgreSQL,
CSRF and lockout are the platform console's, but the accounts are the tracker's own (created
with `ehiconnect tracker console add-user`), and a platform console session does not open it.
It imports no platform feature: only the kit and the tracker's own modules.

Pages: overview (jobs by state, failures by reason), the job ledger (per patient, consent →
export → download → ingest → notify with times) and a job's page, failures by reason, health
system and step (what `ehiconnect tracker failures` prints), the consent log, notifications.
Everything is read-only; signing in and out are audit-logged by the kit.
"""

# No `from __future__ import annotations`: the routes are defined inside a function, and FastAPI
# must see their Annotated dependencies as objects, not as names it cannot resolve.
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from starlette.responses import Response

from ehiconnect.clock import Clock
from ehiconnect.consolekit.sessions import SignedIn
from ehiconnect.consolekit.web import ConsoleKit
from ehiconnect.db.database import Database
from ehiconnect.errors import InvalidRequest, NotFound
from ehiconnect.tracker import console_queries as queries
from ehiconnect.tracker import report
from ehiconnect.tracker.runtime import TrackerRuntime

PREFIX = "/console"
REALM = "tracker"
TEMPLATES = Path(__file__).resolve().parent / "console_templates"
_ID = re.compile(r"^[A-Za-z0-9._:@|/+-]{1,256}$")
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")


def _choice(value: str | None, allowed: tuple[str, ...], name: str) -> str | None:
    if not value:
        return None
    if value not in allowed:
        raise InvalidRequest(f"{name} must be one of {', '.join(allowed)}")
    return value


def _ident(value: str | None, name: str) -> str | None:
    if not value:
        return None
    if not _ID.match(value):
        raise InvalidRequest(f"{name} is not an id this console shows")
    return value


# Query parameters every listing takes.
PageNumber = Annotated[int, Query(ge=1, le=queries.MAX_PAGE)]
Filter = Annotated[str | None, Query(max_length=256)]
Current = Callable[[], TrackerRuntime]


def build_tracker_console(current: Current) -> FastAPI:
    """The console as an app to mount at `/console`; `current` gives the opened runtime."""

    def database_of(request: Request) -> Database:
        return current().database

    def clock_of(request: Request) -> Clock:
        return current().clock

    kit = ConsoleKit(
        realm=REALM,
        title="ehiconnect tracker",
        prefix=PREFIX,
        database_of=database_of,
        clock_of=clock_of,
        template_dirs=[TEMPLATES],
        nav=[
            ("Overview", "/"),
            ("Jobs", "/jobs"),
            ("Failures", "/failures"),
            ("Consent log", "/consents"),
            ("Notifications", "/notifications"),
        ],
        modes=False,
    )
    router = APIRouter(route_class=kit.route_class, include_in_schema=False)
    kit.add_auth_routes(router)
    _add_summary_pages(router, kit, current)
    _add_ledger_pages(router, kit, current)
    _add_log_pages(router, kit, current)
    return kit.mountable(router)


def _add_summary_pages(router: APIRouter, kit: ConsoleKit, current: Current) -> None:
    """The overview (jobs by state, failures by reason) and failures by reason, health system and
    step."""
    who_dep = Annotated[SignedIn, Depends(kit.require)]

    @router.get("/")
    async def overview(request: Request, who: who_dep) -> Response:
        async with current().database.transaction() as session:
            status = await report.status(session)
            failed = await report.failures(session)
        return kit.render(
            request, who, "tracker/overview.html", {"status": status, "failed": failed}
        )

    @router.get("/failures")
    async def failures(request: Request, who: who_dep) -> Response:
        async with current().database.transaction() as session:
            failed = await report.failures(session)
        return kit.render(request, who, "tracker/failures.html", {"failed": failed})


def _add_ledger_pages(router: APIRouter, kit: ConsoleKit, current: Current) -> None:
    """The job ledger (per patient: consent, export, download, ingest, notify, with times) and a
    job's own page."""
    who_dep = Annotated[SignedIn, Depends(kit.require)]

    @router.get("/jobs")
    async def jobs(
        request: Request,
        who: who_dep,
        state: Filter = None,
        external_id: Filter = None,
        connection: Filter = None,
        page: PageNumber = 1,
    ) -> Response:
        async with current().database.transaction() as session:
            found = await queries.job_ledger(
                session,
                state=_choice(state, queries.STATES, "state"),
                external_id=_ident(external_id, "external_id"),
                connection=_ident(connection, "connection"),
                page=page,
            )
        return kit.render(
            request,
            who,
            "tracker/jobs.html",
            {
                "p": found,
                "rows": [(job, queries.stages(job)) for job in found.rows],
                "states": queries.STATES,
                "state": state or "",
                "external_id": external_id or "",
                "connection": connection or "",
                "filtered": bool(state or external_id or connection),
            },
        )

    @router.get("/jobs/{job_id}")
    async def job(request: Request, who: who_dep, job_id: str) -> Response:
        found = None
        if _JOB_ID.match(job_id):
            async with current().database.transaction() as session:
                found = await queries.job_detail(session, job_id)
        if found is None:
            raise NotFound(f"no tracker job {job_id[:64]}; pick one from the job list")
        return kit.render(request, who, "tracker/job.html", found)


def _add_log_pages(router: APIRouter, kit: ConsoleKit, current: Current) -> None:
    """The consent log and the notifications sent."""
    who_dep = Annotated[SignedIn, Depends(kit.require)]

    @router.get("/consents")
    async def consents(
        request: Request,
        who: who_dep,
        kind: Filter = None,
        external_id: Filter = None,
        connection: Filter = None,
        page: PageNumber = 1,
    ) -> Response:
        async with current().database.transaction() as session:
            found = await queries.consent_log(
                session,
                kind=_choice(kind, queries.CONSENT_KINDS, "kind"),
                external_id=_ident(external_id, "external_id"),
                connection=_ident(connection, "connection"),
                page=page,
            )
        return kit.render(
            request,
            who,
            "tracker/consents.html",
            {
                "p": found,
                "kinds": queries.CONSENT_KINDS,
                "kind": kind or "",
                "external_id": external_id or "",
                "connection": connection or "",
                "filtered": bool(kind or external_id or connection),
            },
        )

    @router.get("/notifications")
    async def notifications(request: Request, who: who_dep, page: PageNumber = 1) -> Response:
        async with current().database.transaction() as session:
            found = await queries.notifications(session, page=page)
        return kit.render(request, who, "tracker/notifications.html", {"p": found})
