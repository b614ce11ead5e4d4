"""The sandbox as a reference SMART server: what it advertises is what it does.

Third-party clients test against the sandbox, so its discovery document must be true and its
token, introspection and revocation endpoints must follow SMART App Launch 2.2 and RFC
6749/7009/7662. Every capability in `.well-known/smart-configuration` is checked here against
behaviour; advertising one that has no check fails the walk.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from ehiconnect.clock import FrozenClock
from ehiconnect.sandbox.generator import resolve_persona
from ehiconnect.sandbox.personas import persona_info
from ehiconnect.sandbox.systems import CONFIDENTIAL_CLIENT_ID, PUBLIC_CLIENT_ID
from tests.integration.sandbox.smart_app import FULL_SCOPE, ClientAuth, SmartApp


def _configuration(app: SmartApp) -> dict[str, Any]:
    response = app.http.get(f"{app.fhir_base}/.well-known/smart-configuration")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _refresh_without_client_id(app: SmartApp, refresh_token: str) -> httpx.Response:
    """A refresh as SMART lists it for public apps: grant_type and refresh_token only."""
    return app.http.post(
        app.token_url, data={"grant_type": "refresh_token", "refresh_token": refresh_token}
    )


def _post(app: SmartApp, endpoint: str, form: dict[str, str]) -> httpx.Response:
    """A form post to one of the system's auth endpoints, with no client authentication."""
    return app.http.post(f"{app.server_url}/{app.slug}/auth/{endpoint}", data=form)


def _patient_id(slug: str, username: str) -> str:
    system, persona = resolve_persona(slug, username)
    return persona_info(system, persona).patient_id


def _readable(app: SmartApp, token: str, path: str, **params: Any) -> bool:
    return app.get(token, path, **params).status_code == 200


# --- item 11: refreshing a public client's token without client_id ----------------------------


