"""The HTML pages a patient sees: sign-in (with the test personas listed) and consent."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from ehiconnect.sandbox.config import HealthSystem
from ehiconnect.sandbox.scopes import ScopeSet

FIXED_SCOPES = frozenset({"launch/patient", "openid", "fhirUser"})
"""Scopes the consent page shows but does not let the patient untick."""

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem} .sandbox{background:#fff3cd;padding:.5rem;border-radius:4px}
table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:.25rem .5rem}
.error{color:#a00} label{display:block;margin:.3rem 0} button{margin-right:.5rem}
"""


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def login_page(
    system: HealthSystem, action: str, request_id: str, client_id: str, error: str | None = None
) -> str:
    rows = "".join(
        f"<tr><td>{escape(p.username)}</td><td>{escape(p.password)}</td>"
        f"<td>{escape(p.given_name)} {escape(p.family_name)}</td>"
        f"<td>{escape(p.size_class)}: {escape(p.description)}</td></tr>"
        for p in system.personas
    )
    problem = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    body = f"""
<h1>{escape(system.name)} &mdash; patient portal</h1>
<p class="sandbox">Sandbox: synthetic data only. The application <b>{escape(client_id)}</b>
asks to read your health record.</p>
{problem}
<form method="post" action="{escape(action)}" id="login">
<input type="hidden" name="request_id" value="{escape(request_id)}">
<label>Username <input name="username" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password"
 required></label>
<button type="submit" name="action" value="login">Sign in</button>
</form>
<h2>Test patients</h2>
<table><tr><th>Username</th><th>Password</th><th>Name</th><th>Record</th></tr>{rows}</table>
"""
    return _page(f"Sign in - {system.name}", body)


def consent_page(
    system: HealthSystem,
    action: str,
    request_id: str,
    client_id: str,
    patient_name: str,
    requested: ScopeSet,
    offered_types: Sequence[str],
) -> str:
    items = []
    wildcards = [s.raw for s in requested.clinical if s.resource_type == "*"]
    if wildcards:
        boxes = "".join(
            f'<label><input type="checkbox" name="resource_type" value="{escape(t)}" checked> '
            f"{escape(t)}</label>"
            for t in offered_types
        )
        items.append(
            f"<fieldset><legend>Your records ({escape(' '.join(wildcards))})</legend>"
            f"{boxes}</fieldset>"
        )
    for scope in requested.raw:
        if scope in wildcards:
            continue
        if scope in FIXED_SCOPES:
            items.append(
                f'<input type="hidden" name="scope" value="{escape(scope)}">'
                f"<label>{escape(scope)} (required)</label>"
            )
        else:
            items.append(
                f'<label><input type="checkbox" name="scope" value="{escape(scope)}" checked> '
                f"{escape(_describe(scope))}</label>"
            )
    body = f"""
<h1>{escape(system.name)} &mdash; share your record?</h1>
<p>Signed in as <b>{escape(patient_name)}</b>. <b>{escape(client_id)}</b> asks for:</p>
<form method="post" action="{escape(action)}" id="consent">
<input type="hidden" name="request_id" value="{escape(request_id)}">
{"".join(items)}
<p>Untick anything you do not want to share.</p>
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>
"""
    return _page(f"Consent - {system.name}", body)


def error_page(title: str, message: str) -> str:
    body = f'<h1>{escape(title)}</h1><p class="error" role="alert">{escape(message)}</p>'
    return _page(title, body)


def _describe(scope: str) -> str:
    if scope == "offline_access":
        return "offline_access: keep access until you revoke it"
    if "/" in scope and "." in scope:
        resource, _, perm = scope.split("/", 1)[1].partition(".")
        what = "all your records" if resource == "*" else resource
        return f"{scope}: read {what}" if perm else scope
    return scope
