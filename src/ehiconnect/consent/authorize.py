"""Building the SMART standalone-launch authorize URL, and reading scopes (pure)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


def authorize_url(
    authorization_endpoint: str,
    *,
    client_id: str,
    redirect_uri: str,
    scope: str,
    state: str,
    code_challenge: str,
    aud: str | None,
) -> str:
    """The URL the patient's browser is sent to; keeps any query the endpoint already has."""
    parts = urlsplit(authorization_endpoint)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("scope", scope),
        ("state", state),
        ("code_challenge", code_challenge),
        ("code_challenge_method", "S256"),
    ]
    if aud:
        query.append(("aud", aud))
    return urlunsplit(parts._replace(query=urlencode(query)))


def scope_set(scope: str | None) -> set[str]:
    return {s for s in (scope or "").split() if s}


def has_patient_access(granted_scope: str | None) -> bool:
    """True when some patient-level clinical scope was granted (v1 `.read` or v2 `.r…`/`.s`)."""
    for scope in scope_set(granted_scope):
        if not scope.startswith("patient/"):
            continue
        permission = scope.split("?", 1)[0].rsplit(".", 1)[-1]
        if permission in ("read", "*") or "r" in permission or "s" in permission:
            return True
    return False


def grant_problem(patient: str | None, granted_scope: str | None) -> str | None:
    """Why a token response cannot serve an export, or None when it can."""
    if not patient:
        return "the health system named no patient (was launch/patient granted?)"
    if not has_patient_access(granted_scope):
        return "the health system granted no patient-level read scope"
    return None


def downgrade_to_v1(scope: str) -> str:
    """SMART v2 scopes rewritten as v1 for servers that only know v1 (`.rs` → `.read`)."""
    out = []
    for item in scope.split():
        if item.startswith(("patient/", "user/", "system/")) and "." in item:
            head, permission = item.split("?", 1)[0].rsplit(".", 1)
            if set(permission) <= set("cruds") and permission:
                item = f"{head}.read" if set(permission) <= set("rs") else f"{head}.*"
        out.append(item)
    return " ".join(out)
