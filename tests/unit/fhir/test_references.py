"""References are found wherever they nest and classified against the server's base URL."""

from __future__ import annotations

from typing import Any

import pytest

from ehiconnect.fhir import references as references_module
from ehiconnect.fhir.references import (
    FhirReference,
    ReferenceKind,
    classify_reference,
    iter_attachments,
    iter_references,
    normalize_base,
    path_to_text,
    resolve_attachment_url,
    scan_resource,
)

BASE = "https://ehr.example.org/fhir/R4"


@pytest.mark.parametrize(
    ("raw", "kind", "rtype", "rid", "version"),
    [
        ("Practitioner/123", ReferenceKind.RELATIVE, "Practitioner", "123", None),
        ("Observation/a.b-1/_history/7", ReferenceKind.RELATIVE, "Observation", "a.b-1", "7"),
        (f"{BASE}/Organization/o1", ReferenceKind.SAME_SERVER, "Organization", "o1", None),
        (
            "HTTPS://EHR.example.org:443/fhir/R4/Location/l1/",
            ReferenceKind.EXTERNAL,  # a trailing slash after the id is not a literal reference
            None,
            None,
            None,
        ),
        (
            "https://EHR.example.org:443/fhir/R4/Location/l1",
            ReferenceKind.SAME_SERVER,
            "Location",
            "l1",
            None,
        ),
        (
            "https://other.example.com/fhir/Practitioner/9",
            ReferenceKind.EXTERNAL,
            "Practitioner",
            "9",
            None,
        ),
        (
            "https://ehr.example.org/fhir/Practitioner/9",
            ReferenceKind.EXTERNAL,
            "Practitioner",
            "9",
            None,
        ),
        (f"{BASE}/Practitioner?identifier=x", ReferenceKind.EXTERNAL, None, None, None),
        ("#med1", ReferenceKind.CONTAINED, None, "med1", None),
        ("urn:uuid:0f2b6a48-0d3c-4a8e-9b1e-7f0d9c1d2e3f", ReferenceKind.URN, None, None, None),
        ("urn:oid:1.2.3", ReferenceKind.URN, None, None, None),
        ("practitioner/123", ReferenceKind.UNKNOWN, None, None, None),
        ("Patient", ReferenceKind.UNKNOWN, None, None, None),
    ],
)
def test_classify_reference(
    raw: str, kind: ReferenceKind, rtype: str | None, rid: str | None, version: str | None
) -> None:
    ref = classify_reference(raw, BASE)
    assert (ref.kind, ref.resource_type, ref.resource_id, ref.version) == (
        kind,
        rtype,
        rid,
        version,
    )


def test_only_same_server_references_are_fetchable_with_our_token() -> None:
    assert classify_reference("Practitioner/1", BASE).relative_url == "Practitioner/1"
    assert classify_reference(f"{BASE}/Practitioner/1", BASE).relative_url == "Practitioner/1"
    assert classify_reference("https://evil.example/Practitioner/1", BASE).is_fetchable is False
    assert classify_reference("#c1", BASE).relative_url is None


def test_normalize_base_ignores_case_default_port_and_trailing_slash() -> None:
    assert normalize_base("HTTPS://Ehr.Example.org:443/fhir/") == "https://ehr.example.org/fhir"
    assert normalize_base("http://localhost:8080/fhir") == "http://localhost:8080/fhir"


def _diagnostic_report() -> dict[str, Any]:
    return {
        "resourceType": "DiagnosticReport",
        "id": "dr1",
        "subject": {"reference": "Patient/p1", "display": "Jane"},
        "performer": [{"reference": f"{BASE}/Organization/org1"}, {"display": "no reference"}],
        "result": [{"reference": "Observation/o1"}, {"reference": "#inline-obs"}],
        "extension": [
            {"url": "http://example.org/ext", "valueReference": {"reference": "Location/l1"}}
        ],
        "contained": [
            {
                "resourceType": "Observation",
                "id": "inline-obs",
                "performer": [{"reference": "Practitioner/pr1"}],
            }
        ],
        "presentedForm": [
            {"contentType": "application/pdf", "url": "Binary/pdf1", "size": 1234},
            {"contentType": "text/plain", "data": "aGVsbG8="},
        ],
    }


