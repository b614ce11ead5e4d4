"""When an access token is due for a refresh (pure).

A fixed margin ("refresh 5 minutes before expiry") breaks with short-lived tokens: a health system
that hands out 60 s tokens would see a refresh before every request, each rotating the refresh
token. The margin therefore never exceeds a fraction of the token's own lifetime, so a token is
used for most of its life whatever that life is.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class RefreshMargin:
    """Refresh `seconds` before expiry, but never more than `lifetime_fraction` of the lifetime."""

    seconds: float
    lifetime_fraction: float | None = None

    def for_lifetime(self, lifetime_seconds: int | None) -> dt.timedelta:
        """The margin that applies to a token that lived `lifetime_seconds` when issued."""
        margin = self.seconds
        if self.lifetime_fraction is not None and lifetime_seconds:
            margin = min(margin, self.lifetime_fraction * lifetime_seconds)
        return dt.timedelta(seconds=margin)


def refresh_due(
    expires_at: dt.datetime | None,
    lifetime_seconds: int | None,
    margin: RefreshMargin,
    now: dt.datetime,
) -> bool:
    """True when a token expiring at `expires_at` should be refreshed at `now`.

    A token without a known expiry is used until the health system refuses it (401), which the
    caller answers with a forced refresh.
    """
    if expires_at is None:
        return False
    return expires_at - margin.for_lifetime(lifetime_seconds) <= now