def test_a_public_client_refreshes_without_client_id(harbor: SmartApp) -> None:
    tokens = harbor.connect("tina")
    renewed = _refresh_without_client_id(harbor, tokens["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    fresh = renewed.json()
    assert fresh["patient"] == tokens["patient"]
    assert _readable(harbor, fresh["access_token"], f"Patient/{fresh['patient']}")
    # the refresh token still rotates: the old one is spent
    again = _refresh_without_client_id(harbor, tokens["refresh_token"])
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_a_confidential_client_must_still_authenticate_to_refresh(harbor: SmartApp) -> None:
    harbor.auth = "basic"
    tokens = harbor.connect("tina")
    bare = _refresh_without_client_id(harbor, tokens["refresh_token"])
    assert bare.status_code == 401
    assert bare.json()["error"] == "invalid_client"
    assert "confidential" in bare.json()["error_description"]
    assert bare.headers["www-authenticate"].startswith("Basic")
    named = _post(
        harbor,
        "token",
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": CONFIDENTIAL_CLIENT_ID,
        },
    )
    assert named.status_code == 401
    # the refused attempts did not spend the refresh token
    assert harbor.refresh(tokens["refresh_token"]).status_code == 200


def test_a_refresh_naming_another_client_is_refused(harbor: SmartApp) -> None:
    tokens = harbor.connect("tina")
    harbor.auth = "basic"
    other = harbor.refresh(tokens["refresh_token"])
    assert other.status_code == 400
    assert other.json()["error"] == "invalid_grant"
    assert "another client" in other.json()["error_description"]
    harbor.auth = "none"
    assert harbor.refresh(tokens["refresh_token"]).status_code == 200


def test_an_unknown_or_foreign_refresh_token_without_client_id_is_invalid_grant(
    harbor: SmartApp, cedar: SmartApp
) -> None:
    unknown = _refresh_without_client_id(harbor, "not-a-refresh-token")
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "invalid_grant"
    tokens = cedar.connect("theo")
    foreign = _refresh_without_client_id(harbor, tokens["refresh_token"])
    assert foreign.status_code == 400
    assert foreign.json()["error"] == "invalid_grant"
    assert cedar.refresh(tokens["refresh_token"]).status_code == 200


# --- item 12: introspection needs an authorized caller; revocation only of one's own tokens --


@pytest.mark.parametrize(
    "form",
    [{"client_id": PUBLIC_CLIENT_ID}, {}],
    ids=["public-client-id", "no-client"],
)
def test_introspection_without_client_credentials_is_refused(
    harbor: SmartApp, form: dict[str, str]
) -> None:
    tokens = harbor.connect("tina")
    response = _post(harbor, "introspect", {"token": tokens["access_token"], **form})
    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "invalid_client"
    assert "active" not in body
    assert response.headers["www-authenticate"].startswith("Basic")


@pytest.mark.parametrize("auth", ["basic", "jwt-es384"])
def test_a_confidential_client_introspects_its_own_tokens(
    harbor: SmartApp, auth: ClientAuth
) -> None:
    harbor.auth = auth
    tokens = harbor.connect("tina")
    info = harbor.introspect(tokens["access_token"])
    assert info["active"] is True
    assert info["client_id"] == harbor.client_id
    assert info["patient"] == tokens["patient"]
    assert info["scope"] == tokens["scope"]
    assert harbor.introspect(tokens["refresh_token"])["active"] is True


def test_introspection_says_nothing_about_another_clients_or_systems_tokens(
    harbor: SmartApp, cedar: SmartApp
) -> None:
    public_tokens = harbor.connect("tina")
    harbor.auth = "basic"
    assert harbor.introspect(public_tokens["access_token"]) == {"active": False}
    assert harbor.introspect(public_tokens["refresh_token"]) == {"active": False}
    cedar.auth = "basic"
    own_at_harbor = harbor.connect("tina")
    assert cedar.introspect(own_at_harbor["access_token"]) == {"active": False}
    assert cedar.introspect(own_at_harbor["refresh_token"]) == {"active": False}
    assert harbor.introspect(own_at_harbor["access_token"])["active"] is True


def test_a_public_client_revokes_its_own_tokens_by_client_id(harbor: SmartApp) -> None:
    tokens = harbor.connect("tina")
    response = _post(
        harbor, "revoke", {"token": tokens["refresh_token"], "client_id": PUBLIC_CLIENT_ID}
    )
    assert response.status_code == 200
    assert not _readable(harbor, tokens["access_token"], f"Patient/{tokens['patient']}")
    assert harbor.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"


@pytest.mark.parametrize("kind", ["refresh_token", "access_token"])
def test_a_client_cannot_revoke_another_clients_tokens(harbor: SmartApp, kind: str) -> None:
    confidential = SmartApp(harbor.http, harbor.server_url, "harbor", "basic", clock=harbor.clock)
    theirs = confidential.connect("tina")
    refused = harbor.revoke(theirs[kind])  # the public client, naming itself
    assert refused.status_code == 400
    assert refused.json()["error"] == "unauthorized_client"
    assert _readable(confidential, theirs["access_token"], f"Patient/{theirs['patient']}")
    mine = harbor.connect("tina")
    assert confidential.revoke(mine[kind]).status_code == 400
    assert _readable(harbor, mine["access_token"], f"Patient/{mine['patient']}")


def test_revoking_at_another_system_leaves_the_grant(harbor: SmartApp, cedar: SmartApp) -> None:
    tokens = harbor.connect("tina")
    assert cedar.revoke(tokens["refresh_token"]).status_code == 200  # unknown there: no-op
    assert cedar.revoke(tokens["access_token"]).status_code == 200
    assert _readable(harbor, tokens["access_token"], f"Patient/{tokens['patient']}")
    assert harbor.refresh(tokens["refresh_token"]).status_code == 200


# --- item 13: the discovery document is true --------------------------------------------------


@dataclass
class Walk:
    app: SmartApp
    config: dict[str, Any]
    clock: FrozenClock


Check = Callable[[Walk], None]
CAPABILITY_CHECKS: dict[str, Check] = {}


def checks(capability: str) -> Callable[[Check], Check]:
    def register(check: Check) -> Check:
        CAPABILITY_CHECKS[capability] = check
        return check

    return register


@checks("launch-standalone")
def _launch_standalone(walk: Walk) -> None:
    # no `launch` parameter: the app starts at the advertised authorize endpoint
    started = walk.app.begin()
    assert started.url.startswith(walk.config["authorization_endpoint"] + "?")
    back = walk.app.sign_in(started, "amy")
    assert walk.app.exchange(back["code"], started.verifier).status_code == 200


@checks("client-public")
def _client_public(walk: Walk) -> None:
    assert "none" in walk.config["token_endpoint_auth_methods_supported"]
    walk.app.auth = "none"
    tokens = walk.app.connect("tina")  # client_id only, no secret, PKCE
    assert _refresh_without_client_id(walk.app, tokens["refresh_token"]).status_code == 200


@checks("client-confidential-symmetric")
def _client_confidential_symmetric(walk: Walk) -> None:
    assert "client_secret_basic" in walk.config["token_endpoint_auth_methods_supported"]
    walk.app.auth = "basic"
    tokens = walk.app.connect("tina")
    assert tokens["access_token"]
    wrong = walk.app.http.post(
        walk.config["token_endpoint"],
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(CONFIDENTIAL_CLIENT_ID, "not-the-secret"),
    )
    assert wrong.status_code == 401


@checks("client-confidential-asymmetric")
def _client_confidential_asymmetric(walk: Walk) -> None:
    assert "private_key_jwt" in walk.config["token_endpoint_auth_methods_supported"]
    algorithms = walk.config["token_endpoint_auth_signing_alg_values_supported"]
    assert set(algorithms) == {"RS384", "ES384"}
    methods: tuple[ClientAuth, ...] = ("jwt-rs384", "jwt-es384")
    for auth in methods:
        walk.app.auth = auth
        assert walk.app.connect("tina")["access_token"]


@checks("sso-openid-connect")
def _sso_openid_connect(walk: Walk) -> None:
    nonce = secrets.token_urlsafe(16)
    started = walk.app.begin(nonce=nonce)
    back = walk.app.sign_in(started, "amy")
    tokens = walk.app.exchange(back["code"], started.verifier).json()
    id_token = tokens["id_token"]
    # the steps SMART App Launch gives an app: issuer → openid-configuration → jwks → verify
    issuer = walk.config["issuer"]
    oidc = walk.app.http.get(f"{issuer}/.well-known/openid-configuration").json()
    assert oidc["issuer"] == issuer
    assert "RS256" in oidc["id_token_signing_alg_values_supported"]
    assert oidc["jwks_uri"] == walk.config["jwks_uri"]
    keys = KeySet.import_key_set(walk.app.http.get(oidc["jwks_uri"]).json())
    claims = jwt.decode(id_token, keys, algorithms=["RS256"]).claims
    assert claims["iss"] == issuer
    assert claims["aud"] == walk.app.client_id
    assert claims["nonce"] == nonce
    assert claims["exp"] > claims["iat"]
    assert claims["sub"]
    fhir_user = claims["fhirUser"]
    assert fhir_user == f"{walk.app.fhir_base}/Patient/{_patient_id('harbor', 'amy')}"
    patient = walk.app.get(tokens["access_token"], fhir_user)
    assert patient.status_code == 200
    assert patient.json()["id"] == tokens["patient"]


@checks("context-standalone-patient")
def _context_standalone_patient(walk: Walk) -> None:
    tokens = walk.app.connect("tina", "launch/patient patient/*.rs")
    assert tokens["patient"] == _patient_id("harbor", "tina")
    assert _readable(walk.app, tokens["access_token"], f"Patient/{tokens['patient']}")


@checks("permission-offline")
def _permission_offline(walk: Walk) -> None:
    assert "offline_access" in walk.config["scopes_supported"]
    tokens = walk.app.connect("tina", "launch/patient offline_access patient/*.rs")
    assert "offline_access" in tokens["scope"].split()
    walk.clock.advance(tokens["expires_in"] + 1)  # the patient is long gone
    assert not _readable(walk.app, tokens["access_token"], f"Patient/{tokens['patient']}")
    fresh = walk.app.refresh(tokens["refresh_token"]).json()
    assert _readable(walk.app, fresh["access_token"], f"Patient/{fresh['patient']}")
    assert "refresh_token" not in walk.app.connect("tina", "launch/patient patient/*.rs")


@checks("permission-patient")
def _permission_patient(walk: Walk) -> None:
    tokens = walk.app.connect("tina", "launch/patient patient/Patient.rs patient/Condition.rs")
    token, patient = tokens["access_token"], tokens["patient"]
    assert _readable(walk.app, token, "Condition", patient=patient)
    assert walk.app.get(token, "Encounter", patient=patient).status_code == 403
    # patient/ scopes reach only the patient in context
    assert not _readable(walk.app, token, f"Patient/{_patient_id('harbor', 'amy')}")


@checks("permission-v1")
def _permission_v1(walk: Walk) -> None:
    assert "patient/*.read" in walk.config["scopes_supported"]
    tokens = walk.app.connect("tina", "launch/patient patient/Patient.read patient/Condition.read")
    token, patient = tokens["access_token"], tokens["patient"]
    assert _readable(walk.app, token, "Condition", patient=patient)
    assert walk.app.get(token, "Encounter", patient=patient).status_code == 403


@checks("permission-v2")
def _permission_v2(walk: Walk) -> None:
    assert "patient/*.rs" in walk.config["scopes_supported"]
    scope = "launch/patient patient/Patient.r patient/Observation.rs?category=laboratory"
    tokens = walk.app.connect("tina", scope)
    token, patient = tokens["access_token"], tokens["patient"]
    assert _readable(walk.app, token, f"Patient/{patient}")
    assert walk.app.get(token, "Patient", _id=patient).status_code == 403  # r without s
    assert _readable(walk.app, token, "Observation", patient=patient, category="laboratory")
    assert walk.app.get(token, "Observation", patient=patient).status_code == 403


def test_every_advertised_capability_holds(harbor: SmartApp, sandbox_clock: FrozenClock) -> None:
    config = _configuration(harbor)
    unchecked = set(config["capabilities"]) - set(CAPABILITY_CHECKS)
    assert not unchecked, f"advertised without a behaviour check here: {sorted(unchecked)}"
    for capability in config["capabilities"]:
        app = SmartApp(harbor.http, harbor.server_url, "harbor", clock=sandbox_clock)
        CAPABILITY_CHECKS[capability](Walk(app, config, sandbox_clock))


def test_every_check_guards_an_advertised_capability(harbor: SmartApp) -> None:
    """A capability dropped from the document must not keep a stale check here."""
    assert set(CAPABILITY_CHECKS) == set(_configuration(harbor)["capabilities"])


def test_issuer_is_there_exactly_when_openid_connect_is(harbor: SmartApp) -> None:
    # SMART App Launch 2.2 conformance: `issuer` is required with sso-openid-connect and
    # omitted otherwise; `jwks_uri` is required with it.
    config = _configuration(harbor)
    openid = "sso-openid-connect" in config["capabilities"]
    assert ("issuer" in config) == openid
    if openid:
        assert config["jwks_uri"]
        assert {"openid", "fhirUser"} <= set(config["scopes_supported"])


def test_refresh_token_scopes_match_the_permission_capabilities(harbor: SmartApp) -> None:
    config = _configuration(harbor)
    scopes, capabilities = set(config["scopes_supported"]), set(config["capabilities"])
    assert ("online_access" in scopes) == ("permission-online" in capabilities)
    assert ("offline_access" in scopes) == ("permission-offline" in capabilities)


def test_every_supported_scope_is_granted_when_asked(harbor: SmartApp) -> None:
    supported = _configuration(harbor)["scopes_supported"]
    tokens = harbor.connect("tina", " ".join(supported))
    assert set(tokens["scope"].split()) == set(supported)
    assert tokens["patient"]
    assert tokens["refresh_token"]
    claims = jwt.decode(tokens["id_token"], harbor_keys(harbor), algorithms=["RS256"]).claims
    assert claims["profile"] == claims["fhirUser"]  # SMART 1's name for the same claim


def test_scopes_the_sandbox_does_not_honour_are_left_out_of_the_grant(harbor: SmartApp) -> None:
    tokens = harbor.connect("tina", "launch launch/patient online_access patient/*.rs")
    assert tokens["scope"].split() == ["launch/patient", "patient/*.rs"]
    assert "refresh_token" not in tokens


def test_without_openid_there_is_no_id_token_and_a_refresh_issues_none(harbor: SmartApp) -> None:
    assert "id_token" not in harbor.connect("tina", "launch/patient patient/*.rs")
    tokens = harbor.connect("tina", FULL_SCOPE)
    assert tokens["id_token"]
    assert "id_token" not in harbor.refresh(tokens["refresh_token"]).json()


def test_an_id_token_does_not_verify_with_the_access_token_key(harbor: SmartApp) -> None:
    tokens = harbor.connect("tina", FULL_SCOPE)
    with pytest.raises(JoseError):
        jwt.decode(tokens["id_token"], harbor_keys(harbor), algorithms=["ES256"])


def harbor_keys(app: SmartApp) -> KeySet:
    return KeySet.import_key_set(app.http.get(_configuration(app)["jwks_uri"]).json())
