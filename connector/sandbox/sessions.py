"""Login sessions of the sandbox portal: random tokens with an absolute lifetime.

Sessions live in memory only, so a restarted sandbox has forgotten every token, exactly
like a portal that lost its session store; the connector must log in again.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

_PURGE_ABOVE = 1024  # sweep expired tokens once this many are held


class Sessions:
    """Tokens handed out at login, each valid for `ttl` seconds after it was issued."""

    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self._ttl = ttl
        self._clock = clock
        self._expiry: dict[str, float] = {}

    def open(self) -> str:
        """A new token."""
        if len(self._expiry) > _PURGE_ABOVE:
            self._purge()
        token = secrets.token_urlsafe(24)
        self._expiry[token] = self._clock() + self._ttl
        return token

    def valid(self, token: object) -> bool:
        """True while `token` was issued here and has not expired."""
        expiry = self._expiry.get(token) if isinstance(token, str) else None
        return expiry is not None and self._clock() < expiry

    def _purge(self) -> None:
        now = self._clock()
        self._expiry = {t: e for t, e in self._expiry.items() if e > now}
