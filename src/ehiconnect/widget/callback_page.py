"""The page the OAuth callback ends on: it hands the result to the widget and closes itself.

The widget opened the sign-in popup; after the health system redirects back to
`/v1/bridge/callback`, the platform renders this page in that popup. Its script posts

    {"source": "ehiconnect", "type": "connection_result", "payload": {...}}

to `window.opener` (restricted to `target_origin` when the embedding page's origin is known) and
closes the window. Without an opener (the popup lost it, or the page was opened directly) the
page says in words what happened; when the flow kept its result for the widget's result handle
(`close_without_opener`), the widget reads it from the platform instead, so the page closes
itself all the same.

Nothing from the result is interpolated into markup or script: the payload travels as JSON in a
`<script type="application/json">` block with `<`, `>` and `&` escaped, and the human message is
HTML-escaped. The inline script is a constant, so the page pins it with a CSP hash.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from typing import Final
from urllib.parse import urlsplit

from ehiconnect.consent.result import (
    FAILURE_FIELDS,
    SUCCESS_FIELDS,
    checked_result,
    failure_result,
    success_result,
)

__all__ = [
    "CALLBACK_PAGE_CSP",
    "FAILURE_FIELDS",
    "MESSAGE_SOURCE",
    "MESSAGE_TYPE",
    "SUCCESS_FIELDS",
    "failure_result",
    "render_callback_page",
    "success_result",
]

MESSAGE_SOURCE: Final = "ehiconnect"
MESSAGE_TYPE: Final = "connection_result"

# Reads the result block, posts it to the opener and closes. Kept free of any per-request text so
# its hash is fixed (see CALLBACK_PAGE_CSP).
_SCRIPT: Final = """
(function () {
  "use strict";
  var block = document.getElementById("ehiconnect-result");
  var message = JSON.parse(block.textContent);
  var button = document.getElementById("close-window");
  button.addEventListener("click", function () { window.close(); });
  var reported = false;
  if (window.opener && window.opener !== window) {
    try {
      window.opener.postMessage(message.envelope, message.targetOrigin);
      reported = true;
    } catch (error) {
      reported = false;
    }
  }
  if (!reported) {
    document.body.classList.add("no-opener");
    // The widget polls the platform for this result; the window has nothing left to do.
    if (!message.closeWithoutOpener) return;
  }
  window.close();
})();
"""

_STYLE: Final = """
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
  color: #1b1f24; background: #f6f8fa; }
main { max-width: 28rem; margin: 3rem auto; padding: 1.5rem; background: #fff;
  border-radius: 12px; box-shadow: 0 1px 3px rgba(0, 0, 0, .12); }
h1 { font-size: 1.25rem; margin: 0 0 .5rem; }
.hint { display: none; color: #57606a; }
.no-opener .hint { display: block; }
button { font: inherit; padding: .5rem 1rem; border-radius: 8px; border: 1px solid #8c959f;
  background: #fff; cursor: pointer; }
button:focus-visible { outline: 3px solid #0969da; outline-offset: 2px; }
"""


def _csp_hash(source: str) -> str:
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


CALLBACK_PAGE_CSP: Final = (
    "default-src 'none'; "
    f"script-src {_csp_hash(_SCRIPT)}; "
    f"style-src {_csp_hash(_STYLE)}; "
    "base-uri 'none'; form-action 'none'"
)
"""The page's Content-Security-Policy; also worth sending as a header by the route."""


def _checked_origin(target_origin: str | None) -> str:
    """`*` when unknown; otherwise a bare scheme://host[:port], which postMessage requires."""
    if target_origin is None:
        return "*"
    parts = urlsplit(target_origin)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username is not None
    ):
        raise ValueError(f"target_origin must look like https://host[:port], not {target_origin!r}")
    return f"{parts.scheme}://{parts.netloc}".lower()


def _json_for_script_block(value: object) -> str:
    """JSON that cannot end its <script> block or open a comment: escape <, > and &."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def render_callback_page(
    result: dict[str, object], target_origin: str | None, *, close_without_opener: bool = False
) -> str:
    """A complete HTML page that posts `result` to the widget and closes its window.

    `result` is `success_result(...)` or `failure_result(...)` (or an equivalent dict; extra keys
    are dropped). `target_origin` is the embedding page's origin when known, so only that page can
    read the message; None posts to any opener (`"*"`), which the payload tolerates because it
    holds no secret: an `org_connection_id` is useless without the organization's private key.
    `close_without_opener`: the result is also kept for the widget's result handle, so a page
    that lost its opener closes itself instead of waiting for the patient.
    """
    payload = checked_result(result)
    envelope = {"source": MESSAGE_SOURCE, "type": MESSAGE_TYPE, "payload": payload}
    data = {
        "envelope": envelope,
        "targetOrigin": _checked_origin(target_origin),
        "closeWithoutOpener": close_without_opener,
    }

    if payload["status"] == "success":
        title = "You're connected"
        detail = "Your health records are connected. You can close this window."
    else:
        title = "The connection was not completed"
        detail = str(payload["error_description"] or payload["error"])
    hint = "Return to the app where you started to continue."

    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{html.escape(CALLBACK_PAGE_CSP)}">
<meta name="referrer" content="no-referrer">
<title>{html.escape(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<main>
<h1>{html.escape(title)}</h1>
<p id="detail">{html.escape(detail)}</p>
<p class="hint">{html.escape(hint)}</p>
<button type="button" id="close-window">Close this window</button>
</main>
<script type="application/json" id="ehiconnect-result">{_json_for_script_block(data)}</script>
<script>{_SCRIPT}</script>
</body>
</html>
"""
