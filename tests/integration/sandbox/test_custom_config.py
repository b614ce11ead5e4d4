"""The sandbox is configured by data: own clients, keys, redirect URIs, systems and faults."""

from __future__ import annotations

import datetime as dt
import uuid
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey

from ehiconnect.sandbox.app import build_sandbox_app
from ehiconnect.sandbox.config import Client, Faults, SandboxConfig
from ehiconnect.sandbox.patient_browser import PatientBrowser
from ehiconnect.sandbox.pkce import s256_challenge
from ehiconnect.sandbox.systems import HARBOR
from ehiconnect.testing.servers import serve_in_thread

PARTNER_REDIRECT = "https://partner.example.com/callback"


def test_own_clients_keys_redirects_and_start_up_faults() -> None:
    key = ECKey.generate_key("P-384", parameters={"kid": "partner-1"}, private=True)
    config = SandboxConfig(
        systems=(HARBOR.model_copy(update={"faults": Faults(retry_after_s=9)}),),
        clients=(
            Client(
                client_id="partner",
                kind="confidential-asymmetric",
                jwks={"keys": [key.as_dict(private=False)]},
                redirect_uris=(PARTNER_REDIRECT,),
                allow_loopback_redirects=False,
            ),
        ),
    )
    with serve_in_thread(build_sandbox_app(config)) as server, httpx.Client() as http:
        fhir = f"{server.url}/harbor/fhir"
        assert http.get(f"{server.url}/cedar/fhir/metadata").status_code == 404
        assert http.get(f"{server.url}/_admin/harbor/faults").json()["retry_after_s"] == 9

        def authorize_url(redirect_uri: str, verifier: str) -> str:
            return f"{server.url}/harbor/auth/authorize?" + urlencode({
                "response_type": "code", "client_id": "partner", "redirect_uri": redirect_uri,
                "scope": "launch/patient patient/*.rs", "state": "s1", "aud": fhir,
                "code_challenge": s256_challenge(verifier), "code_challenge_method": "S256",
            })  # fmt: skip

        verifier = "v" * 60
        assert http.get(authorize_url("http://127.0.0.1:9/cb", verifier)).status_code == 400
        location = PatientBrowser(http).authorize(
            authorize_url(PARTNER_REDIRECT, verifier), "amy", "amy-sandbox"
        )
        assert location.startswith(PARTNER_REDIRECT)
        code = parse_qs(urlsplit(location).query)["code"][0]
        token_url = f"{server.url}/harbor/auth/token"
        claims = {"iss": "partner", "sub": "partner", "aud": token_url, "jti": str(uuid.uuid4()),
                  "exp": int(dt.datetime.now(dt.UTC).timestamp()) + 120}  # fmt: skip
        assertion = jwt.encode(
            {"alg": "ES384", "kid": "partner-1"}, claims, key, algorithms=["ES384"]
        )
        response = http.post(token_url, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": PARTNER_REDIRECT,
            "code_verifier": verifier, "client_assertion": assertion,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        })  # fmt: skip
        assert response.status_code == 200, response.text
        assert response.json()["scope"] == "launch/patient patient/*.rs"
