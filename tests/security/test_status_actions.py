"""The status server's operator actions: always behind the token, strict about bodies."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import pytest

from connector.daemon import token_required
from connector.metrics import Metrics
from connector.ports import Selection
from connector.status import create_status_app

TOKEN = "action-token-for-tests"
PERSONAL_VALUE = "Khổng Thị Trúc 012345678901"


class FakeActions:
    """Records calls; `gate` (when set) holds a retry until the test releases it."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: list[tuple[str, Any, bool]] = []
        self.gate = gate
        self.entered = threading.Event()
        self.missing_only: bool | None = None
        self.code: str | None = None

    def retry(
        self, ids: Sequence[int], *, all_dead: bool, code: str | None = None
    ) -> Mapping[str, Any]:
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        self.calls.append(("retry", list(ids), all_dead))
        self.code = code
        return {"results": [{"id": i, "action": "requeued"} for i in ids]}

    def resync(
        self, selection: Selection, *, dry_run: bool, missing_only: bool = False
    ) -> Mapping[str, Any]:
        self.calls.append(("resync", selection, dry_run))
        self.missing_only = missing_only
        return {"dry_run": dry_run, "read": {"dossiers": 1}}


def _client(actions: FakeActions, *, token: str | None = TOKEN) -> httpx.AsyncClient:
    app = create_status_app(
        snapshot=lambda: {"ok": True},
        metrics=Metrics(),
        ready=lambda: (True, ""),
        token=token,
        require_token=False,
        actions=actions,
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://status")


AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize("path", ["/actions/retry", "/actions/resync"])
async def test_actions_without_a_configured_token_are_forbidden(path: str) -> None:
    """With no status.token configured, actions answer 403 even on loopback."""
    actions = FakeActions()
    async with _client(actions, token=None) as client:
        reply = await client.post(path, json={"all_dead": True, "dossier": "X"})
        status = await client.get("/status")
    assert reply.status_code == 403
    assert reply.json() == {"error": "actions need status.token"}
    assert status.status_code == 200  # reading stays open on the loopback default
    assert actions.calls == []


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", TOKEN])
async def test_actions_need_the_bearer_token(header: str | None) -> None:
    """A missing, wrong or non-bearer credential gets 401 and runs nothing."""
    actions = FakeActions()
    headers = {"Authorization": header} if header else {}
    async with _client(actions) as client:
        reply = await client.post("/actions/retry", json={"ids": [1]}, headers=headers)
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"] == "Bearer"
    assert actions.calls == []


async def test_retry_runs_with_the_ids_and_answers_the_result() -> None:
    """An authorised retry passes the ids, the all_dead flag and the code, and returns the
    JSON result."""
    actions = FakeActions()
    async with _client(actions) as client:
        reply = await client.post("/actions/retry", json={"ids": [3, 4]}, headers=AUTH)
        every = await client.post("/actions/retry", json={"all_dead": True}, headers=AUTH)
        assert actions.code is None
        coded = await client.post("/actions/retry", json={"code": "E21"}, headers=AUTH)
    assert coded.status_code == 200 and actions.code == "E21"
    assert reply.status_code == 200
    assert reply.json()["results"] == [
        {"id": 3, "action": "requeued"},
        {"id": 4, "action": "requeued"},
    ]
    assert every.status_code == 200
    assert actions.calls == [("retry", [3, 4], False), ("retry", [], True), ("retry", [], False)]


async def test_resync_builds_the_selection() -> None:
    """An authorised resync turns the body into a Selection with parsed dates."""
    actions = FakeActions()
    body = {
        "agency": "HN-UB-01",
        "since": "2026-11-01",
        "until": "2026-11-02T08:00",
        "changed_since": "2026-11-20T10:00+07:00",
        "dry_run": True,
    }
    async with _client(actions) as client:
        reply = await client.post("/actions/resync", json=body, headers=AUTH)
    assert reply.status_code == 200
    ((name, selection, dry_run),) = actions.calls
    assert name == "resync" and dry_run is True and actions.missing_only is False
    assert selection.agency == "HN-UB-01"
    assert selection.since is not None and selection.since.day == 1
    assert selection.until is not None and selection.until.hour == 8
    assert selection.changed_since is not None and selection.changed_since.utcoffset()
    assert selection.changed_until is None


async def test_resync_can_queue_only_what_is_missing() -> None:
    """`missing_only` reaches the resync as given."""
    actions = FakeActions()
    body = {"dossier": "000.00.01.H26-261120-0001", "missing_only": True}
    async with _client(actions) as client:
        reply = await client.post("/actions/resync", json=body, headers=AUTH)
    assert reply.status_code == 200
    ((_, selection, dry_run),) = actions.calls
    assert actions.missing_only is True and dry_run is False
    assert selection.dossier == "000.00.01.H26-261120-0001"


async def test_a_window_with_one_zoned_bound_is_left_to_the_source() -> None:
    """One bound zoned and the other not cannot be compared here: the resync runs."""
    actions = FakeActions()
    body = {"changed_since": "2026-11-01", "changed_until": "2026-11-02T00:00Z"}
    async with _client(actions) as client:
        reply = await client.post("/actions/resync", json=body, headers=AUTH)
    assert reply.status_code == 200, reply.text


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        ("/actions/retry", {}, "give"),
        ("/actions/retry", {"ids": ["1"]}, "ids"),
        ("/actions/retry", {"ids": [True]}, "ids"),
        ("/actions/retry", {"ids": [1], "all_dead": "yes"}, "all_dead"),
        ("/actions/retry", {"code": ""}, "code"),
        ("/actions/retry", {"code": 21}, "code"),
        ("/actions/retry", {"code": "E21", "all_dead": True}, "not both"),
        ("/actions/retry", {"ids": [1], PERSONAL_VALUE: 1}, "unknown key"),
        ("/actions/resync", {}, "at least one"),
        ("/actions/resync", {"dry_run": True}, "at least one"),
        ("/actions/resync", {"since": PERSONAL_VALUE}, "since"),
        ("/actions/resync", {"changed_until": "yesterday"}, "changed_until"),
        ("/actions/resync", {"since": "2026-11-05", "until": "2026-11-01"}, "since must be"),
        (
            "/actions/resync",
            {"changed_since": "2026-11-05T10:00", "changed_until": "2026-11-05T10:00"},
            "changed_since must be before changed_until",
        ),
        ("/actions/resync", {"dossier": 7}, "dossier"),
        ("/actions/resync", {"dossier": "X", "dry_run": 1}, "dry_run"),
        ("/actions/resync", {"dossier": "X", "missing_only": "yes"}, "missing_only"),
        ("/actions/resync", [1, 2], "JSON object"),
    ],
)
async def test_bad_bodies_are_refused_without_echoing_them(
    path: str, body: Any, words: str
) -> None:
    """A malformed body gets 400 naming the key, never quoting the value sent."""
    actions = FakeActions()
    async with _client(actions) as client:
        reply = await client.post(path, json=body, headers=AUTH)
    assert reply.status_code == 400
    assert words in reply.json()["error"]
    assert "012345678901" not in reply.text
    assert actions.calls == []


