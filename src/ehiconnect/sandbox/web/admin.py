"""Run-time switches for tests and demos: `GET/PUT/DELETE /_admin/{slug}/faults`.

`PUT` replaces the system's faults with the JSON body (omitted fields take their defaults, so
`{}` clears everything); `DELETE` restores the faults the configuration started with. The admin
API has no authentication: the sandbox holds synthetic data only and binds to loopback by
default.
"""

from __future__ import annotations

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from ehiconnect.sandbox.config import Faults
from ehiconnect.sandbox.web.common import json_response, sandbox_state, system_or_none


def _unknown(request: Request) -> Response:
    known = [s.slug for s in sandbox_state(request).config.systems]
    return json_response(
        {"error": "unknown_system", "error_description": f"known systems: {', '.join(known)}"},
        404,
    )


async def get_faults(request: Request) -> Response:
    system = system_or_none(request)
    if system is None:
        return _unknown(request)
    return json_response(sandbox_state(request).faults(system.slug).model_dump())


async def put_faults(request: Request) -> Response:
    system = system_or_none(request)
    if system is None:
        return _unknown(request)
    try:
        faults = Faults.model_validate(orjson.loads(await request.body() or b"{}"))
    except orjson.JSONDecodeError:
        return json_response(
            {"error": "invalid_json", "error_description": "send a JSON object of fault fields"},
            400,
        )
    except ValidationError as exc:
        return json_response(
            {
                "error": "invalid_faults",
                "error_description": str(exc),
                "fields": sorted(Faults.model_fields),
            },
            422,
        )
    sandbox_state(request).set_faults(system.slug, faults)
    return json_response(faults.model_dump())


async def delete_faults(request: Request) -> Response:
    system = system_or_none(request)
    if system is None:
        return _unknown(request)
    state = sandbox_state(request)
    state.reset_faults(system.slug)
    return json_response(state.faults(system.slug).model_dump())
