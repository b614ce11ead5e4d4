"""Signed, at-least-once webhook delivery from a transactional outbox (DESIGN §2).

Pure parts (no I/O): `events` (types and envelope), `signing` (Standard Webhooks signatures),
`schedule` (retry schedule and endpoint-disable policy). The shell: `outbox.emit` writes an event in
the caller's transaction, `delivery` sends due deliveries through the SSRF-guarded client in
`ehiconnect.http`, `endpoints` manages endpoints and secrets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import procrastinate


def make_blueprint() -> procrastinate.Blueprint:
    """The webhook tasks (imported lazily: the pure modules above must stay import-light)."""
    from ehiconnect.webhooks.tasks import make_blueprint as factory

    return factory()
