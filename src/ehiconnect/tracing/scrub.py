"""What a span may carry out of the process: ids, hosts, statuses and resource types.

Never a query string (FHIR searches name the patient, OAuth redirects carry codes and state),
never the path of an outbound request (it holds the patient's id at the health system), never a
token or secret. Applied to every span, whoever made it, just before it is exported: the
instrumentation libraries record URLs as they see them.

Pure: no OpenTelemetry import, unit-tested on plain mappings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from ehiconnect.fhir.resource_types import HYDRATE_BY_REFERENCE, PATIENT_SEARCHES
from ehiconnect.logging import redact_text

URL_KEYS = frozenset({"url.full", "http.url"})
"""Absolute URLs: an outbound one keeps only its origin, an inbound one its path."""
PATH_KEYS = frozenset({"http.target", "url.path"})
"""Paths (older conventions: with the query): dropped on outbound spans, query cut otherwise."""
DROPPED_KEYS = frozenset({"url.query", "url.fragment"})

RESOURCE_TYPE_KEY = "fhir.resource_type"

# Resource types a crawl may name in a URL; any other path segment could be an id.
KNOWN_RESOURCE_TYPES = frozenset(
    {spec.resource_type for spec in PATIENT_SEARCHES}
    | HYDRATE_BY_REFERENCE
    | {"Patient", "Binary", "Bundle", "CapabilityStatement", "OperationOutcome"}
)

_URL_IN_TEXT = re.compile(r"\b(?P<origin>https?://[^\s/?#\"'<>]+)(?P<rest>[^\s\"'<>]*)")


def origin(url: str) -> str:
    """`scheme://host[:port]` of an absolute URL (credentials dropped); "" when it has none."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def without_query(url: str) -> str:
    """The URL or path up to its query or fragment."""
    return re.split(r"[?#]", url, maxsplit=1)[0]


def _port(scheme: str, port: int | None) -> int:
    return port if port is not None else (443 if scheme == "https" else 80)


def fhir_resource_type(url: str) -> str | None:
    """The first path segment that is a known resource type (`metadata` → CapabilityStatement)."""
    for segment in urlsplit(url).path.split("/"):
        if segment in KNOWN_RESOURCE_TYPES:
            return segment
        if segment == "metadata":
            return "CapabilityStatement"
    return None


def scrub_text(text: str) -> str:
    """Free text (an error message, a status): secrets redacted, every URL cut to its origin."""
    return _URL_IN_TEXT.sub(_url_origin_only, redact_text(text))


def _url_origin_only(match: re.Match[str]) -> str:
    return match.group("origin") + ("/…" if match.group("rest") not in ("", "/") else "")


def scrub_attributes(attributes: Mapping[str, Any], *, outbound: bool) -> dict[str, Any]:
    """A copy of span or event attributes fit to export.

    `outbound`: a client span (a request this process sent): URLs keep their origin and the
    resource type they named (`fhir.resource_type`), nothing of their path.
    """
    scrubbed: dict[str, Any] = {}
    resource_type: str | None = None
    for key, value in attributes.items():
        if key in DROPPED_KEYS:
            continue
        if isinstance(value, str):
            if key in URL_KEYS:
                if outbound:
                    resource_type = resource_type or fhir_resource_type(value)
                    parts = urlsplit(value)
                    if parts.hostname:  # the host, whichever semantic conventions are in use
                        scrubbed.setdefault("server.address", parts.hostname)
                        scrubbed.setdefault("server.port", _port(parts.scheme, parts.port))
                    value = origin(value)
                else:
                    value = redact_text(without_query(value))
            elif key in PATH_KEYS:
                if outbound:
                    continue
                value = redact_text(without_query(value))
            else:
                value = scrub_text(value)
        elif isinstance(value, Sequence) and not isinstance(value, bytes):
            value = tuple(scrub_text(v) if isinstance(v, str) else v for v in value)
        scrubbed[key] = value
    if resource_type is not None:
        scrubbed[RESOURCE_TYPE_KEY] = resource_type
    return scrubbed
