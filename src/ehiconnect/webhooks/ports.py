"""What the webhooks feature needs from the process, built once in `runtime.py`.

Events, deliveries and endpoints live in the database (`database`; its URL is also where the
dispatcher LISTENs); endpoint secrets are sealed by the vault (`cipher`); every schedule is read
from `clock`; `settings` is the `webhooks` section, and nothing else of the settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from ehiconnect.clock import Clock
from ehiconnect.db.database import Database
from ehiconnect.settings import WebhookSettings
from ehiconnect.vault import TokenCipher


@dataclass(frozen=True)
class WebhookPorts:
    """What the webhooks feature needs from the process (built in runtime.py)."""

    database: Database
    clock: Clock
    cipher: TokenCipher
    settings: WebhookSettings