async def test_body_that_is_not_json_or_too_large_is_refused() -> None:
    """Invalid JSON and bodies over the limit are 400, before anything runs."""
    actions = FakeActions()
    async with _client(actions) as client:
        garbled = await client.post("/actions/retry", content=b"{nope", headers=AUTH)
        huge = await client.post(
            "/actions/retry", json={"ids": list(range(1, 20000))}, headers=AUTH
        )
    assert garbled.status_code == 400
    assert huge.status_code == 400 and "larger" in huge.json()["error"]
    assert actions.calls == []


async def test_one_action_at_a_time() -> None:
    """While an action runs, another one is answered 409 instead of running alongside it."""
    gate = threading.Event()
    actions = FakeActions(gate)
    async with _client(actions) as client:
        first = asyncio.create_task(client.post("/actions/retry", json={"ids": [1]}, headers=AUTH))
        for _ in range(200):
            if actions.entered.is_set():
                break
            await asyncio.sleep(0.01)
        second = await client.post("/actions/resync", json={"dossier": "X"}, headers=AUTH)
        gate.set()
        done = await asyncio.wait_for(first, 10)
    assert second.status_code == 409
    assert done.status_code == 200
    assert [c[0] for c in actions.calls] == ["retry"]


@pytest.mark.parametrize(
    ("host", "required"),
    [
        ("127.0.0.1", False),
        ("::1", False),
        ("localhost", False),
        ("127.0.0.2", True),
        ("0.0.0.0", True),
        ("10.0.0.5", True),
        ("::", True),
    ],
)
def test_token_is_required_anywhere_but_the_loopback_default(host: str, required: bool) -> None:
    """Only 127.0.0.1, ::1 and localhost serve status without a token; 127.0.0.2 does not."""
    assert token_required(host) is required
