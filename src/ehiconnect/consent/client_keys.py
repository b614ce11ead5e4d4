"""The platform's own key pair for `private_key_jwt` client authentication (SMART asymmetric).

The private key lives in `<data_dir>/client-keys.json` (mode 0600, created once, atomically, by
whichever process needs it first); the public half is served at `/.well-known/jwks.json`, which is
the JWKS URL to register with a health system. Assertions are RS384-signed JWTs with `iss = sub =
client_id`, `aud` = the token endpoint, a fresh `jti` and a five-minute lifetime (SMART App Launch
"Client Authentication: Asymmetric").
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

ALGORITHM = "RS384"
ASSERTION_LIFETIME_SECONDS = 300
_FILE = "client-keys.json"


class ClientSigner:
    def __init__(self, key: RSAKey) -> None:
        self._key = key
        self.kid = str(key.kid)

    def assertion(self, client_id: str, token_endpoint: str) -> str:
        now = int(time.time())
        claims = {
            "iss": client_id,
            "sub": client_id,
            "aud": token_endpoint,
            "jti": secrets.token_urlsafe(24),
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECONDS,
        }
        header = {"alg": ALGORITHM, "kid": self.kid, "typ": "JWT"}
        return jwt.encode(header, claims, self._key, algorithms=[ALGORITHM])

    def public_jwks(self) -> dict[str, Any]:
        public = self._key.as_dict(private=False)
        public.update(alg=ALGORITHM, use="sig", key_ops=["verify"], kid=self.kid)
        return {"keys": [public]}


def load_signer(data_dir: Path) -> ClientSigner:
    path = data_dir / _FILE
    if not path.exists():
        _create(path)
    keys = KeySet.import_key_set(json.loads(path.read_text()))
    key = keys.keys[0]
    if not isinstance(key, RSAKey):
        raise ValueError(f"{path} must hold an RSA key for {ALGORITHM}")
    return ClientSigner(key)


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    key = RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(8)}, private=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"keys": [key.as_dict(private=True)]}, handle)
    try:
        os.link(temporary, path)  # create-if-absent: concurrent starters agree on one key
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
