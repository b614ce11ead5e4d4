"""A typed async client for the platform API (ehiconnect, or the hosted service it follows).

    async with PlatformClient(base_url, public_id, private_key) as platform:
        connection = await platform.get_connection(org_connection_id)
        started = await platform.start_export(org_connection_id)
        status = await platform.export_status(started.task_id)
        result = await platform.download(url, partial_path, expected_sha256=..., expected_size=...)

Errors, by what the caller does:

    PlatformError
    ├── PlatformUnavailable   network error, 429 or 5xx: retry later with backoff
    ├── PlatformRejected      a 4xx with the envelope's `error` code: fix the request, do not retry
    └── DownloadCorrupt       the file's sha256 or size is not what the platform announced:
                              the partial file is discarded, download again from the start
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from ehiconnect import __version__
from ehiconnect.storage.appender import PageCacheAppender
from ehiconnect.tracker.file_lock import try_lock

HASH_BLOCK = 1024 * 1024


class PlatformError(Exception):
    """A platform call failed; the message says what to do."""


class PlatformUnavailable(PlatformError):
    """Transient: the platform could not be reached or asked us to come back later."""


class PlatformRejected(PlatformError):
    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(f"platform answered {status} {code}: {description}")
        self.status = status
        self.code = code
        self.description = description


class DownloadCorrupt(PlatformError):
    """The downloaded bytes do not match the announced sha256 or size."""


@dataclass(frozen=True)
class Connection:
    org_connection_id: str
    status: str
    api_mode: str | None
    brand_id: str | None
    portal_id: str | None
    endpoint_id: str | None
    platform_type: str | None
    scope: str | None
    consent_expires_at: str | None


@dataclass(frozen=True)
class ExportStarted:
    task_id: str
    status: str


@dataclass(frozen=True)
class ExportStatus:
    task_id: str
    status: Literal["pending", "success", "failed"] | str
    progress: dict[str, Any]
    failure_reason: str | None
    failure_description: str | None
    files: list[dict[str, Any]]
    expires_at: str | None
    stats: dict[str, Any]


@dataclass(frozen=True)
class Downloaded:
    path: Path
    size: int
    sha256: str
    resumed_from: int


class PlatformClient:
    def __init__(
        self,
        base_url: str,
        public_id: str,
        private_key: str,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._public_id = public_id
        self._auth = httpx.BasicAuth(public_id, private_key)
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": f"ehiconnect-tracker/{__version__}"},
            follow_redirects=False,
            transport=transport,
        )

    async def __aenter__(self) -> PlatformClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get_connection(self, org_connection_id: str) -> Connection:
        data = await self._call("GET", f"/bridge/org_connection/{org_connection_id}")
        return Connection(
            org_connection_id=str(data.get("org_connection_id", org_connection_id)),
            status=str(data.get("status") or data.get("connection_status") or "unknown"),
            api_mode=data.get("api_mode"),
            brand_id=data.get("catalog_brand_id") or data.get("brand_id"),
            portal_id=data.get("catalog_portal_id") or data.get("portal_id"),
            endpoint_id=data.get("catalog_endpoint_id") or data.get("endpoint_id"),
            platform_type=data.get("platform_type"),
            scope=data.get("scope"),
            consent_expires_at=data.get("consent_expires_at"),
        )

    async def start_export(self, org_connection_id: str) -> ExportStarted:
        data = await self._call(
            "POST", "/bridge/fhir/ehi-export", json={"org_connection_id": org_connection_id}
        )
        return ExportStarted(task_id=str(data["task_id"]), status=str(data.get("status")))

    async def export_status(self, task_id: str) -> ExportStatus:
        data = await self._call("GET", f"/bridge/fhir/ehi-export/{task_id}")
        return ExportStatus(
            task_id=str(data.get("task_id", task_id)),
            status=str(data.get("status")),
            progress=dict(data.get("progress") or {}),
            failure_reason=data.get("failure_reason"),
            failure_description=data.get("failure_description"),
            files=list(data.get("files") or []),
            expires_at=data.get("expires_at"),
            stats=dict(data.get("stats") or {}),
        )

    def download_url(self, task_id: str, file_id: str) -> str:
        return f"{self.base_url}/bridge/fhir/ehi-export/{task_id}/download/{file_id}"

    async def download(
        self,
        url: str,
        partial: Path,
        *,
        expected_sha256: str | None = None,
        expected_size: int | None = None,
        chunk_bytes: int = HASH_BLOCK,
    ) -> Downloaded:
        """Download `url` into `partial`, resuming from the bytes already there (HTTP Range).

        The file is checked against `expected_sha256` (or the response's sha256 header) and size;
        on a mismatch it is deleted and DownloadCorrupt raised, so the next try starts over. The
        bytes are hashed as they arrive (the kept ones first, on a resume), so the file is not
        read again. `partial` is created owner-only and locked while in use: a second download
        into the same file (a job run twice at once) gets PlatformUnavailable instead of
        appending to it.
        """
        file = await asyncio.to_thread(_PartialFile.open, partial, expected_size)
        try:
            try:
                if expected_size is None or file.size < expected_size:
                    announced = await self._fetch_into(url, file, chunk_bytes)
                    expected_sha256 = expected_sha256 or announced
            except httpx.TransportError as exc:
                raise PlatformUnavailable(
                    f"download interrupted ({type(exc).__name__}); it resumes from the bytes kept"
                ) from exc
            return await asyncio.to_thread(file.verify, expected_sha256, expected_size)
        finally:
            await asyncio.to_thread(file.close)

    async def _fetch_into(self, url: str, partial: _PartialFile, chunk_bytes: int) -> str | None:
        # The link came from the platform (a signed webhook or the status endpoint), so its own
        # host gets the credentials, whatever public name it uses; a redirect elsewhere (presigned
        # storage) must not: S3 refuses a request signed two ways, and the key is not theirs.
        offset = partial.size
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        target = url
        for _ in range(3):
            request = self._http.build_request("GET", target, headers=headers)
            if _origin(target) == _origin(url):
                request = next(self._auth.auth_flow(request))
            response = await self._http.send(request, stream=True)
            try:
                if response.status_code in (301, 302, 303, 307, 308):
                    target = str(response.url.join(response.headers["location"]))
                    continue
                if response.status_code == 416 and offset:
                    return _announced_sha256(response.headers)
                _raise_for_download(response)
                if offset and response.status_code == 200:  # Range ignored: start over
                    await asyncio.to_thread(partial.restart)
                buffer = bytearray()
                try:
                    async for chunk in response.aiter_bytes():
                        buffer += chunk
                        if len(buffer) >= chunk_bytes:
                            full, buffer = buffer, bytearray()
                            await asyncio.to_thread(partial.append, full)
                finally:
                    # Keep every byte received, even when the connection dropped: resumed later.
                    await asyncio.to_thread(partial.append, buffer, sync=True)
                return _announced_sha256(response.headers)
            finally:
                await response.aclose()
        raise PlatformRejected(502, "too_many_redirects", f"download of {url} redirected 3 times")

    async def brand_name(self, brand_id: str) -> str | None:
        """The health system's display name in the platform's catalog, None when it has none."""
        data = await self._call(
            "GET", "/bridge/catalog", params={"public_id": self._public_id, "brand_id": brand_id}
        )
        name = data.get("name")
        return name if isinstance(name, str) and name.strip() else None

    async def _call(
        self, method: str, path: str, json: Any = None, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        try:
            response = await self._http.request(
                method, self.base_url + path, json=json, params=params, auth=self._auth
            )
        except httpx.TransportError as exc:
            raise PlatformUnavailable(
                f"{method} {path} failed ({type(exc).__name__}): is the platform at "
                f"{self.base_url} up? it is retried with backoff"
            ) from exc
        _raise_for_status(response)
        body = response.json()
        data = body.get("data") if isinstance(body, dict) and "success" in body else body
        return data if isinstance(data, dict) else {}


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _raise_for_status(response: httpx.Response) -> None:
    if response.is_success:
        return
    status = response.status_code
    code, description = "http_error", response.reason_phrase
    try:
        body = response.json()
        if isinstance(body, dict):
            code = str(body.get("error") or code)
            description = str(body.get("error_description") or description)
    except ValueError:
        pass
    if status == 429 or status >= 500:
        raise PlatformUnavailable(f"platform answered {status} {code}: {description}; retrying")
    raise PlatformRejected(status, code, description)


def _raise_for_download(response: httpx.Response) -> None:
    status = response.status_code
    if response.is_success:
        return
    if status == 429 or status >= 500:
        raise PlatformUnavailable(f"download answered {status}; retrying with backoff")
    raise PlatformRejected(status, "download_failed", f"download answered {status}")


def _announced_sha256(headers: httpx.Headers) -> str | None:
    value = headers.get("x-content-sha256")
    return value.lower() if value else None


class _PartialFile:
    """A download's partial file, open and locked, with the sha256 and size of what it holds.

    Appended to through the page cache by `storage.appender.PageCacheAppender`, which hands the
    written windows to the disk as the download goes instead of leaving gigabytes of dirty pages
    for the fsync that ends each fetch."""

    def __init__(self, path: Path, appender: PageCacheAppender, fd: int) -> None:
        self.path = path
        self._appender = appender
        self._fd = fd  # the appender's (and the lock's): closed with it
        self._digest = hashlib.sha256()
        self.size = 0
        self.resumed_from = 0

    @classmethod
    def open(cls, path: Path, expected_size: int | None) -> _PartialFile:
        """The file as an earlier, interrupted download left it (emptied when it cannot be
        right), its kept bytes hashed."""
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # a download holds PHI
        if not try_lock(fd):
            os.close(fd)
            raise PlatformUnavailable(
                f"another download is writing {path.name} (the same job running twice?); "
                "it is retried later"
            )
        try:
            digest, size = hashlib.sha256(), 0
            while block := os.read(fd, HASH_BLOCK):
                digest.update(block)
                size += len(block)
        except BaseException:
            os.close(fd)
            raise
        # The appender takes the descriptor (it closes it even when it cannot be made).
        partial = cls(path, PageCacheAppender(fd, size), fd)
        partial._digest, partial.size = digest, size
        try:
            if expected_size is not None and partial.size > expected_size:
                partial.restart()
        except BaseException:
            partial.close()
            raise
        partial.resumed_from = partial.size
        return partial

    def restart(self) -> None:
        self._appender.cut(0)
        self._digest = hashlib.sha256()
        self.size = self.resumed_from = 0

    def append(self, data: bytes | bytearray, *, sync: bool = False) -> None:
        self._appender.append(data)
        self._digest.update(data)
        self.size += len(data)
        if sync:
            self._appender.sync()
            os.fsync(self._fd)

    def verify(self, sha256: str | None, size: int | None) -> Downloaded:
        """The download, when it is what was announced; else the file is deleted."""
        self._appender.sync()
        actual = self._digest.hexdigest()
        on_disk = os.fstat(self._fd).st_size
        wrong_sha = sha256 is not None and actual != sha256.lower()
        if wrong_sha or (size is not None and self.size != size) or on_disk != self.size:
            self.path.unlink(missing_ok=True)
            raise DownloadCorrupt(
                f"downloaded file has {on_disk} bytes and sha256 {actual[:12]}…, expected "
                f"{size} bytes and {(sha256 or '?')[:12]}…; it was discarded and is downloaded "
                "again"
            )
        return Downloaded(
            path=self.path, size=self.size, sha256=actual, resumed_from=self.resumed_from
        )

    def close(self) -> None:
        self._appender.close()  # releases the lock
