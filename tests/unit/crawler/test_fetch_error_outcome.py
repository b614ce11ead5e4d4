"""A failed request's entry in the error report (the crawl's and packaging's alike)."""

from __future__ import annotations

from ehiconnect.crawler.ports import FetchError

URL = "https://ehr.example.org/fhir/Binary/b1"


def _issue(failure: FetchError) -> dict[str, object]:
    outcome = failure.outcome("Binary")
    assert outcome["resourceType"] == "OperationOutcome"
    [issue] = outcome["issue"]
    return dict(issue)


def test_a_refused_request_is_a_security_issue_that_says_nothing_was_fetched() -> None:
    issue = _issue(FetchError(URL, None, "the address is private", refused=True))
    assert (issue["code"], issue["severity"]) == ("security", "error")
    assert issue["diagnostics"] == "Not fetched: the address is private"


def test_a_missing_resource_is_a_warning_with_its_status() -> None:
    issue = _issue(FetchError(URL, 404, "HTTP 404"))
    assert (issue["code"], issue["severity"]) == ("not-found", "warning")
    assert "HTTP 404" in str(issue["diagnostics"])


def test_an_issue_type_given_with_the_failure_wins_over_the_status() -> None:
    plain = _issue(FetchError(URL, 200, "the response is larger than the limit"))
    costly = _issue(
        FetchError(URL, 200, "the response is larger than the limit", issue="too-costly")
    )
    assert plain["code"] == "processing"
    assert costly["code"] == "too-costly"
    assert costly["diagnostics"] == plain["diagnostics"]
