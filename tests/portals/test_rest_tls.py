"""TLS against a real HTTPS server on 127.0.0.1 with a self-signed certificate."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import orjson
import pytest
from pydantic import SecretStr

from connector.core.records import OutcomeStatus
from connector.errors import ConfigError, PortalRefused
from connector.portals.rest import RestPortal
from connector.portals.wire import tls_verify
from connector.settings import TlsSettings
from tests.portals.portal_fakes import make_settings

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not found")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A minimal keep-alive HTTP/1.1 portal: logins get a token, anything else succeeds."""
    try:
        while head := await reader.readuntil(b"\r\n\r\n"):
            length = 0
            for line in head.decode("latin-1").split("\r\n"):
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            await reader.readexactly(length)
            reply = {"error_code": 0, "message": "ok", "session": "tls-token"}
            body = orjson.dumps(reply)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


@asynccontextmanager
async def serve(certificate: tuple[Path, Path], *, client_ca: Path | None) -> AsyncIterator[str]:
    """An HTTPS server on 127.0.0.1; with `client_ca` it demands a client certificate."""
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    server = await asyncio.start_server(_answer, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def https_url(certificate: tuple[Path, Path]) -> AsyncIterator[str]:
    async with serve(certificate, client_ca=None) as url:
        yield url


def _portal(url: str, tls: TlsSettings) -> RestPortal:
    settings = make_settings(base_url=url, tls=tls, retry={"attempts": 1})
    return RestPortal(settings, SecretStr("pw"))


async def test_untrusted_certificate_is_refused_with_a_clear_reason(https_url: str) -> None:
    """verify=True against a self-signed server fails as PortalRefused saying why."""
    portal = _portal(https_url, TlsSettings())
    try:
        with pytest.raises(PortalRefused) as caught:
            await portal.push_steps([{"MaHoSo": "A"}])
    finally:
        await portal.aclose()
    reason = str(caught.value)
    assert "TLS certificate verify failed" in reason
    assert "self-signed certificate" in reason or "self signed certificate" in reason
    assert portal.session_state().startswith("refused: TLS certificate verify failed")


async def test_ca_bundle_makes_the_certificate_trusted(
    https_url: str, certificate: tuple[Path, Path]
) -> None:
    """With the server's certificate as ca_bundle, the same call succeeds over TLS."""
    portal = _portal(https_url, TlsSettings(ca_bundle=certificate[0]))
    try:
        reply = await portal.push_steps([{"MaHoSo": "A"}])
    finally:
        await portal.aclose()
    assert reply.outcomes[0].status is OutcomeStatus.OK


def test_missing_ca_bundle_is_a_configuration_error(tmp_path: Path) -> None:
    """A ca_bundle path that does not exist fails at start, naming the setting."""
    tls = TlsSettings(ca_bundle=tmp_path / "missing.pem")
    with pytest.raises(ConfigError, match=r"portal\.tls"):
        _portal("https://127.0.0.1:1", tls)


async def test_mutual_tls_presents_the_client_certificate(certificate: tuple[Path, Path]) -> None:
    """client_cert and client_key are presented to a server that requires them."""
    cert, key = certificate
    tls = TlsSettings(ca_bundle=cert, client_cert=cert, client_key=key)
    async with serve(certificate, client_ca=cert) as url:
        portal = _portal(url, tls)
        try:
            reply = await portal.push_steps([{"MaHoSo": "A"}])
        finally:
            await portal.aclose()
    assert reply.outcomes[0].status is OutcomeStatus.OK


def test_verify_false_only_when_configured(certificate: tuple[Path, Path]) -> None:
    """Verification is off only by explicit setting; otherwise an SSL context verifies."""
    assert tls_verify(TlsSettings(verify=False)) is False
    context = tls_verify(TlsSettings(ca_bundle=certificate[0]))
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
