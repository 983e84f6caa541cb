"""The REST profile: the portal's JSON adapter behind the `Portal` port.

Composition only: `wire` moves bytes, `session` keeps the token, `classify` decides what a
reply means and `retrying` retries what is worth retrying. This module builds the bodies
and wires the four together for each service.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import structlog
from pydantic import SecretStr

from connector.core.records import BatchReply, Outgoing, PortalView
from connector.errors import PortalRefused, PortalTransient
from connector.portals import classify
from connector.portals.classify import Answer, ReplyCodes
from connector.portals.retrying import RetryAfterGate, with_retries
from connector.portals.session import Session, Token
from connector.portals.wire import RawReply, Wire, build_client
from connector.settings import PortalSettings

log = structlog.get_logger(__name__)

PUSH_HEADERS = "DongBoHoSoMC"
PUSH_STEPS = "CapNhatTienDoHoSoMC"
LOOKUP = "TraCuuHoSo"
#: The catalogues served on `share_path`, used to validate codes before sending.
CATALOGUES = frozenset({"LayDanhSachTTHC", "LayDanhMucCoQuan", "LayDanhMucLinhVuc"})

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


class RestPortal:
    """DVCQG over JSON/HTTPS: push headers and steps, look dossiers and catalogues up."""

    def __init__(
        self,
        settings: PortalSettings,
        password: SecretStr,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._password = password
        self._codes = ReplyCodes.from_settings(settings)
        self._wire = Wire(
            build_client(settings, transport),
            max_bytes=settings.max_reply_bytes,
            total=settings.timeouts.total,
        )
        self._session = Session(self._login, ttl=settings.session_ttl_seconds, clock=clock)
        self._sleep = sleep
        self._clock = clock
        self._gate = RetryAfterGate(clock)

    async def push_headers(self, items: Sequence[Outgoing], *, updating: bool) -> BatchReply:
        """DongBoHoSoMC: create (`updating=False`) or replace (`True`) dossier headers."""
        extra = {"isUpdating": "True" if updating else "False", "data": _batch(items)}
        return await self._push(PUSH_HEADERS, extra, items)

    async def push_steps(self, items: Sequence[Outgoing]) -> BatchReply:
        """CapNhatTienDoHoSoMC: append progress steps."""
        return await self._push(PUSH_STEPS, {"data": _batch(items)}, items)

    async def lookup(self, ma_ho_so: str) -> PortalView | None:
        """TraCuuHoSo: the portal's header and step count for one dossier, None if unknown."""
        body = self._body(LOOKUP, {"mahoso": ma_ho_so})
        rows = await self._retrying(lambda: self._rows(self._settings.integration_path, body))
        if not rows:
            return None
        first = rows[0]
        return PortalView(ma_ho_so=ma_ho_so, fields=first, step_count=_count(first))

    async def catalogue(self, service: str) -> list[dict[str, Any]]:
        """One of the code catalogues (procedures, agencies, domains) from `share_path`."""
        if service not in CATALOGUES:
            raise ValueError(f"unknown catalogue {service!r}; expected one of {sorted(CATALOGUES)}")
        body = self._body(service, {})
        rows = await self._retrying(lambda: self._rows(self._settings.share_path, body))
        return rows or []

    async def probe(self) -> None:
        """One login (no retries: an operator is waiting for the answer)."""
        await self._session.token()

    def session_state(self) -> str:
        return self._session.state()

    async def aclose(self) -> None:
        await self._wire.aclose()

    async def _push(
        self, service: str, extra: Mapping[str, Any], items: Sequence[Outgoing]
    ) -> BatchReply:
        body, keys = self._body(service, extra), classify.collect_keys(items)
        path = self._settings.integration_path
        steps = classify.step_identities(items) if service == PUSH_STEPS else None

        async def attempt() -> BatchReply:
            answer = await self._authorised(path, body)
            return classify.push_reply(answer, keys, self._codes, steps=steps)

        return await self._retrying(attempt)

    async def _rows(self, path: str, body: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        answer = await self._authorised(path, body)
        return classify.result_rows(answer, self._codes, service=str(body["service"]))

    def _body(self, service: str, extra: Mapping[str, Any]) -> dict[str, Any]:
        return {"madonvi": self._settings.madonvi, "service": service, **extra}

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        return await with_retries(
            call, self._settings.retry, sleep=self._sleep, clock=self._clock, gate=self._gate
        )

    async def _authorised(self, path: str, body: Mapping[str, Any]) -> Answer:
        """Send with the current token; on expiry log in again once and resend.

        A session refused right after a fresh login is not the items' fault and will not
        heal by resending them: it is a refusal (items stay queued, the status says so).
        """
        token = await self._session.token()
        answer = await self._send(path, token, body)
        if not answer.expired:
            return answer
        service = str(body["service"])
        log.info("portal.session_expired", service=service, generation=token.generation)
        token = await self._session.renew(token)
        answer = await self._send(path, token, body)
        if answer.expired and answer.status >= 500:
            # The same 5xx with a fresh session: the code was the portal's error, not a
            # verdict on the session (some portals use "-1" for both). Retried as a failure.
            said = classify.expiry_reason(answer)
            raise PortalTransient(self._redact(f"{service}: HTTP {answer.status} {said}"))
        if answer.expired:
            reason = self._redact(
                f"{service}: the portal refused the session right after a fresh login: "
                f"{classify.expiry_reason(answer)}"
            )
            self._session.refused(reason)
            log.error("portal.refused", service=service, reason=reason)
            raise PortalRefused(reason)
        return answer

    async def _send(self, path: str, token: Token, body: Mapping[str, Any]) -> Answer:
        service = str(body["service"])
        try:
            raw = await self._wire.post(path, {"session": token.value, **body})
            return classify.service_answer(
                raw.status, raw.body, self._codes, retry_after_s=self._hint(raw), service=service
            )
        except PortalRefused as exc:
            self._session.refused(str(exc))
            log.error("portal.refused", service=service, reason=str(exc))
            raise
        except PortalTransient as exc:
            log.warning("portal.transient", service=service, reason=exc.reason)
            raise

    async def _login(self) -> str:
        """One login call; the password is redacted from anything the portal echoes."""
        credentials = {"username": self._settings.username, "password": self._secret}
        try:
            raw = await self._wire.post(self._settings.auth_path, credentials)
            return classify.login_token(
                raw.status, raw.body, self._codes, retry_after_s=self._hint(raw)
            )
        except PortalRefused as exc:
            raise PortalRefused(self._redact(str(exc))) from None
        except PortalTransient as exc:
            reason = self._redact(exc.reason)
            raise PortalTransient(
                reason, retry_after=exc.retry_after, throttled=exc.throttled
            ) from None

    @property
    def _secret(self) -> str:
        return self._password.get_secret_value()

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    @staticmethod
    def _hint(raw: RawReply) -> float | None:
        return classify.retry_after(raw.retry_after, datetime.now(UTC))


def _batch(items: Sequence[Outgoing]) -> list[Outgoing]:
    """The `data` array; an empty batch is a caller bug, never a call worth making."""
    if not items:
        raise ValueError("a push needs at least one item")
    return list(items)


def _count(row: Mapping[str, Any]) -> int:
    """`SoBuocXuLy` as an int, whether the portal sent a number or a string."""
    try:
        return int(str(row.get("SoBuocXuLy", 0)).strip() or 0)
    except ValueError:
        return 0


def build_portal(settings: PortalSettings, password: SecretStr) -> RestPortal:
    """The composition root's factory for the REST profile."""
    return RestPortal(settings, password)
