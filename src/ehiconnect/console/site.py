"""What every platform console page module shares: the kit (realm "platform"), the signed-in
dependencies, and how a page reaches the runtime.

`app` (overview, failures, connections, exports, deliveries) and `manage` (webhook endpoints,
keys, catalog) both build on it; `app.mount_console` serves them all.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from ehiconnect.clock import Clock
from ehiconnect.consolekit.sessions import SignedIn
from ehiconnect.consolekit.web import ConsoleKit
from ehiconnect.db.database import Database
from ehiconnect.runtime import Runtime

PREFIX = "/console"


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def database_of(request: Request) -> Database:
    return runtime_of(request).database


def clock_of(request: Request) -> Clock:
    return runtime_of(request).clock


kit = ConsoleKit(
    realm="platform",
    title="ehiconnect console",
    prefix=PREFIX,
    database_of=database_of,
    clock_of=clock_of,
    template_dirs=[FilePath(__file__).resolve().parent / "templates"],
    nav=[
        ("Overview", "/"),
        ("Failure review", "/failures"),
        ("Connections", "/connections"),
        ("Exports", "/exports"),
        ("Webhooks", "/webhooks"),
        ("Keys", "/keys"),
    ],
    operator_nav=[("Catalog", "/catalog")],
)
Who = Annotated[SignedIn, Depends(kit.require)]
PostedBy = Annotated[SignedIn, Depends(kit.require_post)]


def new_router() -> APIRouter:
    return APIRouter(prefix=PREFIX, route_class=kit.route_class, include_in_schema=False)
