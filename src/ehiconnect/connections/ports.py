"""What the connections feature needs from the process, built once in `runtime.py`.

Revoking a connection and refreshing tokens talk to health systems (`http`, with the fleet's
`client_signer` for private_key_jwt), open and seal tokens (`cipher`) and emit events (`jobs`).
`settings` is the consent section: token refresh margins and the refresher's schedule.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import procrastinate

from ehiconnect.clock import Clock
from ehiconnect.db.database import Database
from ehiconnect.settings import ConsentSettings
from ehiconnect.smart.client_keys import ClientSigner
from ehiconnect.vault import TokenCipher


@dataclass(frozen=True)
class ConnectionPorts:
    """What the connections feature needs from the process (built in runtime.py)."""

    database: Database
    jobs: procrastinate.App
    clock: Clock
    cipher: TokenCipher
    http: httpx.AsyncClient
    client_signer: ClientSigner
    settings: ConsentSettings