def test_iter_references_finds_nested_extension_and_contained_references_in_order() -> None:
    refs = list(iter_references(_diagnostic_report(), BASE))
    assert [(r.raw, path_to_text(r.path)) for r in refs] == [
        ("Patient/p1", "subject"),
        (f"{BASE}/Organization/org1", "performer[0]"),
        ("Observation/o1", "result[0]"),
        ("#inline-obs", "result[1]"),
        ("Location/l1", "extension[0].valueReference"),
        ("Practitioner/pr1", "contained[0].performer[0]"),
    ]
    assert all(isinstance(r, FhirReference) for r in refs)


def test_iter_attachments_finds_url_and_inline_data_with_paths() -> None:
    found = list(iter_attachments(_diagnostic_report()))
    assert [(a.path_text, a.url, a.has_inline_data, a.content_type, a.size) for a in found] == [
        ("presentedForm[0]", "Binary/pdf1", False, "application/pdf", 1234),
        ("presentedForm[1]", None, True, "text/plain", None),
    ]


def test_iter_attachments_covers_document_reference_media_and_photo_but_not_extensions() -> None:
    doc = {
        "resourceType": "DocumentReference",
        "id": "d1",
        "content": [
            {"attachment": {"url": "https://ehr.example.org/fhir/R4/Binary/b1"}},
            {"attachment": {"contentType": "text/html", "url": "Binary/b2"}},
        ],
        "extension": [{"url": "http://example.org/some-extension", "valueString": "x"}],
        "relatesTo": [{"target": {"reference": "DocumentReference/d0"}}],
    }
    media = {
        "resourceType": "Media",
        "id": "m1",
        "content": {"contentType": "image/png", "url": "Binary/img"},
    }
    patient = {"resourceType": "Patient", "id": "p", "photo": [{"data": "iVBORw0KGgo="}]}
    assert [a.path_text for a in iter_attachments(doc)] == [
        "content[0].attachment",
        "content[1].attachment",
    ]
    assert [a.path_text for a in iter_attachments(media)] == ["content"]
    assert [a.path_text for a in iter_attachments(patient)] == ["photo[0]"]


def test_deeply_nested_resources_do_not_hit_the_recursion_limit() -> None:
    node: dict[str, Any] = {"reference": "Patient/deep"}
    for _ in range(5000):
        node = {"item": [node]}
    resource = {"resourceType": "QuestionnaireResponse", "id": "q", "item": [node]}
    assert [r.raw for r in iter_references(resource, BASE)] == ["Patient/deep"]


def test_scan_resource_finds_what_the_two_walks_find_in_one() -> None:
    doc = {
        "resourceType": "DocumentReference",
        "id": "d1",
        "subject": {"reference": "Patient/p1"},
        "content": [{"attachment": {"contentType": "text/html", "url": "Binary/b2"}}],
        "extension": [{"url": "http://example.org/some-extension", "valueString": "x"}],
    }
    for resource in (_diagnostic_report(), doc):
        references, attachments = scan_resource(resource, BASE)
        assert references == list(iter_references(resource, BASE))
        assert attachments == list(iter_attachments(resource))
        assert attachments


