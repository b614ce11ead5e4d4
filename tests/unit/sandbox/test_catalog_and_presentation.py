from __future__ import annotations

import copy

from ehiconnect.sandbox.capability import capability_statement
from ehiconnect.sandbox.catalog import sandbox_catalog
from ehiconnect.sandbox.config import Quirks, SandboxConfig
from ehiconnect.sandbox.generator import generate_record, resolve_persona
from ehiconnect.sandbox.presentation import PresentedViews, present


def test_catalog_ids_are_stable_across_base_urls_and_unique() -> None:
    here = sandbox_catalog("http://127.0.0.1:8500")
    there = sandbox_catalog("https://sandbox.example.org/")
    ids = [e[k]["id"] for e in here for k in ("brand", "portal", "endpoint")]
    assert ids == [e[k]["id"] for e in there for k in ("brand", "portal", "endpoint")]
    assert len(set(ids)) == len(ids) == 9


def test_catalog_endpoints_point_at_the_sandbox_urls() -> None:
    entry = next(
        e for e in sandbox_catalog("http://h:1/") if e["endpoint"]["platform_type"] == "epic"
    )
    endpoint = entry["endpoint"]
    assert endpoint["url"] == "http://h:1/cedar/fhir"
    assert endpoint["token_endpoint"] == "http://h:1/cedar/auth/token"
    assert endpoint["authorization_endpoint"] == "http://h:1/cedar/auth/authorize"
    assert endpoint["revocation_endpoint"] == "http://h:1/cedar/auth/revoke"
    assert endpoint["fhir_version"] == "4.0.1"
    assert entry["brand"]["locations"][0]["state"] == "WI"


def _document() -> dict[str, object]:
    system, persona = resolve_persona("harbor", "tina")
    return generate_record(system, persona).of_type("DocumentReference")[0]


def test_absolute_attachment_urls_and_no_last_updated_are_applied_to_a_copy() -> None:
    stored = _document()
    before = copy.deepcopy(stored)
    shown = present(
        stored, Quirks(attachment_urls="absolute", include_last_updated=False), "http://b/fhir"
    )
    url = shown["content"][0]["attachment"]["url"]  # type: ignore[index]
    assert url.startswith("http://b/fhir/Binary/")
    assert "lastUpdated" not in shown["meta"]  # type: ignore[operator]
    assert stored == before


def test_relative_urls_are_served_as_stored() -> None:
    stored = _document()
    shown = present(stored, Quirks(attachment_urls="relative"), "http://b/fhir")
    assert shown["content"][0]["attachment"]["url"].startswith("Binary/")  # type: ignore[index]


def test_presented_views_answer_what_present_answers_per_quirks_and_base() -> None:
    system, persona = resolve_persona("harbor", "tina")
    record = generate_record(system, persona)
    doc = next(r for r in record.resources if r["resourceType"] == "DocumentReference")
    views = PresentedViews(max_views=2)
    hidden = Quirks(attachment_urls="absolute", include_last_updated=False)
    relative = Quirks(attachment_urls="relative")
    for quirks, base in ((hidden, "http://a/fhir"), (hidden, "http://b/fhir"), (relative, "x")):
        first = views.present(record, doc, quirks, base)
        assert first == present(doc, quirks, base)
        assert views.present(record, doc, quirks, base) is first
    # Only two views are kept: the first is made again, the same as before.
    again = views.present(record, doc, hidden, "http://a/fhir")
    assert again == present(doc, hidden, "http://a/fhir")
    assert again["content"][0]["attachment"]["url"].startswith("http://a/fhir/Binary/")


def test_capability_statement_advertises_everything_only_where_supported() -> None:
    config = SandboxConfig()
    for slug, expected in (("harbor", True), ("cedar", False)):
        system = config.system(slug)
        assert system is not None
        body = capability_statement(system, "http://b/fhir", "http://b/auth")
        patient = next(r for r in body["rest"][0]["resource"] if r["type"] == "Patient")
        assert ("operation" in patient) is expected
        uris = body["rest"][0]["security"]["extension"][0]["extension"]
        assert {u["url"] for u in uris} >= {"authorize", "token"}
