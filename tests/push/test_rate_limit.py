"""The push rate limit, against the sandbox portal in-process."""

from __future__ import annotations

import pytest

from connector.app import App
from connector.errors import ConfigError
from connector.settings import load
from tests.faults.checker import assert_clean
from tests.faults.workload import Rig, close_app, drive

pytestmark = pytest.mark.e2e

SMALL = {"header_batch_size": 7, "step_batch_size": 11}


async def test_a_rate_limited_push_still_delivers_everything(rig: Rig) -> None:
    """A rate limit paces the calls without losing or repeating anything."""
    with rig.portal() as sandbox:
        portal = {**SMALL, "max_items_per_second": 5000}
        app = App(rig.settings(sandbox.url, portal=portal))
        try:
            await drive(app, until=rig.drained, timeout=60)
        finally:
            await close_app(app)
    assert_clean(rig.check())


@pytest.mark.parametrize(
    ("key", "value"),
    [("max_items_per_second", -1), ("max_items_per_second", "inf")],
)
def test_bad_push_tuning_is_refused_naming_the_key(rig: Rig, key: str, value: object) -> None:
    """A negative or infinite rate is a configuration error naming the key."""
    path = rig.tmp / "bad.toml"
    rig.settings("http://127.0.0.1:9")
    text = (rig.tmp / "config.toml").read_text(encoding="utf-8")
    rendered = f'"{value}"' if isinstance(value, str) else str(value)
    path.write_text(text.replace("[portal]\n", f"[portal]\n{key} = {rendered}\n", 1), "utf-8")
    if value == "inf":
        path.write_text(text.replace("[portal]\n", f"[portal]\n{key} = inf\n", 1), "utf-8")
    with pytest.raises(ConfigError, match=key):
        load(path)
