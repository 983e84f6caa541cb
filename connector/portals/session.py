"""The portal session: one token shared by every concurrent call, renewed exactly once.

Many push coroutines may discover an expired token at the same moment. Each token carries a
generation number; a caller that failed with generation N asks to renew *N*, and whoever
gets the lock first logs in while the others find generation N+1 already there and reuse
it. Callers that queued behind a failed login share its failure instead of each trying
again, so a refused password costs one login, not one per waiting coroutine.

The login itself is injected, so the REST and SOAP profiles share this bookkeeping.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from connector.errors import PortalError, PortalRefused

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Token:
    """A session token with the generation it belongs to and when it was obtained."""

    value: str
    generation: int
    issued_at: float

    def __repr__(self) -> str:
        return f"Token(generation={self.generation}, issued_at={self.issued_at})"


class Session:
    """Caches the token, renews it on age or on the portal's say-so, remembers refusals."""

    def __init__(
        self, login: Callable[[], Awaitable[str]], *, ttl: float, clock: Callable[[], float]
    ) -> None:
        self._login = login
        self._ttl = ttl
        self._clock = clock
        self._lock = asyncio.Lock()
        self._token: Token | None = None
        self._generation = 0
        self._attempts = 0
        self._failure: PortalError | None = None
        self._refused: str | None = None

    async def token(self) -> Token:
        """A fresh token, logging in first when there is none or it is older than the TTL."""
        current = self._token
        if current is not None and self._fresh(current):
            return current
        return await self._renew_after(current)

    async def renew(self, failed: Token) -> Token:
        """A token newer than `failed`, which the portal just declared expired."""
        return await self._renew_after(failed)

    def refused(self, reason: str) -> None:
        """Record a refusal seen on a service call; the next call logs in again."""
        self._token = None
        self._refused = reason

    def state(self) -> str:
        """'none', 'active' or 'refused: <reason>' (a refusal shows until a login succeeds)."""
        if self._refused is not None:
            return f"refused: {self._refused}"
        current = self._token
        return "active" if current is not None and self._fresh(current) else "none"

    def _fresh(self, token: Token) -> bool:
        return self._clock() - token.issued_at < self._ttl

    async def _renew_after(self, seen: Token | None) -> Token:
        ticket = self._attempts
        async with self._lock:
            current = self._token
            if current is not None and self._fresh(current) and _newer(current, seen):
                return current
            if self._attempts > ticket and self._failure is not None:
                raise copy.copy(self._failure)
            return await self._log_in()

    async def _log_in(self) -> Token:
        try:
            value = await self._login()
        except PortalRefused as exc:
            self._failure, self._token, self._refused = exc, None, str(exc)
            log.warning("portal.login_refused", reason=str(exc))
            raise
        except PortalError as exc:
            self._failure = exc
            log.warning("portal.login_failed", reason=str(exc))
            raise
        finally:
            self._attempts += 1  # counted when finished: callers queued during it share it
        self._generation += 1
        self._failure, self._refused = None, None
        self._token = Token(value=value, generation=self._generation, issued_at=self._clock())
        log.info("portal.login_ok", generation=self._generation)
        return self._token


def _newer(current: Token, seen: Token | None) -> bool:
    return seen is None or current.generation > seen.generation
