"""Session expiry while many pushes are in flight: exactly one login per expiry."""

from __future__ import annotations

import asyncio

import pytest

from connector.app import App
from connector.core.records import Kind
from tests.faults.workload import Rig, close_app

pytestmark = pytest.mark.e2e

CONCURRENT = 12
EXPIRIES = 3


async def test_one_login_per_expiry_under_concurrency(rig: Rig) -> None:
    """Twelve concurrent pushes that all meet an expired token share one new login."""
    with rig.portal(session_ttl=1.0) as sandbox:
        app = App(rig.settings(sandbox.url, portal={"session_ttl_seconds": 3600}))
        try:
            await asyncio.to_thread(app.pull_job().run)
            headers = app.store.claim(Kind.HEADER, CONCURRENT * (EXPIRIES + 1), now=app.clock.now())
            groups = [[item] for item in headers]
            await app.portal.push_headers([groups[0][0].payload], updating=False)
            assert rig.stats()["logins"] == 1
            for round_ in range(EXPIRIES):
                await asyncio.sleep(1.3)  # the sandbox forgets the token
                batch = groups[1 + round_ * CONCURRENT : 1 + (round_ + 1) * CONCURRENT]
                replies = await asyncio.gather(
                    *(
                        app.portal.push_headers([i.payload for i in g], updating=False)
                        for g in batch
                    )
                )
                assert all(o.status.value == "ok" for r in replies for o in r.outcomes)
                stats = rig.stats()
                assert stats["logins"] == 2 + round_, stats
                assert stats["session_expired"] >= round_ + 1
        finally:
            await close_app(app)
