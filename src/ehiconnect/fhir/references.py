"""Find the references and attachments inside a FHIR resource, and classify them.

A reference is any `Reference` element, recognised as an object with a string `reference` key,
wherever it is nested (extensions and contained resources included). Each is classified against
the FHIR base URL of the server the resource came from:

    relative   `Practitioner/123` (optionally `/_history/2`): same server
    same_server an absolute URL under the base, e.g. `https://ehr/fhir/Practitioner/123`
    external   an absolute URL on another server: never send the patient's token there
    contained  `#med1`: a resource inside this one's `contained`
    urn        `urn:uuid:...` / `urn:oid:...`: a bundle-local identity, nothing to fetch
    unknown    anything else (malformed, or a literal we cannot resolve)

Attachments are `Attachment` elements (DocumentReference.content[].attachment,
DiagnosticReport.presentedForm[], Media.content, Patient.photo[], ...), recognised as objects
with a `url` or `data` that either carry a `contentType` or sit under an Attachment-typed key.
Each comes with its JSON path so the crawler can hydrate it into an inline `Binary` later.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urljoin, urlsplit

Path = tuple[str | int, ...]

_TYPE = r"[A-Z][A-Za-z]{1,63}"
_ID = r"[A-Za-z0-9\-\.]{1,64}"
_RELATIVE = re.compile(rf"^(?P<type>{_TYPE})/(?P<id>{_ID})(?:/_history/(?P<version>{_ID}))?$")
_ABSOLUTE_TAIL = re.compile(rf"/(?P<type>{_TYPE})/(?P<id>{_ID})(?:/_history/(?P<version>{_ID}))?$")

# Keys whose value is an Attachment (or a list of them) in FHIR R4 core resources.
ATTACHMENT_KEYS = frozenset(
    {
        "attachment",
        "presentedForm",
        "photo",
        "valueAttachment",
        "contentAttachment",
        "sourceAttachment",
        "answerAttachment",
    }
)
_EXTENSION_KEYS = frozenset({"extension", "modifierExtension"})
_TREE = (dict, list)


class ReferenceKind(StrEnum):
    RELATIVE = "relative"
    SAME_SERVER = "same_server"
    EXTERNAL = "external"
    CONTAINED = "contained"
    URN = "urn"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class FhirReference:
    """One reference found in a resource, classified against a base URL."""

    raw: str
    kind: ReferenceKind
    path: Path
    resource_type: str | None = None
    resource_id: str | None = None
    version: str | None = None

    @property
    def is_fetchable(self) -> bool:
        """True when it names a resource on the same server (safe to fetch with our token)."""
        return self.kind in (ReferenceKind.RELATIVE, ReferenceKind.SAME_SERVER)

    @property
    def relative_url(self) -> str | None:
        """`Type/id` for a same-server reference, else None."""
        if not self.is_fetchable:
            return None
        return f"{self.resource_type}/{self.resource_id}"


@dataclass(frozen=True)
class FoundAttachment:
    """An Attachment element and where it sits, e.g. path ("content", 0, "attachment")."""

    path: Path
    content_type: str | None
    url: str | None
    has_inline_data: bool
    size: int | None

    @property
    def path_text(self) -> str:
        return path_to_text(self.path)


@dataclass(frozen=True)
class AttachmentSource:
    """Where to download an attachment from, and whether the patient's token may go with it."""

    url: str
    same_server: bool


def resolve_attachment_url(url: str, base_url: str) -> AttachmentSource | None:
    """The absolute URL of an attachment, relative ones resolved against the FHIR base.

    `Binary/abc` and `/fhir/Binary/abc` resolve on the FHIR server; only URLs under the base are
    `same_server` (send the token); anything else is fetched without credentials. None for
    contained (`#id`), `urn:`, `data:` or non-HTTP URLs, which have nothing to download.
    """
    value = url.strip()
    if not value or value.startswith("#") or value.lower().startswith(("urn:", "data:")):
        return None
    absolute = urljoin(base_url.rstrip("/") + "/", value)
    if urlsplit(absolute).scheme.lower() not in ("http", "https"):
        return None
    base = normalize_base(base_url)
    parts = urlsplit(absolute)
    normalized = normalize_base(f"{parts.scheme}://{parts.netloc}{parts.path}")
    return AttachmentSource(url=absolute, same_server=normalized.startswith(base + "/"))


def path_to_text(path: Path) -> str:
    """("content", 0, "attachment") -> "content[0].attachment"."""
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else step)
    return text


