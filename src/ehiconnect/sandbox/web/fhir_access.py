"""Who is asking: the bearer token of a FHIR request, checked against the grant and faults."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from ehiconnect.sandbox.config import Faults, HealthSystem
from ehiconnect.sandbox.generator import PatientRecord, generate_record
from ehiconnect.sandbox.scopes import ScopeSet
from ehiconnect.sandbox.state import SandboxState
from ehiconnect.sandbox.web.common import (
    operation_outcome,
    sandbox_state,
    system_or_none,
    unknown_system,
)
from ehiconnect.sandbox.web.faults import request_faults
from ehiconnect.sandbox.web.tokens import access_token_key


@dataclass(frozen=True)
class FhirAccess:
    """A FHIR request that passed the faults and the token check."""

    state: SandboxState
    system: HealthSystem
    faults: Faults
    scope: ScopeSet
    patient_id: str
    record: PatientRecord


def _unauthorized(description: str) -> Response:
    return operation_outcome(
        401,
        "login",
        description,
        {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{description}"'},
    )


async def system_and_faults(request: Request) -> tuple[HealthSystem, Faults] | Response:
    """The system addressed, after its latency/429/5xx faults (which may answer instead)."""
    system = system_or_none(request)
    if system is None:
        return unknown_system(request)
    state = sandbox_state(request)
    faults = state.faults(system.slug)
    failed = await request_faults(state, faults)
    return failed if failed is not None else (system, faults)


async def authorize_fhir(request: Request) -> FhirAccess | Response:
    """Faults first (as a gateway would), then the access token."""
    found = await system_and_faults(request)
    if isinstance(found, Response):
        return found
    system, faults = found
    state = sandbox_state(request)
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        return _unauthorized("send Authorization: Bearer <access token>")
    key = access_token_key(state, header[7:].strip())
    token = state.store.get_access_token(key) if key else None
    grant = state.store.get_grant(token.grant_id) if token else None
    if key is None or token is None or grant is None or grant.system_slug != system.slug:
        return _unauthorized("access token is not valid at this health system")
    if token.revoked or grant.revoked:
        return _unauthorized("access token was revoked")
    if token.expires_at <= state.clock.now():
        return _unauthorized("access token expired; refresh it")
    count = state.store.count_request(key)
    limit = faults.expire_access_tokens_after
    if limit is not None and count > limit:
        return _unauthorized("access token expired; refresh it")
    persona = system.persona(grant.persona_id)
    if persona is None:
        return operation_outcome(404, "not-found", "the patient of this token no longer exists")
    return FhirAccess(
        state=state,
        system=system,
        faults=faults,
        scope=token.scope,
        patient_id=grant.patient_id,
        record=generate_record(system, persona),
    )


def forbidden(resource_type: str, what: str) -> Response:
    return operation_outcome(
        403,
        "forbidden",
        f"the granted scopes do not allow {what} {resource_type}; "
        f"ask for patient/{resource_type}.rs (v2) or patient/{resource_type}.read (v1)",
    )