def test_scan_resource_gives_each_occurrence_its_own_path_and_the_walks_order() -> None:
    # The same reference string in many places (classified once, cached), lists in lists,
    # a Reference inside an Attachment-looking node, an extension whose url is not content,
    # and a contained resource's own attachment.
    resource = {
        "resourceType": "QuestionnaireResponse",
        "id": "q1",
        "subject": {"reference": "Patient/p1"},
        "item": [
            {
                "linkId": "1",
                "answer": [
                    {"valueReference": {"reference": "Patient/p1"}},
                    {"valueAttachment": {"url": "Binary/a1"}},
                    {"item": [{"answer": [{"valueReference": {"reference": "urn:UUID:x"}}]}]},
                ],
            },
            {"linkId": "2", "extension": [{"url": "http://e.org/x", "valueString": "y"}]},
        ],
        "contained": [
            {
                "resourceType": "Media",
                "id": "m1",
                "subject": {"reference": "Patient/p1"},
                "content": {"contentType": "image/png", "url": f"{BASE.upper()}/Binary/m"},
            }
        ],
        "author": {"reference": "Patient/p1", "url": "not-an-attachment"},
    }
    references, attachments = scan_resource(resource, BASE)
    assert references == list(iter_references(resource, BASE))
    assert attachments == list(iter_attachments(resource))
    assert [(r.raw, path_to_text(r.path), r.kind) for r in references] == [
        ("Patient/p1", "subject", ReferenceKind.RELATIVE),
        ("Patient/p1", "item[0].answer[0].valueReference", ReferenceKind.RELATIVE),
        ("urn:UUID:x", "item[0].answer[2].item[0].answer[0].valueReference", ReferenceKind.URN),
        ("Patient/p1", "contained[0].subject", ReferenceKind.RELATIVE),
        ("Patient/p1", "author", ReferenceKind.RELATIVE),
    ]
    assert [a.path_text for a in attachments] == [
        "item[0].answer[1].valueAttachment",
        "contained[0].content",
    ]


def test_a_long_reference_is_classified_without_being_kept() -> None:
    """Short reference strings are cached between resources; a long one (a server's reference
    may be as long as its response) is classified each time and not held after its resource."""
    references_module._classified.cache_clear()
    before = references_module._classified.cache_info().currsize
    long_url = "https://other.example.com/fhir/Practitioner/" + "x" * 10_000
    reference = classify_reference(long_url, BASE)
    assert (reference.kind, reference.resource_type) == (ReferenceKind.EXTERNAL, None)
    assert references_module._classified.cache_info().currsize == before
    classify_reference("Practitioner/cached-one", BASE)
    assert references_module._classified.cache_info().currsize == before + 1


def test_scan_resource_can_skip_the_references() -> None:
    references, attachments = scan_resource(_diagnostic_report(), BASE, references=False)
    assert references == []
    assert [a.path_text for a in attachments] == ["presentedForm[0]", "presentedForm[1]"]


def test_scan_resource_does_not_hit_the_recursion_limit() -> None:
    node: dict[str, Any] = {"reference": "Patient/deep"}
    for _ in range(5000):
        node = {"item": [node]}
    resource = {"resourceType": "QuestionnaireResponse", "id": "q", "item": [node]}
    assert [r.raw for r in scan_resource(resource, BASE)[0]] == ["Patient/deep"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("Binary/abc", (f"{BASE}/Binary/abc", True)),
        (f"{BASE}/Binary/abc", (f"{BASE}/Binary/abc", True)),
        ("/fhir/R4/Binary/abc", (f"{BASE}/Binary/abc", True)),
        ("/documents/abc.pdf", ("https://ehr.example.org/documents/abc.pdf", False)),
        ("https://cdn.example.net/doc.pdf", ("https://cdn.example.net/doc.pdf", False)),
        ("https://ehr.example.org/fhir/R4evil/x", ("https://ehr.example.org/fhir/R4evil/x", False)),
        ("#contained-pdf", None),
        ("urn:uuid:1234", None),
        ("data:text/plain;base64,aGk=", None),
        ("ftp://files.example/doc", None),
    ],
)
def test_resolve_attachment_url(url: str, expected: tuple[str, bool] | None) -> None:
    source = resolve_attachment_url(url, BASE)
    assert (None if source is None else (source.url, source.same_server)) == expected
