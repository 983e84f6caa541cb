"""Fixtures of the sandbox portal tests: in-process sandboxes, closed after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from connector.sandbox import SandboxConfig, create_app
from tests.sandbox.sandbox_support import ClientFactory, PortalClient, make_config


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    """Build in-process clients of fresh sandbox apps; their stores are closed afterwards."""
    opened: list[tuple[httpx.AsyncClient, Any]] = []

    def build(config: SandboxConfig | None = None, **kwargs: Any) -> PortalClient:
        app = create_app(config or make_config(), **kwargs)
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox")
        opened.append((http, app))
        return PortalClient(http, app)

    yield build
    for http, app in opened:
        await http.aclose()
        app.state.portal.store.close()


@pytest.fixture
async def portal(make_client: ClientFactory) -> PortalClient:
    """A client of a sandbox with the default settings."""
    client: PortalClient = make_client()
    return client
