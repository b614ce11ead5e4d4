"""A crawl of a persona's whole record through the FHIR API returns exactly what was generated."""

from __future__ import annotations

import pytest

from ehiconnect.sandbox.config import Faults
from ehiconnect.sandbox.generator import (
    attachment_sha256,
    expected_attachments,
    expected_resources,
    generate_record,
    resolve_persona,
)
from ehiconnect.sandbox.presentation import present
from ehiconnect.sandbox.state import SandboxState
from tests.integration.sandbox.crawler import Crawler
from tests.integration.sandbox.smart_app import SmartApp


def _served_as(slug: str, persona_id: str, fhir_base: str) -> dict[tuple[str, str], object]:
    system, persona = resolve_persona(slug, persona_id)
    return {
        (r["resourceType"], r["id"]): present(r, system.quirks, fhir_base)
        for r in generate_record(system, persona).resources
    }


@pytest.mark.parametrize(
    ("slug", "persona_id", "everything"),
    [("harbor", "amy", True), ("harbor", "amy", False), ("cedar", "beth", False),
     ("summit", "carl", False)],
)  # fmt: skip
def test_a_full_crawl_equals_the_generated_record(
    request: pytest.FixtureRequest, slug: str, persona_id: str, everything: bool
) -> None:
    app: SmartApp = request.getfixturevalue(slug)
    crawler = Crawler(app, app.connect(persona_id))
    found = crawler.crawl(everything=everything)
    assert set(found) == set(expected_resources(slug, persona_id))
    assert found == _served_as(slug, persona_id, app.fhir_base)


@pytest.mark.parametrize(
    ("slug", "persona_id"), [("harbor", "amy"), ("cedar", "beth"), ("summit", "carl")]
)
def test_every_attachment_downloads_byte_for_byte(
    request: pytest.FixtureRequest, slug: str, persona_id: str
) -> None:
    app: SmartApp = request.getfixturevalue(slug)
    crawler = Crawler(app, app.connect(persona_id))
    docs = crawler.pages("DocumentReference", patient=crawler.patient)
    specs = {s.binary_id: s for s in expected_attachments(slug, persona_id)}
    assert len(docs) == len(specs)
    for doc in docs:
        attachment = doc["content"][0]["attachment"]
        spec = specs[attachment["url"].rsplit("/", 1)[1]]
        digest, size, content_type = crawler.attachment_sha256(attachment["url"])
        assert (digest, size) == (attachment_sha256(spec), spec.size)
        assert size == attachment["size"]
        assert content_type == attachment["contentType"]


def test_a_cerner_like_crawl_pages_ten_at_a_time(summit: SmartApp) -> None:
    crawler = Crawler(summit, summit.connect("tess"))
    crawler.crawl(everything=False, count=50)
    observations = crawler.get("Observation", patient=crawler.patient, _count=50).json()
    assert len(observations["entry"]) == 10
    assert crawler.stats.pages > 17


def test_a_crawl_survives_every_transient_fault_at_once(
    harbor: SmartApp, sandbox_state: SandboxState
) -> None:
    crawler = Crawler(harbor, harbor.connect("tina"))
    sandbox_state.set_faults(
        "harbor",
        Faults(
            rate_limit_share=0.15, retry_after_s=0, server_error_share=0.1,
            drop_connection_share=0.1, malformed_json_share=0.1, expire_access_tokens_after=15,
        ),
    )  # fmt: skip
    found = crawler.crawl(everything=False, count=7)
    assert set(found) == set(expected_resources("harbor", "tina"))
    assert found == _served_as("harbor", "tina", harbor.fhir_base)
    assert crawler.stats.retries > 0
    assert crawler.stats.refreshes > 0
