"""A console's web side: templates, the session cookie, CSRF, login and logout, error pages.

    kit = ConsoleKit(realm="platform", title="ehiconnect console", prefix="/console",
                     database_of=..., clock_of=..., template_dirs=[my_templates], nav=[...])
    router = APIRouter(prefix="/console", route_class=kit.route_class)
    kit.add_auth_routes(router)

    @router.get("/things")
    async def things(request: Request, who: SignedIn = Depends(kit.require)) -> Response:
        return kit.render(request, who, "things.html", {...})

    @router.post("/things/{id}/delete")
    async def delete(request: Request, who: SignedIn = Depends(kit.require_post)) -> Response: ...

Pages extend "kit/base.html". Forms carry `{{ csrf_field() }}`; `require_post` refuses a POST
whose token is not the session's (403 `csrf_failed`). The cookie is `HttpOnly`, `SameSite=Lax`,
scoped to the console's path, and `Secure` when the request came over https (directly, or
through a proxy listed in `api.trusted_proxies`).

Errors (`ApiError`) raised in a console route answer an HTML page to a browser and the JSON
envelope to anything else; a request without a live session is sent to the login page (GET) or
answered 401 (other methods). Nothing here imports a product's features: the platform console and
the tracker's use it alike.
"""

from __future__ import annotations

import datetime as dt
import math
import secrets
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from markupsafe import Markup
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from ehiconnect import audit
from ehiconnect.clock import Clock
from ehiconnect.consolekit.accounts import LockoutPolicy, SignInResult, sign_in
from ehiconnect.consolekit.models import ROLE_OPERATOR, ConsoleSession
from ehiconnect.consolekit.passwords import prepare_unknown_email_check
from ehiconnect.consolekit.sessions import (
    SessionPolicy,
    SignedIn,
    close_session,
    csrf_matches,
    load_session,
    open_session,
)
from ehiconnect.db.database import Database
from ehiconnect.errors import ApiError, Forbidden, InvalidRequest, NotFound, Unauthorized

KIT_DIR = Path(__file__).resolve().parent
MODES = ("test", "live")
MAX_FORM_FIELDS = 32
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


class LoginRequired(Exception):
    """No live session: a browser is sent to the login page."""


