"""Reading API credentials from an Authorization header (pure; no database)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from ehiconnect.errors import Unauthorized
from ehiconnect.ids import ApiMode, mode_of_key
from ehiconnect.scope import OrgScope

HOW_TO_AUTHENTICATE = (
    "authenticate with HTTP Basic `public_id:private_key` or `Authorization: Bearer <private_key>`"
)


@dataclass(frozen=True)
class Credentials:
    private_key: str
    public_id: str | None  # present with Basic auth; Bearer carries the private key alone
    api_mode: ApiMode


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: an organization acting in one mode."""

    org_id: str
    api_mode: ApiMode
    public_id: str
    key_id: int

    @property
    def scope(self) -> OrgScope:
        """What this caller may see: its organization, in its key's mode."""
        return OrgScope(org_id=self.org_id, api_mode=self.api_mode)

    @property
    def actor(self) -> str:
        return f"key:{self.public_id}"


def parse_authorization(header: str | None) -> Credentials:
    if not header:
        raise Unauthorized(f"no credentials were sent; {HOW_TO_AUTHENTICATE}")
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        private_key, public_id = value, None
    elif scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized(
                f"the Basic credentials are not valid base64; {HOW_TO_AUTHENTICATE}"
            ) from None
        public_id, sep, private_key = decoded.partition(":")
        if not sep:
            raise Unauthorized(f"the Basic credentials lack a ':'; {HOW_TO_AUTHENTICATE}")
    else:
        raise Unauthorized(f"unsupported authorization scheme; {HOW_TO_AUTHENTICATE}")

    key_mode = mode_of_key(private_key)
    if key_mode is None or not private_key.startswith("private_"):
        raise Unauthorized(
            "the private key is malformed: it should start with private_test_ or private_live_"
        )
    if public_id is not None:
        public_mode = mode_of_key(public_id)
        if public_mode is None or not public_id.startswith("public_"):
            raise Unauthorized(
                "the public id is malformed: it should start with public_test_ or public_live_"
            )
        if public_mode != key_mode:
            raise Unauthorized(
                f"the public id is a {public_mode} id but the private key is a {key_mode} key; "
                "use the pair from the same mode"
            )
    return Credentials(private_key=private_key, public_id=public_id, api_mode=key_mode)
