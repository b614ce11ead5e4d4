"""The SMART standalone launch over real HTTP: forms, codes, tokens, refresh, revocation."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from ehiconnect.clock import FrozenClock
from ehiconnect.sandbox.config import Faults
from ehiconnect.sandbox.generator import resolve_persona
from ehiconnect.sandbox.patient_browser import PatientBrowser, parse_forms
from ehiconnect.sandbox.personas import persona_info
from ehiconnect.sandbox.state import SandboxState
from tests.integration.sandbox.smart_app import FULL_SCOPE, ClientAuth, SmartApp


def _query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def test_smart_configuration_is_json_whatever_the_accept_header(harbor: SmartApp) -> None:
    response = harbor.http.get(
        f"{harbor.fhir_base}/.well-known/smart-configuration", headers={"Accept": "text/html"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    config = response.json()
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert set(config["capabilities"]) >= {
        "launch-standalone", "client-public", "client-confidential-symmetric",
        "client-confidential-asymmetric", "context-standalone-patient", "permission-offline",
        "permission-v1", "permission-v2",
    }  # fmt: skip
    assert config["token_endpoint"] == harbor.token_url
    for key in ("authorization_endpoint", "introspection_endpoint", "revocation_endpoint"):
        assert config[key].startswith(f"{harbor.server_url}/harbor/auth/")
    keys = harbor.http.get(config["jwks_uri"]).json()["keys"]
    assert keys
    assert "d" not in keys[0]


@pytest.mark.parametrize("auth", ["none", "basic", "jwt-rs384", "jwt-es384"])
def test_each_client_type_completes_the_launch(harbor: SmartApp, auth: ClientAuth) -> None:
    harbor.auth = auth
    started = harbor.begin()
    back = harbor.sign_in(started, "amy")
    assert back["state"] == started.state
    response = harbor.exchange(back["code"], started.verifier)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    tokens = response.json()
    system, persona = resolve_persona("harbor", "amy")
    assert tokens["patient"] == persona_info(system, persona).patient_id
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 3600
    assert set(tokens["scope"].split()) == set(FULL_SCOPE.split())
    assert tokens["refresh_token"]
    patient = harbor.get(tokens["access_token"], f"Patient/{tokens['patient']}")
    assert patient.status_code == 200
    assert patient.json()["name"][0]["given"] == ["Amy"]


def test_without_offline_access_there_is_no_refresh_token(harbor: SmartApp) -> None:
    tokens = harbor.connect("tina", "launch/patient patient/*.rs")
    assert "refresh_token" not in tokens


def test_login_page_lists_personas_and_a_wrong_password_is_refused(harbor: SmartApp) -> None:
    browser = PatientBrowser(harbor.http)
    page = browser.open_login(harbor.begin().url)
    assert page.status_code == 200
    assert "amy-sandbox" in page.text
    assert "hugo" in page.text
    again = browser.sign_in(page, "amy", "not-her-password")
    assert again.status_code == 401
    assert "wrong password" in again.text
    assert len(parse_forms(again.text)) == 1


def test_unknown_client_id_is_shown_not_redirected(harbor: SmartApp) -> None:
    response = harbor.http.get(harbor.begin(client_id="stranger").url)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "not registered" in response.text


@pytest.mark.parametrize("uri", ["https://evil.example/callback", "ftp://127.0.0.1/cb"])
def test_a_foreign_redirect_uri_is_shown_not_redirected(harbor: SmartApp, uri: str) -> None:
    response = harbor.http.get(harbor.begin(redirect_uri=uri).url)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "redirect_uri" in response.text


@pytest.mark.parametrize(
    ("overrides", "error", "words"),
    [
        ({"aud": None}, "invalid_request", "aud"),
        ({"aud": "http://127.0.0.1:1/cedar/fhir"}, "invalid_request", "aud"),
        ({"code_challenge": None}, "invalid_request", "code_challenge"),
        ({"code_challenge_method": "plain"}, "invalid_request", "S256"),
        ({"response_type": "token"}, "unsupported_response_type", "code"),
        ({"scope": "launch/patient openid"}, "invalid_scope", "patient/"),
    ],
)
def test_bad_authorize_parameters_go_back_to_the_client_with_state(
    harbor: SmartApp, overrides: dict[str, str | None], error: str, words: str
) -> None:
    started = harbor.begin(**overrides)
    response = harbor.http.get(started.url)
    assert response.status_code == 302
    back = _query(response.headers["location"])
    assert back["error"] == error
    assert words in back["error_description"]
    assert back["state"] == started.state


def test_missing_state_is_an_error_without_state(harbor: SmartApp) -> None:
    response = harbor.http.get(harbor.begin(state=None).url)
    back = _query(response.headers["location"])
    assert back["error"] == "invalid_request"
    assert "state" not in back


def test_deny_returns_access_denied(harbor: SmartApp) -> None:
    started = harbor.begin()
    back = harbor.sign_in(started, "amy", allow=False)
    assert back["error"] == "access_denied"
    assert back["state"] == started.state
    assert "code" not in back


def test_a_wrong_code_verifier_is_refused(harbor: SmartApp) -> None:
    started = harbor.begin()
    back = harbor.sign_in(started, "amy")
    response = harbor.exchange(back["code"], started.verifier[:-2] + "xy")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert "code_verifier" in response.json()["error_description"]


def test_a_reused_code_is_refused_and_revokes_what_it_issued(harbor: SmartApp) -> None:
    started = harbor.begin()
    code = harbor.sign_in(started, "amy")["code"]
    first = harbor.exchange(code, started.verifier).json()
    second = harbor.exchange(code, started.verifier)
    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"
    assert "already used" in second.json()["error_description"]
    assert harbor.get(first["access_token"], "metadata").status_code == 200
    assert harbor.get(first["access_token"], f"Patient/{first['patient']}").status_code == 401
    assert harbor.refresh(first["refresh_token"]).json()["error"] == "invalid_grant"


def test_an_expired_code_is_refused(harbor: SmartApp, sandbox_clock: FrozenClock) -> None:
    started = harbor.begin()
    code = harbor.sign_in(started, "amy")["code"]
    sandbox_clock.advance(61)
    response = harbor.exchange(code, started.verifier)
    assert response.json()["error"] == "invalid_grant"
    assert "expired" in response.json()["error_description"]


def test_the_code_is_bound_to_redirect_uri_and_client(harbor: SmartApp) -> None:
    started = harbor.begin()
    code = harbor.sign_in(started, "amy")["code"]
    wrong_uri = harbor.exchange(code, started.verifier, redirect_uri="http://127.0.0.1:9/other")
    assert wrong_uri.json()["error"] == "invalid_grant"
    started = harbor.begin()
    code = harbor.sign_in(started, "amy")["code"]
    harbor.auth = "basic"
    other_client = harbor.exchange(code, started.verifier)
    assert other_client.json()["error"] == "invalid_grant"
    assert "another client" in other_client.json()["error_description"]


def test_client_authentication_failures_are_invalid_client(harbor: SmartApp) -> None:
    response = harbor.http.post(
        harbor.token_url,
        data={"grant_type": "refresh_token", "refresh_token": "x"},
        auth=("ehiconnect-confidential", "wrong-secret"),
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")


def test_a_replayed_client_assertion_is_refused(harbor: SmartApp) -> None:
    harbor.auth = "jwt-es384"
    tokens = harbor.connect("amy")
    first = harbor.post_token(
        "token",
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        jti="replayed-jti",
    )
    assert first.status_code == 200
    replay = harbor.post_token(
        "token",
        {"grant_type": "refresh_token", "refresh_token": first.json()["refresh_token"]},
        jti="replayed-jti",
    )
    assert replay.status_code == 401
    assert "jti" in replay.json()["error_description"]


def test_unticked_scopes_are_not_granted_and_answer_403(harbor: SmartApp) -> None:
    scope = "launch/patient patient/Patient.rs patient/Observation.rs patient/Condition.rs"
    tokens = harbor.connect("amy", scope, untick=["patient/Observation.rs"])
    assert tokens["scope"] == "launch/patient patient/Patient.rs patient/Condition.rs"
    observations = harbor.get(tokens["access_token"], "Observation", patient=tokens["patient"])
    assert observations.status_code == 403
    outcome = observations.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "Observation" in outcome["issue"][0]["diagnostics"]
    conditions = harbor.get(tokens["access_token"], "Condition", patient=tokens["patient"])
    assert conditions.status_code == 200
    assert conditions.json()["total"] > 0


def test_a_wildcard_request_can_be_narrowed_type_by_type(harbor: SmartApp) -> None:
    tokens = harbor.connect("amy", untick=["Observation", "offline_access"])
    granted = tokens["scope"].split()
    assert "patient/*.rs" not in granted
    assert "patient/Condition.rs" in granted
    assert "patient/Observation.rs" not in granted
    assert "refresh_token" not in tokens
    token, patient = tokens["access_token"], tokens["patient"]
    assert harbor.get(token, "Observation", patient=patient).status_code == 403
    assert harbor.get(token, "Condition", patient=patient).status_code == 200
    everything = harbor.get(token, f"Patient/{patient}/$everything", _count=1000).json()
    kinds = {e["resource"]["resourceType"] for e in everything["entry"]}
    assert "Observation" not in kinds
    assert "Encounter" in kinds


def test_the_consent_page_offers_every_type_of_a_wildcard(harbor: SmartApp) -> None:
    browser = PatientBrowser(harbor.http)
    consent = browser.sign_in(browser.open_login(harbor.begin().url), "amy", "amy-sandbox")
    form = parse_forms(consent.text)[0]
    offered = {v for k, v in form.checkboxes if k == "resource_type"}
    assert {"Observation", "DocumentReference", "Practitioner"} <= offered
    assert ("scope", "offline_access") in form.checkboxes


def test_v1_scopes_are_enforced_per_type(cedar: SmartApp) -> None:
    tokens = cedar.connect("theo", "launch/patient patient/Patient.read patient/Condition.read")
    assert (
        cedar.get(tokens["access_token"], "Condition", patient=tokens["patient"]).status_code == 200
    )
    assert (
        cedar.get(tokens["access_token"], "Encounter", patient=tokens["patient"]).status_code == 403
    )


def test_refresh_rotates_and_the_old_refresh_token_is_refused(summit: SmartApp) -> None:
    tokens = summit.connect("tess")
    renewed = summit.refresh(tokens["refresh_token"])
    assert renewed.status_code == 200
    assert renewed.headers["cache-control"] == "no-store"
    fresh = renewed.json()
    assert fresh["refresh_token"] != tokens["refresh_token"]
    assert fresh["patient"] == tokens["patient"]
    old = summit.refresh(tokens["refresh_token"])
    assert old.status_code == 400
    assert old.json()["error"] == "invalid_grant"
    assert summit.get(fresh["access_token"], f"Patient/{fresh['patient']}").status_code == 200
    assert summit.refresh(fresh["refresh_token"]).status_code == 200


def test_a_refresh_may_narrow_but_not_widen(summit: SmartApp) -> None:
    tokens = summit.connect("tess", "launch/patient offline_access patient/Patient.rs")
    wider = summit.refresh(tokens["refresh_token"], "launch/patient patient/*.rs")
    assert wider.json()["error"] == "invalid_scope"


def test_short_lived_tokens_expire_and_refresh_brings_access_back(
    summit: SmartApp, sandbox_clock: FrozenClock
) -> None:
    tokens = summit.connect("tess")
    assert tokens["expires_in"] == 60
    sandbox_clock.advance(61)
    expired = summit.get(tokens["access_token"], f"Patient/{tokens['patient']}")
    assert expired.status_code == 401
    assert 'error="invalid_token"' in expired.headers["www-authenticate"]
    fresh = summit.refresh(tokens["refresh_token"]).json()
    assert summit.get(fresh["access_token"], f"Patient/{fresh['patient']}").status_code == 200


def test_consent_revoked_at_source_fails_refresh_for_good(
    harbor: SmartApp, sandbox_state: SandboxState
) -> None:
    tokens = harbor.connect("tina")
    sandbox_state.set_faults("harbor", Faults(refresh_invalid_grant=True))
    refused = harbor.refresh(tokens["refresh_token"])
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    sandbox_state.reset_faults("harbor")
    assert harbor.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert harbor.get(tokens["access_token"], f"Patient/{tokens['patient']}").status_code == 401


def test_revoking_the_refresh_token_ends_the_grant(harbor: SmartApp) -> None:
    harbor.auth = "basic"
    tokens = harbor.connect("tina")
    assert harbor.introspect(tokens["access_token"])["active"] is True
    assert harbor.revoke(tokens["refresh_token"]).status_code == 200
    assert harbor.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert harbor.get(tokens["access_token"], f"Patient/{tokens['patient']}").status_code == 401
    assert harbor.introspect(tokens["access_token"]) == {"active": False}
    assert harbor.introspect(tokens["refresh_token"]) == {"active": False}


def test_revoking_an_access_token_leaves_the_refresh_token(harbor: SmartApp) -> None:
    tokens = harbor.connect("tina")
    assert harbor.revoke(tokens["access_token"]).status_code == 200
    assert harbor.get(tokens["access_token"], f"Patient/{tokens['patient']}").status_code == 401
    assert harbor.refresh(tokens["refresh_token"]).status_code == 200


def test_introspection_describes_a_live_token(harbor: SmartApp) -> None:
    # introspection needs a confidential client (RFC 7662 §2.1); see test_smart_conformance.py
    harbor.auth = "basic"
    tokens = harbor.connect("tina")
    info = harbor.introspect(tokens["access_token"])
    assert info["active"] is True
    assert info["patient"] == tokens["patient"]
    assert info["scope"] == tokens["scope"]
    assert info["client_id"] == "ehiconnect-confidential"
    assert harbor.introspect("not-a-token") == {"active": False}


def test_a_token_from_one_system_is_refused_at_another(harbor: SmartApp, cedar: SmartApp) -> None:
    tokens = harbor.connect("tina")
    response = cedar.get(tokens["access_token"], "Patient", _id=tokens["patient"])
    assert response.status_code == 401


def test_unsupported_grant_type(harbor: SmartApp) -> None:
    response = harbor.post_token("token", {"grant_type": "password"})
    assert response.json()["error"] == "unsupported_grant_type"


def test_the_index_lists_systems_and_personas(http: httpx.Client) -> None:
    # the sandbox index is what `ehiconnect sandbox` points people to
    index = http.get("/").json()
    assert [s["slug"] for s in index["systems"]] == ["harbor", "cedar", "summit"]
    assert index["systems"][0]["personas"][0]["username"] == "amy"
