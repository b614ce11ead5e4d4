"""How the FHIR-server sink authenticates, for the servers customers run (httpx `Auth` flows).

- `StaticBearer`: a token that does not expire (HAPI behind a gateway, a Medplum API key).
- `ClientCredentials`: OAuth 2.0 client credentials (RFC 6749 §4.4), the client id and secret
  sent in the form body, as Microsoft Entra ID wants for Azure Health Data Services (scope
  `https://<workspace>-<service>.fhir.azurehealthcareapis.com/.default`) and Medplum accepts.
  The token is fetched on first use and again 60 s before it expires, or once after a 401.
- `CommandToken`: the token a command prints (`gcloud auth print-access-token` for the Google
  Cloud Healthcare API, `az account get-access-token --query accessToken -o tsv`), run without a
  shell and kept for `ttl_seconds`, or until a 401.
- `AwsSigV4`: AWS Signature Version 4 for AWS HealthLake (service `healthlake`), signed by
  botocore with the credentials of its default chain (environment, profile, instance role). The
  body is part of the signature, so a streamed upload is read into memory first.

A 401 replays the request with a fresh token once, except a streamed body (a raw Binary upload),
which cannot be sent twice: the sink's retry sends it again. Tokens and secrets never reach an
error message or a log.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import subprocess
import time
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

import httpx

from ehiconnect.tracker.sinks.base import SinkError, TemporarySinkError

REFRESH_MARGIN_SECONDS = 60.0
COMMAND_TIMEOUT_SECONDS = 60.0


class StaticBearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


class AwsSigV4(httpx.Auth):
    requires_request_body = True  # the payload's hash is signed

    def __init__(self, region: str, service: str = "healthlake", credentials: Any = None) -> None:
        from botocore.session import Session

        self.region, self.service = region, service
        found = credentials or Session().get_credentials()
        if found is None:
            raise ValueError(
                "tracker.fhir_server.aws_region is set but no AWS credentials were found "
                "(environment, ~/.aws, or an instance role)"
            )
        self._credentials: Any = found

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        unsigned = {"connection", "user-agent", "accept-encoding", "authorization"}
        signing = AWSRequest(
            method=request.method,
            url=str(request.url),
            data=request.content,
            headers={k: v for k, v in request.headers.items() if k.lower() not in unsigned},
        )
        SigV4Auth(self._credentials.get_frozen_credentials(), self.service, self.region).add_auth(
            signing
        )
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if name in signing.headers:
                request.headers[name] = signing.headers[name]
        yield request


def _replayable(request: httpx.Request) -> bool:
    return isinstance(request.stream, httpx.ByteStream)


class ClientCredentials(httpx.Auth):
    requires_response_body = True  # the token response is read inside the flow

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token_url = token_url
        self._form = {"grant_type": "client_credentials", "client_id": client_id}
        self._form["client_secret"] = client_secret
        if scope:
            self._form["scope"] = scope
        self._clock = clock
        self._token: str | None = None
        self._fresh_until = 0.0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._token is None or self._clock() >= self._fresh_until:
            self._take((yield self._token_request()))
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401 and _replayable(request):
            self._take((yield self._token_request()))
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request

    def _token_request(self) -> httpx.Request:
        return httpx.Request(
            "POST", self.token_url, data=self._form, headers={"Accept": "application/json"}
        )

    def _take(self, response: httpx.Response) -> None:
        if response.status_code == 429 or response.status_code >= 500:
            raise TemporarySinkError(
                f"the token endpoint {self.token_url} answered {response.status_code}; "
                "the batch is retried with the ingest step"
            )
        try:
            body = json.loads(response.content)
        except ValueError:
            body = None
        token = body.get("access_token") if isinstance(body, dict) else None
        if response.status_code != 200 or not isinstance(token, str) or not token:
            error = body.get("error") if isinstance(body, dict) else None
            raise SinkError(
                f"the token endpoint {self.token_url} refused the client credentials "
                f"({response.status_code}{', ' + str(error) if error else ''}); check "
                "tracker.fhir_server.client_id, client_secret and scope"
            )
        lifetime = body.get("expires_in") if isinstance(body, dict) else None
        seconds = float(lifetime) if isinstance(lifetime, (int, float, str)) else 3600.0
        self._token = token
        self._fresh_until = self._clock() + max(0.0, seconds - REFRESH_MARGIN_SECONDS)


class CommandToken(httpx.Auth):
    def __init__(
        self,
        command: str,
        ttl_seconds: float = 300.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._argv = shlex.split(command)
        if not self._argv:
            raise ValueError("tracker.fhir_server.token_command is empty")
        self._ttl = ttl_seconds
        self._clock = clock
        self._token: str | None = None
        self._fresh_until = 0.0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._stale():
            self._keep(self._run_sync())
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401 and _replayable(request):
            self._keep(self._run_sync())
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if self._stale():
            self._keep(await self._run_async())
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401 and _replayable(request):
            self._keep(await self._run_async())
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request

    def _stale(self) -> bool:
        return self._token is None or self._clock() >= self._fresh_until

    def _keep(self, token: str) -> None:
        self._token = token
        self._fresh_until = self._clock() + self._ttl

    def _run_sync(self) -> str:
        try:
            # The command comes from the operator's configuration, not from any request.
            done = subprocess.run(  # noqa: S603
                self._argv, capture_output=True, timeout=COMMAND_TIMEOUT_SECONDS, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise self._failure(type(exc).__name__) from None
        return self._token_from(done.returncode, done.stdout)

    async def _run_async(self) -> str:
        try:
            process = await asyncio.create_subprocess_exec(
                *self._argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
            )
            stdout, _ = await asyncio.wait_for(
                process.communicate(), timeout=COMMAND_TIMEOUT_SECONDS
            )
        except (OSError, TimeoutError) as exc:
            raise self._failure(type(exc).__name__) from None
        return self._token_from(process.returncode or 0, stdout)

    def _token_from(self, status: int, stdout: bytes) -> str:
        token = stdout.decode(errors="replace").strip()
        if status != 0 or not token or len(token.split()) != 1:
            raise self._failure(f"exit status {status}" if status else "no single token printed")
        return token

    def _failure(self, why: str) -> SinkError:
        return SinkError(
            f"tracker.fhir_server.token_command ({self._argv[0]}) gave no token ({why}); run it "
            "yourself as the tracker's user to see why"
        )
