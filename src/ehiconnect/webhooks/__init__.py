"""Signed, at-least-once webhook delivery from a transactional outbox (DESIGN §2).

Pure parts (no I/O): `payloads` (each event type's `data` as a typed model), `events` (the
envelope), `schedule` (retry schedule and endpoint-disable policy), `urls`. The shell:
`outbox.emit` writes an event in the caller's transaction; `endpoints` and `history` read and
change an organization's endpoints and events in its `OrgScope`; `delivery` sends due deliveries
through the SSRF-guarded client in `ehiconnect.http`, signed by `ehiconnect.signing`; each worker
runs a `dispatcher`, built by `senders` from the feature's `ports`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import procrastinate


def make_blueprint() -> procrastinate.Blueprint:
    """The webhook tasks (imported lazily: the pure modules above must stay import-light)."""
    from ehiconnect.webhooks.tasks import make_blueprint as factory

    return factory()
