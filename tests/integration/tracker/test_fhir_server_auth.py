"""The FHIR-server sink against servers that want OAuth client credentials or a CLI's token."""

from __future__ import annotations

import base64
import itertools
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from ehiconnect.testing.servers import ThreadedServer, serve_in_thread
from ehiconnect.tracker.ingest_step import fhir_server_auth, fhir_server_sink
from ehiconnect.tracker.settings import FhirServerSinkSettings
from ehiconnect.tracker.sinks.base import SinkError
from tests.integration.tracker.fake_fhir_server import FakeFhirServer
from tests.integration.tracker.records import patient_record


@dataclass
class TokenGate:
    """An OAuth token endpoint (client credentials) in front of the fake FHIR server."""

    fhir: FakeFhirServer = field(default_factory=FakeFhirServer)
    valid: set[str] = field(default_factory=set)
    issued: int = 0
    forms: list[dict[str, str]] = field(default_factory=list)
    numbers: Iterator[int] = field(default_factory=itertools.count)

    def revoke_all(self) -> None:
        self.valid.clear()

    def app(self) -> Starlette:
        inner = self.fhir.app()

        async def token(request: Request) -> Response:
            form = {k: str(v) for k, v in (await request.form()).items()}
            self.forms.append(form)
            if (form.get("client_id"), form.get("client_secret")) != ("tracker", "s3cret"):
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            issued = f"tok-{next(self.numbers)}"
            self.issued += 1
            self.valid.add(issued)
            return JSONResponse(
                {"access_token": issued, "token_type": "Bearer", "expires_in": 3600}
            )

        async def guarded(scope, receive, send):  # type: ignore[no-untyped-def]
            headers = dict(scope["headers"])
            given = headers.get(b"authorization", b"").decode().removeprefix("Bearer ")
            if given not in self.valid:
                await JSONResponse({"error": "invalid_token"}, status_code=401)(
                    scope, receive, send
                )
                return
            await inner(scope, receive, send)

        return Starlette(routes=[Route("/token", token, methods=["POST"]), Mount("/", guarded)])


@pytest.fixture
def gate() -> Iterator[tuple[TokenGate, ThreadedServer]]:
    server = TokenGate()
    with serve_in_thread(server.app()) as running:
        yield server, running


async def test_client_credentials_fetch_a_token_reuse_it_and_renew_it_after_a_401(
    gate: tuple[TokenGate, ThreadedServer],
) -> None:
    server, running = gate
    settings = FhirServerSinkSettings(
        enabled=True,
        base_url=f"{running.url}/fhir",
        token_url=f"{running.url}/token",
        client_id="tracker",
        client_secret=SecretStr("s3cret"),
        scope="https://example.fhir.azurehealthcareapis.com/.default",
    )
    sink = fhir_server_sink(settings)
    resources = patient_record(observations=6)
    try:
        await sink.write_batch(resources[:5], batch_key="b0")
        await sink.write_batch(resources[5:], batch_key="b1")
        assert server.issued == 1  # one token, reused
        server.revoke_all()  # the server restarts / revokes: the next call gets a 401
        await sink.write_batch(resources, batch_key="b2")
    finally:
        await sink.close()
    assert server.issued == 2
    assert len(server.fhir.store) == len(resources)
    assert server.forms[0] == {
        "grant_type": "client_credentials",
        "client_id": "tracker",
        "client_secret": "s3cret",
        "scope": "https://example.fhir.azurehealthcareapis.com/.default",
    }


async def test_refused_client_credentials_say_what_to_check_without_the_secret(
    gate: tuple[TokenGate, ThreadedServer],
) -> None:
    _, running = gate
    settings = FhirServerSinkSettings(
        enabled=True,
        base_url=f"{running.url}/fhir",
        token_url=f"{running.url}/token",
        client_id="tracker",
        client_secret=SecretStr("wrong-secret"),
    )
    sink = fhir_server_sink(settings)
    try:
        with pytest.raises(SinkError, match="client_id, client_secret") as refused:
            await sink.write_batch(patient_record(observations=1), batch_key="b0")
    finally:
        await sink.close()
    assert "wrong-secret" not in str(refused.value)
    assert "invalid_client" in str(refused.value)


