"""Read a server's CapabilityStatement and `.well-known/smart-configuration` into small summaries.

Parsing is tolerant of missing optional parts (real servers omit a lot) and strict about the
shape: a document that is not the expected kind raises `CapabilityError` saying what was found.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

OAUTH_URIS_EXTENSION = "http://fhir-registry.smarturl.it/StructureDefinition/oauth-uris"
_EVERYTHING_NAMES = frozenset({"everything", "patient-everything"})


class CapabilityError(ValueError):
    """The document is not a CapabilityStatement / SMART configuration we can read."""


@dataclass(frozen=True)
class ResourceSupport:
    """What the server declares for one resource type."""

    resource_type: str
    interactions: frozenset[str] = frozenset()
    search_params: frozenset[str] = frozenset()
    operations: frozenset[str] = frozenset()


@dataclass(frozen=True)
class OAuthEndpoints:
    """Endpoints from the SMART `oauth-uris` security extension of a CapabilityStatement."""

    authorize: str | None = None
    token: str | None = None
    revoke: str | None = None
    introspect: str | None = None
    register: str | None = None
    manage: str | None = None


@dataclass(frozen=True)
class CapabilitySummary:
    fhir_version: str | None
    resources: Mapping[str, ResourceSupport] = field(default_factory=dict)
    supports_patient_everything: bool = False
    oauth: OAuthEndpoints = OAuthEndpoints()

    @property
    def declares_resources(self) -> bool:
        """False when the statement lists no resources (then nothing can be ruled out)."""
        return bool(self.resources)

    def supports_type(self, resource_type: str) -> bool:
        """Declared, or unknown because the statement declares no resources at all."""
        return not self.resources or resource_type in self.resources

    def supports_interaction(self, resource_type: str, code: str) -> bool | None:
        """True/False when the type declares interactions; None when it declares none."""
        support = self.resources.get(resource_type)
        if support is None or not support.interactions:
            return None
        return code in support.interactions

    def supports_search_param(self, resource_type: str, param: str) -> bool | None:
        """True/False when the type declares search params; None when it declares none."""
        support = self.resources.get(resource_type)
        if support is None or not support.search_params:
            return None
        return param in support.search_params


@dataclass(frozen=True)
class SmartConfiguration:
    """The fields of `.well-known/smart-configuration` the platform uses."""

    authorization_endpoint: str | None
    token_endpoint: str | None
    revocation_endpoint: str | None = None
    introspection_endpoint: str | None = None
    capabilities: frozenset[str] = frozenset()
    code_challenge_methods_supported: frozenset[str] = frozenset()
    token_endpoint_auth_methods_supported: frozenset[str] = frozenset()
    scopes_supported: frozenset[str] = frozenset()

    @property
    def supports_pkce_s256(self) -> bool:
        return "S256" in self.code_challenge_methods_supported


def parse_capability_statement(document: Any) -> CapabilitySummary:
    """Summarize a CapabilityStatement (R4; also accepts an STU3 Conformance)."""
    if not isinstance(document, Mapping):
        raise CapabilityError(
            f"expected a CapabilityStatement JSON object, got {type(document).__name__}"
        )
    kind = document.get("resourceType")
    if kind not in ("CapabilityStatement", "Conformance"):
        raise CapabilityError(
            f"expected resourceType CapabilityStatement from the server's /metadata, got {kind!r}"
        )
    resources: dict[str, ResourceSupport] = {}
    everything = False
    oauth = OAuthEndpoints()
    for rest in _objects(document.get("rest")):
        if rest.get("mode", "server") != "server":
            continue
        everything = everything or _names_everything(rest.get("operation"))
        found = _oauth_endpoints(rest.get("security"))
        if found is not None and oauth == OAuthEndpoints():
            oauth = found
        for entry in _objects(rest.get("resource")):
            support = _resource_support(entry)
            if support is None:
                continue
            resources[support.resource_type] = _merge(resources.get(support.resource_type), support)
            if support.resource_type == "Patient" and _names_everything(entry.get("operation")):
                everything = True
    version = document.get("fhirVersion")
    return CapabilitySummary(
        fhir_version=version if isinstance(version, str) else None,
        resources=resources,
        supports_patient_everything=everything,
        oauth=oauth,
    )


def parse_smart_configuration(document: Any) -> SmartConfiguration:
    """Summarize `.well-known/smart-configuration` (SMART App Launch 1.0/2.x)."""
    if not isinstance(document, Mapping):
        raise CapabilityError(
            f"expected the SMART configuration JSON object, got {type(document).__name__}"
        )
    return SmartConfiguration(
        authorization_endpoint=_text(document.get("authorization_endpoint")),
        token_endpoint=_text(document.get("token_endpoint")),
        revocation_endpoint=_text(document.get("revocation_endpoint")),
        introspection_endpoint=_text(document.get("introspection_endpoint")),
        capabilities=_strings(document.get("capabilities")),
        code_challenge_methods_supported=_strings(document.get("code_challenge_methods_supported")),
        token_endpoint_auth_methods_supported=_strings(
            document.get("token_endpoint_auth_methods_supported")
        ),
        scopes_supported=_strings(document.get("scopes_supported")),
    )


def _resource_support(entry: Mapping[str, Any]) -> ResourceSupport | None:
    resource_type = entry.get("type")
    if not isinstance(resource_type, str) or not resource_type:
        return None
    return ResourceSupport(
        resource_type=resource_type,
        interactions=frozenset(_named(entry.get("interaction"), "code")),
        search_params=frozenset(_named(entry.get("searchParam"), "name")),
        operations=frozenset(_named(entry.get("operation"), "name")),
    )


def _merge(old: ResourceSupport | None, new: ResourceSupport) -> ResourceSupport:
    if old is None:
        return new
    return ResourceSupport(
        resource_type=new.resource_type,
        interactions=old.interactions | new.interactions,
        search_params=old.search_params | new.search_params,
        operations=old.operations | new.operations,
    )


def _names_everything(operations: Any) -> bool:
    for operation in _objects(operations):
        name = operation.get("name")
        if isinstance(name, str) and name.lstrip("$").lower() in _EVERYTHING_NAMES:
            return True
        definition = operation.get("definition")
        if isinstance(definition, Mapping):  # STU3 wrote definition as a Reference
            definition = definition.get("reference")
        if isinstance(definition, str) and definition.rstrip("/").lower().endswith(
            "operationdefinition/patient-everything"
        ):
            return True
    return False


def _oauth_endpoints(security: Any) -> OAuthEndpoints | None:
    if not isinstance(security, Mapping):
        return None
    for extension in _objects(security.get("extension")):
        if extension.get("url") != OAUTH_URIS_EXTENSION:
            continue
        urls = {
            sub.get("url"): sub.get("valueUri") or sub.get("valueUrl")
            for sub in _objects(extension.get("extension"))
        }
        return OAuthEndpoints(
            authorize=_text(urls.get("authorize")),
            token=_text(urls.get("token")),
            revoke=_text(urls.get("revoke")),
            introspect=_text(urls.get("introspect")),
            register=_text(urls.get("register")),
            manage=_text(urls.get("manage")),
        )
    return None


def _objects(value: Any) -> Iterable[Mapping[str, Any]]:
    if isinstance(value, list):
        return [item for item in value if isinstance(item, Mapping)]
    return []


def _named(value: Any, key: str) -> Iterable[str]:
    return [item[key] for item in _objects(value) if isinstance(item.get(key), str)]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _strings(value: Any) -> frozenset[str]:
    if isinstance(value, str):  # some servers send a space-separated string
        return frozenset(value.split())
    if isinstance(value, list):
        return frozenset(item for item in value if isinstance(item, str))
    return frozenset()