def normalize_base(base_url: str) -> str:
    """A base URL compared without case in scheme/host, default ports or a trailing slash."""
    parts = urlsplit(base_url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    default_port = {"http": 80, "https": 443}.get(scheme)
    netloc = host if port in (None, default_port) else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


_Classified = tuple[ReferenceKind, str | None, str | None, str | None]
CACHED_REFERENCE_LENGTH = 256


def classify_reference(raw: str, base_url: str, path: Path = ()) -> FhirReference:
    """Classify one reference string relative to the FHIR base URL it came from."""
    # Cached: a record names the same few resources (its patient, encounters, clinicians)
    # thousands of times. Only short strings: the cache outlives the resource, and a server's
    # reference may be as long as its response.
    classify = _classified if len(raw) <= CACHED_REFERENCE_LENGTH else _classify
    kind, resource_type, resource_id, version = classify(raw, base_url)
    return FhirReference(raw, kind, path, resource_type, resource_id, version)


def _classify(raw: str, base_url: str) -> _Classified:
    """(kind, type, id, version) of a reference string."""
    value = raw.strip()
    if value.startswith("#"):
        return ReferenceKind.CONTAINED, None, value[1:] or None, None
    if value[:9].lower().startswith(("urn:uuid:", "urn:oid:")):
        return ReferenceKind.URN, None, None, None
    match = _RELATIVE.match(value)
    if match:
        return ReferenceKind.RELATIVE, match["type"], match["id"], match["version"]
    if value[:8].lower().startswith(("http://", "https://")):
        return _classify_absolute(value, base_url)
    return ReferenceKind.UNKNOWN, None, None, None


def _classify_absolute(value: str, base_url: str) -> _Classified:
    parts = urlsplit(value)
    tail = _ABSOLUTE_TAIL.search(parts.path)
    if tail is None or parts.query or parts.fragment:
        return ReferenceKind.EXTERNAL, None, None, None
    server_base = f"{parts.scheme}://{parts.netloc}{parts.path[: tail.start()]}"
    same = normalize_base(server_base) == normalize_base(base_url)
    kind = ReferenceKind.SAME_SERVER if same else ReferenceKind.EXTERNAL
    return kind, tail["type"], tail["id"], tail["version"]


_classified = functools.lru_cache(maxsize=4096)(_classify)


def iter_references(resource: dict[str, Any], base_url: str) -> Iterator[FhirReference]:
    """Every Reference element in the resource (including contained resources), in order."""
    for path, node in _walk(resource, ()):
        reference = node.get("reference")
        if isinstance(reference, str) and reference:
            yield classify_reference(reference, base_url, path)


def iter_attachments(resource: dict[str, Any]) -> Iterator[FoundAttachment]:
    """Every Attachment element with a `url` or inline `data`, in document order."""
    for path, node in _walk(resource, ()):
        if _looks_like_attachment(path, node):
            yield _found_attachment(path, node)


# A node on `scan_resource`'s walk: (the node, its key or index, its parent's entry); the root's
# parent is None.
_Entry = tuple[Any, str | int, Any]


def scan_resource(
    resource: dict[str, Any], base_url: str, *, references: bool = True
) -> tuple[list[FhirReference], list[FoundAttachment]]:
    """`iter_references` and `iter_attachments` of `resource` in one walk, each list in order.

    With `references=False` the references are not classified (an empty list): a caller that
    wants only the attachments pays for the walk alone.

    The crawl scans every resource it stages, on its event loop: each node on the walk's stack
    holds its key and its parent's entry, and a node's path is built only for a reference or
    attachment found there (building every node's path tuple was a quarter of the walk's time).
    """
    found_references: list[FhirReference] = []
    found_attachments: list[FoundAttachment] = []
    root: _Entry = (resource, "", None)
    stack: list[_Entry] = [
        (value, key, root) for key, value in reversed(resource.items()) if isinstance(value, _TREE)
    ]
    while stack:
        entry = stack.pop()
        node = entry[0]
        if isinstance(node, dict):
            reference = node.get("reference")
            if references and isinstance(reference, str) and reference:
                found_references.append(classify_reference(reference, base_url, _path_of(entry)))
            if isinstance(node.get("url"), str) or isinstance(node.get("data"), str):
                path = _path_of(entry)
                if _looks_like_attachment(path, node):
                    found_attachments.append(_found_attachment(path, node))
            for key, value in reversed(node.items()):
                if isinstance(value, _TREE):
                    stack.append((value, key, entry))
        else:
            for index in range(len(node) - 1, -1, -1):
                value = node[index]
                if isinstance(value, _TREE):
                    stack.append((value, index, entry))
    return found_references, found_attachments


def _path_of(entry: _Entry) -> Path:
    steps: list[str | int] = []
    while entry[2] is not None:
        steps.append(entry[1])
        entry = entry[2]
    steps.reverse()
    return tuple(steps)


def _found_attachment(path: Path, node: dict[str, Any]) -> FoundAttachment:
    url = node.get("url")
    size = node.get("size")
    content_type = node.get("contentType")
    return FoundAttachment(
        path=path,
        content_type=content_type if isinstance(content_type, str) else None,
        url=url if isinstance(url, str) and url else None,
        has_inline_data=isinstance(node.get("data"), str) and bool(node["data"]),
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
    )


def _looks_like_attachment(path: Path, node: dict[str, Any]) -> bool:
    has_payload = isinstance(node.get("url"), str) or isinstance(node.get("data"), str)
    if not has_payload or not path:
        return False
    parent_key = _nearest_key(path)
    if parent_key in _EXTENSION_KEYS:
        return False  # an Extension: its `url` names the extension, not content
    if parent_key in ATTACHMENT_KEYS:
        return True
    return isinstance(node.get("contentType"), str)


def _nearest_key(path: Path) -> str | None:
    for step in reversed(path):
        if isinstance(step, str):
            return step
    return None


def _walk(node: Any, path: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Depth-first over every object in a JSON tree, with its path (iterative: no recursion)."""
    stack: list[tuple[Path, Any]] = [(path, node)]
    while stack:
        current_path, current = stack.pop()
        if isinstance(current, dict):
            if current_path:
                yield current_path, current
            children = [((*current_path, key), value) for key, value in current.items()]
        elif isinstance(current, list):
            children = [((*current_path, index), value) for index, value in enumerate(current)]
        else:
            continue
        stack.extend(child for child in reversed(children) if isinstance(child[1], dict | list))
