"""What the consent flow needs from the process, built once in `runtime.py`.

A flow discovers and calls a health system's authorization server (`http`, `client_signer`),
seals the PKCE verifier and the tokens (`cipher`), records the connection and emits its event
(`database`, `jobs`). `public_base_url` is where health systems send the patient back to.
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
class ConsentPorts:
    """What the consent feature needs from the process (built in runtime.py)."""

    database: Database
    jobs: procrastinate.App
    clock: Clock
    cipher: TokenCipher
    http: httpx.AsyncClient
    client_signer: ClientSigner
    settings: ConsentSettings
    public_base_url: str
