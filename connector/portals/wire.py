"""HTTPS for the portal: the pooled client, TLS, bounded replies, and error translation.

Every httpx and ssl failure becomes a `PortalTransient` or `PortalRefused` here and nowhere
else, so the adapters above reason only about the connector's own exception tree.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from connector.core.records import Encoded
from connector.errors import ConfigError, PortalRefused, PortalTransient
from connector.settings import PortalSettings, TlsSettings


@dataclass(frozen=True, slots=True, kw_only=True)
class RawReply:
    """A complete reply read within the byte cap and the total deadline."""

    status: int
    body: bytes
    retry_after: str | None = None  # the raw Retry-After header, parsed by the classifier


def tls_verify(tls: TlsSettings) -> ssl.SSLContext | bool:
    """What httpx should verify with: False only when configured, else an SSL context."""
    if not tls.verify:
        return False
    try:
        context = ssl.create_default_context(cafile=tls.ca_bundle)
        if tls.client_cert is not None:
            context.load_cert_chain(tls.client_cert, keyfile=tls.client_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"portal.tls: cannot load certificates: {exc}") from exc
    return context


def build_client(
    settings: PortalSettings, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """One pooled keep-alive client with explicit per-phase timeouts."""
    limits = httpx.Limits(
        max_connections=settings.max_connections,
        max_keepalive_connections=settings.max_connections,
    )
    t = settings.timeouts
    timeout = httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool)
    return httpx.AsyncClient(
        base_url=settings.base_url,
        headers={
            "dstcode": settings.dstcode,
            "Accept": "application/json",
            "Content-Type": "application/json; charset=utf-8",
        },
        limits=limits,
        timeout=timeout,
        verify=tls_verify(settings.tls),
        trust_env=settings.trust_env,
        follow_redirects=False,
        transport=transport,
    )


class Wire:
    """Posts JSON bodies and returns complete, size-bounded replies."""

    def __init__(self, client: httpx.AsyncClient, *, max_bytes: int, total: float) -> None:
        self._client = client
        self._max_bytes = max_bytes
        self._total = total

    async def post(self, path: str, body: Mapping[str, Any]) -> RawReply:
        """POST `body` to `path`; the whole exchange must finish within the total deadline."""
        content = orjson.dumps(body, default=_spliced)
        with translate_errors():
            try:
                async with asyncio.timeout(self._total):
                    return await self._exchange(path, content)
            except TimeoutError:
                raise PortalTransient(f"no complete reply within {self._total:g} s") from None

    async def _exchange(self, path: str, content: bytes) -> RawReply:
        async with self._client.stream("POST", path, content=content) as response:
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > self._max_bytes:
                raise PortalTransient(f"reply larger than {self._max_bytes} bytes")
            body = await read_capped(response.aiter_bytes(), self._max_bytes)
            retry_after = response.headers.get("Retry-After")
            return RawReply(status=response.status_code, body=body, retry_after=retry_after)

    async def aclose(self) -> None:
        await self._client.aclose()


def _spliced(value: object) -> orjson.Fragment:
    """An already encoded payload goes into the body as it is."""
    if isinstance(value, Encoded):
        return orjson.Fragment(value.json)
    raise TypeError(f"cannot send a {type(value).__name__} as JSON")


async def read_capped(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The body, or PortalTransient as soon as it grows past `limit` bytes."""
    buffer = bytearray()
    async for chunk in chunks:
        buffer += chunk
        if len(buffer) > limit:
            raise PortalTransient(f"reply larger than {limit} bytes")
    return bytes(buffer)


@contextmanager
def translate_errors() -> Iterator[None]:
    """Map httpx's failures onto the connector's tree (the one place that knows httpx)."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise PortalTransient(f"timeout ({type(exc).__name__})") from exc
    except httpx.RequestError as exc:
        untrusted = _verify_failure(exc)
        if untrusted is not None:
            raise PortalRefused(untrusted) from exc
        raise PortalTransient(f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc


def _verify_failure(exc: BaseException) -> str | None:
    """A readable reason when the chain holds a certificate verification failure."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            why = seen.verify_message or seen.reason or str(seen)
            return (
                f"TLS certificate verify failed: {why}: the portal's certificate is not "
                "trusted (check portal.tls.ca_bundle)"
            )
        seen = seen.__cause__ or seen.__context__
    return None