async def test_a_token_command_supplies_the_bearer_token(
    gate: tuple[TokenGate, ThreadedServer],
) -> None:
    server, running = gate
    server.valid.add("from-the-cli")
    script = "print('from-the-cli')"
    settings = FhirServerSinkSettings(
        enabled=True,
        base_url=f"{running.url}/fhir",
        token_command=f'{sys.executable} -c "{script}"',
    )
    sink = fhir_server_sink(settings)
    try:
        await sink.write_batch(patient_record(observations=2), batch_key="b0")
    finally:
        await sink.close()
    assert len(server.fhir.store) == 6


async def test_a_failing_token_command_is_a_clear_error() -> None:
    auth = fhir_server_auth(
        FhirServerSinkSettings(token_command=f"{sys.executable} -c 'import sys; sys.exit(3)'")
    )
    assert auth is not None
    flow = auth.async_auth_flow(httpx.Request("GET", "http://127.0.0.1:9/fhir/metadata"))
    with pytest.raises(SinkError, match="exit status 3"):
        await flow.__anext__()


def test_static_bearer_and_basic_still_configure() -> None:
    bearer = fhir_server_auth(FhirServerSinkSettings(bearer_token=SecretStr("k")))
    basic = fhir_server_auth(FhirServerSinkSettings(basic_user="u", basic_password=SecretStr("p")))
    request = httpx.Request("GET", "http://fhir.test/metadata")
    assert bearer is not None
    assert basic is not None
    assert next(bearer.auth_flow(request)).headers["Authorization"] == "Bearer k"
    expected = "Basic " + base64.b64encode(b"u:p").decode()
    assert next(basic.auth_flow(request)).headers["Authorization"] == expected
    assert fhir_server_auth(FhirServerSinkSettings()) is None


def _sigv4_verifier(inner: Starlette, secret: str) -> Starlette:
    """A HealthLake stand-in: recomputes each request's SigV4 signature from what arrived."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    async def verify(scope, receive, send):  # type: ignore[no-untyped-def]
        request = Request(scope, receive)
        body = await request.body()
        authorization = request.headers.get("authorization", "")
        fields = dict(
            part.strip().split("=", 1)
            for part in authorization.removeprefix("AWS4-HMAC-SHA256 ").split(",")
            if "=" in part
        )
        signed = fields.get("SignedHeaders", "").split(";")
        key_id, _day, region, service, _ = fields.get("Credential", "////").split("/")
        again = AWSRequest(
            method=request.method,
            url=str(request.url),
            data=body,
            headers={name: request.headers[name] for name in signed if name in request.headers},
        )
        again.context["timestamp"] = request.headers.get("x-amz-date", "")
        signer = SigV4Auth(Credentials(key_id, secret), service, region)
        canonical = signer.canonical_request(again)
        expected = signer.signature(signer.string_to_sign(again, canonical), again)
        if not authorization or fields.get("Signature") != expected or service != "healthlake":
            refusal = JSONResponse({"message": "signature does not match"}, status_code=403)
            await refusal(scope, receive, send)
            return

        async def replay() -> dict[str, object]:
            return {"type": "http.request", "body": body, "more_body": False}

        await inner(scope, replay, send)

    return Starlette(routes=[Mount("/", verify)])


async def test_aws_sigv4_requests_verify_at_a_healthlake_stand_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "the-secret-key")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    fhir = FakeFhirServer()
    with serve_in_thread(_sigv4_verifier(fhir.app(), "the-secret-key")) as running:
        settings = FhirServerSinkSettings(
            enabled=True, base_url=f"{running.url}/fhir", aws_region="us-east-1"
        )
        sink = fhir_server_sink(settings)
        try:
            await sink.write_batch(patient_record(observations=3), batch_key="b0")
        finally:
            await sink.close()
        assert len(fhir.store) == 7

        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "another-key")  # signed with the wrong key
        wrong = fhir_server_sink(settings)
        try:
            with pytest.raises(SinkError, match="403"):
                await wrong.write_batch(patient_record(observations=1), batch_key="b1")
        finally:
            await wrong.close()
