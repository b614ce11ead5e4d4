"""CapabilityStatement and SMART configuration documents are summarized into typed values."""

from __future__ import annotations

from typing import Any

import pytest

from ehiconnect.fhir.capability import (
    OAUTH_URIS_EXTENSION,
    CapabilityError,
    OAuthEndpoints,
    parse_capability_statement,
    parse_smart_configuration,
)


def _statement(**rest: Any) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "fhirVersion": "4.0.1",
        "rest": [{"mode": "server", **rest}],
    }


SECURITY = {
    "extension": [
        {
            "url": OAUTH_URIS_EXTENSION,
            "extension": [
                {"url": "authorize", "valueUri": "https://auth.example/authorize"},
                {"url": "token", "valueUri": "https://auth.example/token"},
                {"url": "revoke", "valueUri": "https://auth.example/revoke"},
            ],
        }
    ]
}


def test_resources_search_params_and_oauth_uris_are_summarized() -> None:
    summary = parse_capability_statement(
        _statement(
            security=SECURITY,
            resource=[
                {
                    "type": "Observation",
                    "interaction": [{"code": "read"}, {"code": "search-type"}],
                    "searchParam": [{"name": "patient", "type": "reference"}, {"name": "category"}],
                },
                {"type": "Patient", "interaction": [{"code": "read"}]},
            ],
        )
    )
    assert summary.fhir_version == "4.0.1"
    assert set(summary.resources) == {"Observation", "Patient"}
    assert summary.resources["Observation"].interactions == {"read", "search-type"}
    assert summary.supports_search_param("Observation", "category") is True
    assert summary.supports_search_param("Observation", "subject") is False
    assert summary.supports_search_param("Patient", "name") is None
    assert summary.supports_type("Observation")
    assert not summary.supports_type("Claim")
    assert summary.supports_patient_everything is False
    assert summary.oauth == OAuthEndpoints(
        authorize="https://auth.example/authorize",
        token="https://auth.example/token",
        revoke="https://auth.example/revoke",
    )


@pytest.mark.parametrize(
    ("rest", "expected"),
    [
        ({"resource": [{"type": "Patient", "operation": [{"name": "everything"}]}]}, True),
        ({"resource": [{"type": "Patient", "operation": [{"name": "$everything"}]}]}, True),
        (
            {
                "resource": [
                    {
                        "type": "Patient",
                        "operation": [
                            {
                                "name": "patient-dump",
                                "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                            }
                        ],
                    }
                ]
            },
            True,
        ),
        ({"operation": [{"name": "everything"}]}, True),  # declared at the system level
        ({"resource": [{"type": "Encounter", "operation": [{"name": "everything"}]}]}, False),
        ({"resource": [{"type": "Patient", "operation": [{"name": "export"}]}]}, False),
    ],
)
def test_patient_everything_detection(rest: dict[str, Any], expected: bool) -> None:
    assert parse_capability_statement(_statement(**rest)).supports_patient_everything is expected


def test_a_statement_without_resources_rules_nothing_out() -> None:
    summary = parse_capability_statement({"resourceType": "CapabilityStatement"})
    assert summary.fhir_version is None
    assert summary.supports_type("Observation")
    assert not summary.declares_resources


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"resourceType": "OperationOutcome"}, "got 'OperationOutcome'"),
        ([], "got list"),
        ("<html>", "got str"),
    ],
)
def test_wrong_documents_are_refused_with_what_was_found(document: Any, message: str) -> None:
    with pytest.raises(CapabilityError, match=message):
        parse_capability_statement(document)


def test_smart_configuration_fields() -> None:
    config = parse_smart_configuration(
        {
            "authorization_endpoint": "https://auth.example/authorize",
            "token_endpoint": "https://auth.example/token",
            "revocation_endpoint": "https://auth.example/revoke",
            "introspection_endpoint": "https://auth.example/introspect",
            "capabilities": ["launch-standalone", "client-public", "permission-v2"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"],
            "scopes_supported": "openid fhirUser patient/*.rs",
            "grant_types_supported": ["authorization_code"],
        }
    )
    assert config.token_endpoint == "https://auth.example/token"
    assert config.introspection_endpoint == "https://auth.example/introspect"
    assert "permission-v2" in config.capabilities
    assert config.supports_pkce_s256
    assert config.token_endpoint_auth_methods_supported == {
        "private_key_jwt",
        "client_secret_basic",
    }
    assert config.scopes_supported == {"openid", "fhirUser", "patient/*.rs"}


def test_smart_configuration_tolerates_missing_fields_but_not_a_non_object() -> None:
    config = parse_smart_configuration({"token_endpoint": ""})
    assert config.token_endpoint is None
    assert not config.supports_pkce_s256
    with pytest.raises(CapabilityError):
        parse_smart_configuration(None)
