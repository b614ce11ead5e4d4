"""Download one attachment through the crawl's session into a sink, restarting when it breaks.

Used twice: by the crawl (as `FhirSession.download`, the `FhirSource` port's download), which
stages attachments up to a size limit as soon as they are found, and by packaging, which streams
the larger ones straight into the export file, so their bytes are downloaded, encoded, hashed and
written once. A sink (`ports.AttachmentSink`) sees `begin` (the served content type and declared
length), then the chunks, and `restart` when the body broke off and the download starts again; it
may raise `TooLarge` from `begin` or `write` to stop the download.
"""

from __future__ import annotations

import asyncio
import random
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import httpx

from ehiconnect.crawler.policy import RetryPolicy
from ehiconnect.crawler.ports import AttachmentSink, FetchError
from ehiconnect.http.ssrf import TargetRefused


class StreamingSession(Protocol):
    """What a download needs of `fetch.FhirSession` (which calls this module, not the reverse)."""

    policy: RetryPolicy

    def stream(self, url: str) -> AbstractAsyncContextManager[httpx.Response]: ...


async def fetch_attachment(
    session: StreamingSession, url: str, sink: AttachmentSink
) -> FetchError | str:
    """The served content type once the whole body is in `sink`, else the failure (a
    `FetchError` for the error report). `TooLarge` from the sink propagates."""
    attempt = 0
    while True:
        try:
            # The session sends the patient's token only to URLs under the FHIR base.
            async with session.stream(url) as response:
                served: str = response.headers.get("content-type", "").split(";")[0].strip()
                declared = response.headers.get("content-length", "")
                await sink.begin(served, int(declared) if declared.isdigit() else None)
                async for chunk in response.aiter_bytes():
                    await sink.write(chunk)
            return served
        except FetchError as exc:
            return exc
        except TargetRefused as exc:  # too large a response from outside the base
            return FetchError(url, None, str(exc), refused=True)
        except httpx.HTTPError as exc:
            # The body broke off mid-stream: start the download again, a bounded number of times.
            attempt += 1
            if attempt >= session.policy.max_attempts:
                detail = f"the download broke off {attempt} times ({type(exc).__name__})"
                return FetchError(url, None, detail)
            await sink.restart()
            await asyncio.sleep(session.policy.backoff_seconds(attempt, random.random))