@dataclass
class ConsoleKit:
    realm: str
    title: str
    prefix: str
    database_of: Callable[[Request], Database]
    clock_of: Callable[[Request], Clock]
    template_dirs: Sequence[Path] = ()
    nav: Sequence[tuple[str, str]] = ()
    """(label, path under the prefix) of the pages in the header."""
    operator_nav: Sequence[tuple[str, str]] = ()
    """Pages only operators see (and only they may open: their routes check the role too)."""
    modes: bool = True
    """Whether pages show the test/live switch (the tracker's console has one mode)."""
    lockout: LockoutPolicy = field(default_factory=LockoutPolicy)
    sessions: SessionPolicy = field(default_factory=SessionPolicy)
    env: jinja2.Environment = field(init=False)

    def __post_init__(self) -> None:
        self.prefix = self.prefix.rstrip("/")
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([*self.template_dirs, KIT_DIR / "templates"]),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.env.filters.update(
            when=format_when, duration=format_duration, size=format_size, pct=format_pct
        )

    # ---- names --------------------------------------------------------------------------------

    @property
    def cookie_name(self) -> str:
        return f"ehiconnect_{self.realm}_console"

    @property
    def login_cookie_name(self) -> str:
        return f"{self.cookie_name}_login"

    def url(self, path: str = "/") -> str:
        return self.prefix + (path if path.startswith("/") else "/" + path)

    def nav_of(self, who: SignedIn | None) -> list[tuple[str, str]]:
        if who is None:
            return []
        extra = self.operator_nav if who.user.role == ROLE_OPERATOR else ()
        return [*self.nav, *extra]

    # ---- wiring -------------------------------------------------------------------------------

    @property
    def route_class(self) -> type[APIRoute]:
        kit = self

        class ConsoleRoute(APIRoute):
            def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
                handle = super().get_route_handler()

                async def guarded(request: Request) -> Response:
                    try:
                        return await handle(request)
                    except LoginRequired:
                        return kit.login_redirect(request)
                    except ApiError as exc:
                        return kit.error_page(request, exc)

                return guarded

        return ConsoleRoute

    def install(self, app: FastAPI, router: APIRouter) -> None:
        """Serve the router and the kit's static files (CSS, the small live-update script)."""
        prepare_unknown_email_check()  # when the app is built, not during its first sign-in
        app.include_router(router)
        app.mount(self.url("/static"), StaticFiles(directory=KIT_DIR / "static"), name=None)

    def mountable(self, router: APIRouter) -> FastAPI:
        """An app of its own to mount at `prefix` (`Mount(kit.prefix, app=...)`) inside another
        ASGI app, e.g. a Starlette one: `router` has no prefix; links, cookies and redirects
        still carry `prefix`. Bad query input answers 400 with the JSON envelope, an unknown
        path 404, never FastAPI's own shapes."""
        prepare_unknown_email_check()  # when the app is built, not during its first sign-in
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
        kit = self

        async def invalid(request: Request, exc: Exception) -> Response:
            return kit.error_page(
                request, InvalidRequest("a parameter of this page is not valid; check the link")
            )

        async def missing(request: Request, exc: Exception) -> Response:
            if getattr(exc, "status_code", 404) == 405:
                return kit.error_page(request, _MethodNotAllowed("this page does not take that"))
            return kit.error_page(request, NotFound("there is no such console page"))

        app.add_exception_handler(RequestValidationError, invalid)
        app.add_exception_handler(StarletteHTTPException, missing)
        app.include_router(router)
        app.mount("/static", StaticFiles(directory=KIT_DIR / "static"), name=None)
        return app

    def add_auth_routes(self, router: APIRouter) -> None:
        """GET/POST login, POST logout and POST mode on `router` (whose prefix is `prefix`)."""
        router.add_api_route("/login", self.login_page, methods=["GET"], include_in_schema=False)
        router.add_api_route("/login", self.login, methods=["POST"], include_in_schema=False)
        router.add_api_route("/logout", self.logout, methods=["POST"], include_in_schema=False)
        if self.modes:
            router.add_api_route(
                "/mode", self.switch_mode, methods=["POST"], include_in_schema=False
            )

    # ---- who is asking ------------------------------------------------------------------------

    async def current(self, request: Request) -> SignedIn | None:
        cached = getattr(request.state, "console_signed_in", None)
        if isinstance(cached, SignedIn):
            return cached
        async with self.database_of(request).transaction() as db:
            found = await load_session(
                db,
                self.clock_of(request),
                request.cookies.get(self.cookie_name),
                realm=self.realm,
                policy=self.sessions,
            )
        request.state.console_signed_in = found
        return found

    async def require(self, request: Request) -> SignedIn:
        """Dependency of every page: the signed-in person, or the login page."""
        found = await self.current(request)
        if found is None:
            raise LoginRequired
        return found

    async def require_post(self, request: Request) -> SignedIn:
        """Dependency of every form action: a live session and its CSRF token in the form."""
        found = await self.require(request)
        # A POST that is not a form carries no token: refused like a forged one.
        token = (await self.form(request)).get("csrf_token") if _is_form(request) else None
        if not csrf_matches(found.session.csrf_token, token if isinstance(token, str) else None):
            await self.audit(
                request, found, "console.csrf_refused", detail={"path": request.url.path}
            )
            raise Forbidden(
                "this form is stale or did not come from the console; reload the page and "
                "submit it again",
                code="csrf_failed",
            )
        return found

    async def form(self, request: Request) -> FormData:
        cached = getattr(request.state, "console_form", None)
        if isinstance(cached, FormData):
            return cached
        if not _is_form(request):
            raise InvalidRequest("send the form as application/x-www-form-urlencoded")
        form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
        request.state.console_form = form
        return form

    async def field(self, request: Request, name: str, *, max_length: int = 1024) -> str:
        value = (await self.form(request)).get(name)
        if not isinstance(value, str) or len(value) > max_length:
            raise InvalidRequest(f"the form field {name} is missing or too long")
        return value

    async def audit(
        self,
        request: Request,
        who: SignedIn | None,
        action: str,
        *,
        org_id: str | None = None,
        org_connection_id: str | None = None,
        task_id: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        async with self.database_of(request).transaction() as db:
            await audit.record(
                db,
                self.clock_of(request),
                actor=actor_of(who),
                action=action,
                org_id=org_id if org_id is not None else (who.user.org_id if who else None),
                org_connection_id=org_connection_id,
                task_id=task_id,
                detail={"realm": self.realm, **(detail or {})},
            )

    # ---- answers ------------------------------------------------------------------------------

    def render(
        self,
        request: Request,
        who: SignedIn | None,
        template: str,
        context: dict[str, Any] | None = None,
        *,
        status: int = 200,
    ) -> HTMLResponse:
        csrf = who.session.csrf_token if who else ""

        def csrf_field() -> Markup:
            return Markup('<input type="hidden" name="csrf_token" value="{}">').format(csrf)

        page = self.env.get_template(template).render(
            kit=self,
            who=who,
            mode=who.session.api_mode if who else None,
            path=request.url.path,
            csrf_field=csrf_field,
            url=self.url,
            page_query=lambda number: urlencode(
                {**dict(request.query_params), "page": str(number)}
            ),
            **(context or {}),
        )
        return HTMLResponse(page, status_code=status, headers=page_headers())

    def redirect(self, path: str) -> RedirectResponse:
        return RedirectResponse(
            self.url(path), status_code=303, headers={"Cache-Control": "no-store"}
        )

    def login_redirect(self, request: Request) -> Response:
        if request.method != "GET":
            return self.error_page(
                request, Unauthorized("your console session has ended; sign in again")
            )
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        return RedirectResponse(
            self.url("/login") + "?next=" + quote(target, safe="/"),
            status_code=303,
            headers={"Cache-Control": "no-store"},
        )

    def error_page(self, request: Request, exc: ApiError) -> Response:
        if "text/html" in request.headers.get("accept", ""):
            who = getattr(request.state, "console_signed_in", None)
            return self.render(
                request,
                who if isinstance(who, SignedIn) else None,
                "kit/error.html",
                {"status": exc.status, "code": exc.code, "description": exc.description},
                status=exc.status,
            )
        return JSONResponse(
            {"success": False, "error": exc.code, "error_description": exc.description},
            status_code=exc.status,
            headers={"Cache-Control": "no-store"},
        )

    def set_cookie(
        self, request: Request, response: Response, name: str, value: str, *, max_age: int
    ) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=self.prefix + "/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="lax",
        )

    def safe_next(self, target: str | None) -> str:
        """Where to go after login: only a path inside the console (no open redirect)."""
        if (
            target
            and target.startswith(self.prefix + "/")
            and not target.startswith("//")
            and "\\" not in target
            and len(target) <= 1024
            and all(32 < ord(ch) < 127 for ch in target)
            and not target.startswith(self.url("/login"))
        ):
            return target
        return self.url("/")

    # ---- login, logout, mode ------------------------------------------------------------------

    async def login_page(self, request: Request, next: str | None = None) -> Response:
        if await self.current(request) is not None:
            return RedirectResponse(self.safe_next(next), status_code=303)
        return self._login_form(request, next, error=None, status=200)

    def _login_form(
        self, request: Request, next: str | None, *, error: str | None, status: int, email: str = ""
    ) -> Response:
        token = secrets.token_urlsafe(32)
        response = self.render(
            request,
            None,
            "kit/login.html",
            {"login_token": token, "next": self.safe_next(next), "error": error, "email": email},
            status=status,
        )
        self.set_cookie(request, response, self.login_cookie_name, token, max_age=3600)
        return response

    async def login(self, request: Request) -> Response:
        form = await self.form(request)
        email, password, token, target = (
            form.get("email"),
            form.get("password"),
            form.get("login_token"),
            form.get("next"),
        )
        next_path = self.safe_next(target if isinstance(target, str) else None)
        # Login CSRF: a double-submit token (there is no session yet to bind one to).
        if not csrf_matches(
            request.cookies.get(self.login_cookie_name, ""),
            token if isinstance(token, str) else None,
        ):
            raise Forbidden(
                "the sign-in form expired or did not come from this console; reload it",
                code="csrf_failed",
            )
        if not isinstance(email, str) or not isinstance(password, str) or not email or not password:
            return self._login_form(
                request, next_path, error="Enter your email and password.", status=400
            )
        clock = self.clock_of(request)
        async with self.database_of(request).transaction() as db:
            outcome = await sign_in(
                db,
                clock,
                realm=self.realm,
                email=email[:300],
                password=password[:2048],
                policy=self.lockout,
            )
            cookie = None
            if outcome.result is SignInResult.OK and outcome.user is not None:
                mode = "test"
                cookie = await open_session(
                    db, clock, outcome.user, api_mode=mode, policy=self.sessions
                )
        if outcome.result is SignInResult.LOCKED:
            minutes = self.lockout.lock_for.total_seconds() / 60
            return self._login_form(
                request,
                next_path,
                status=429,
                email=email[:300],
                error=(
                    f"Too many wrong passwords: this account is locked for {minutes:g} minutes. "
                    "Try again later, or ask an operator to unlock it."
                ),
            )
        if cookie is None:
            return self._login_form(
                request,
                next_path,
                status=401,
                email=email[:300],
                error="That email and password do not match an account.",
            )
        response = RedirectResponse(
            next_path, status_code=303, headers={"Cache-Control": "no-store"}
        )
        self.set_cookie(
            request,
            response,
            self.cookie_name,
            cookie,
            max_age=int(self.sessions.lifetime.total_seconds()),
        )
        response.delete_cookie(self.login_cookie_name, path=self.prefix + "/")
        return response

    async def logout(self, request: Request) -> Response:
        who = await self.require_post(request)
        async with self.database_of(request).transaction() as db:
            await close_session(db, request.cookies.get(self.cookie_name))
        await self.audit(request, who, "console.logout")
        response = self.redirect("/login")
        response.delete_cookie(self.cookie_name, path=self.prefix + "/")
        return response

    async def switch_mode(self, request: Request) -> Response:
        who = await self.require_post(request)
        mode = await self.field(request, "mode", max_length=8)
        if mode not in MODES:
            raise InvalidRequest("mode must be test or live")
        async with self.database_of(request).transaction() as db:
            row = await db.get(ConsoleSession, who.session.id_hash)
            if row is not None:
                row.api_mode = mode
        await self.audit(request, who, "console.mode_switched", detail={"mode": mode})
        back = (
            await self.field(request, "next", max_length=1024)
            if "next" in await self.form(request)
            else None
        )
        return RedirectResponse(self.safe_next(back), status_code=303)


class _MethodNotAllowed(ApiError):
    status = 405
    default_code = "method_not_allowed"


def _is_form(request: Request) -> bool:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type == "application/x-www-form-urlencoded"


def actor_of(who: SignedIn | None) -> str:
    return f"console:{who.user.user_id}" if who else "console:anonymous"


def page_headers() -> dict[str, str]:
    return {"Content-Security-Policy": CSP, "Cache-Control": "no-store"}


# ---- formatting filters --------------------------------------------------------------------------


def format_when(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def format_duration(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def format_size(size: int | None) -> str:
    if size is None:
        return "—"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def format_pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f} %"
