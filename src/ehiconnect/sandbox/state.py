"""Everything a running sandbox holds: config, clock, auth store, live faults, signing key."""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from typing import TypeVar

from joserfc.jwk import ECKey, RSAKey

from ehiconnect.clock import Clock, SystemClock
from ehiconnect.sandbox.config import Faults, HealthSystem, SandboxConfig
from ehiconnect.sandbox.presentation import PresentedViews
from ehiconnect.sandbox.store import InMemoryAuthStore

T = TypeVar("T")


class UnknownSystemError(KeyError):
    """No health system with that slug is configured."""


class SandboxState:
    """The per-process state behind `build_sandbox_app`, reachable as `app.state.sandbox`.

    `signing_key` (ES256) signs access tokens, `id_token_key` (RS256) OpenID Connect id_tokens;
    both public keys are served at `{slug}/auth/jwks`.

    Tests change faults from Python with `set_faults(slug, Faults(...))` / `reset_faults(slug)`
    (or over HTTP with `PUT`/`DELETE /_admin/{slug}/faults`).
    """

    def __init__(
        self,
        config: SandboxConfig,
        *,
        clock: Clock | None = None,
        store: InMemoryAuthStore | None = None,
    ) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.store = store or InMemoryAuthStore()
        self._faults: dict[str, Faults] = {s.slug: s.faults.model_copy() for s in config.systems}
        self._fault_lock = threading.Lock()
        self._fault_rng = random.Random(config.fault_seed)  # noqa: S311 - fault sampling
        self.presented = PresentedViews()
        """Resources as each system shows them, made once (see `PresentedViews`)."""
        self.verified_access_tokens: dict[str, str] = {}
        """Access-token JWTs whose signature verified, and the store key each carries: a crawl
        sends the same token with every request, and verifying ES256 costs more than serving
        a small page. Bounded by `remember_verified_token`."""
        self.signing_key = ECKey.generate_key(
            "P-256", parameters={"kid": "sandbox-access-token", "alg": "ES256", "use": "sig"}
        )
        # OpenID Connect clients must be able to verify RS256 id_tokens (its default algorithm).
        self.id_token_key = RSAKey.generate_key(
            2048, parameters={"kid": "sandbox-id-token", "alg": "RS256", "use": "sig"}
        )

    def remember_verified_token(self, value: str, key: str) -> None:
        """Keep a verified token's store key (at most 4,096: past that, the cache starts over)."""
        if len(self.verified_access_tokens) >= 4096:
            self.verified_access_tokens.clear()
        self.verified_access_tokens[value] = key

    def system(self, slug: str) -> HealthSystem:
        system = self.config.system(slug)
        if system is None:
            raise UnknownSystemError(slug)
        return system

    def faults(self, slug: str) -> Faults:
        self.system(slug)
        with self._fault_lock:
            return self._faults[slug]

    def set_faults(self, slug: str, faults: Faults) -> None:
        """Replace the live faults of one health system."""
        self.system(slug)
        with self._fault_lock:
            self._faults[slug] = faults.model_copy()

    def reset_faults(self, slug: str) -> None:
        """Back to the faults the configuration started with."""
        self.set_faults(slug, self.system(slug).faults)

    def pick(self, items: Sequence[T]) -> T:
        """One of `items`, drawn from the fault generator."""
        with self._fault_lock:
            return self._fault_rng.choice(items)

    def draw(self, share: float) -> bool:
        """True with probability `share` (1.0 always, 0.0 never)."""
        if share <= 0.0:
            return False
        if share >= 1.0:
            return True
        with self._fault_lock:
            return self._fault_rng.random() < share
