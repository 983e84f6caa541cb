"""The status document's store figures: shared between requests for a while, never the
jobs' health; readiness without a scan of the outbox."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import create_engine

from connector.app import App
from connector.core.records import Kind, Mapped, State
from connector.errors import StoreError
from connector.settings import Settings, StatusSettings
from connector.status_cache import FiguresCache
from connector.store.sql import SqlStore
from tests.clocks import ManualClock

MAPPING = Path(__file__).resolve().parents[2] / "mappings" / "demo.toml"
T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z


class WatchedStore:
    """A real memory store whose outbox scans are counted, and can be made to fail, to take
    (clock) time, or to wait until the test lets them go."""

    def __init__(self, inner: SqlStore) -> None:
        self.inner = inner
        self.scans = 0
        self.fail: StoreError | None = None
        self.on_scan: Callable[[], None] = lambda: None
        self._lock = threading.Lock()

    def counts(self) -> Mapping[tuple[Kind, State], int]:
        with self._lock:
            self.scans += 1
        self.on_scan()
        if self.fail is not None:
            raise self.fail
        return self.inner.counts()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _settings(max_age: float) -> Settings:
    return Settings.model_validate(
        {
            "state": {"url": "sqlite://"},
            "source": {"url": "sqlite://", "mapping": str(MAPPING)},
            "portal": {
                "base_url": "http://127.0.0.1:9",
                "username": "demo",
                "dstcode": "TEST-DST",
                "madonvi": "TEST",
            },
            "status": {"figures_max_age_seconds": max_age},
        }
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(wall=T0, mono=500.0)


@pytest.fixture
def store() -> Iterator[WatchedStore]:
    watched = WatchedStore(SqlStore.open("sqlite://"))
    yield watched
    watched.inner.close()


@pytest.fixture
def app(clock: ManualClock, store: WatchedStore) -> App:
    made = App(_settings(max_age=10.0), clock=clock)
    vars(made)["store"] = store  # `store` is a cached_property: this is its cached value
    return made


def _queue(store: WatchedStore, dossier: str, now: float) -> None:
    item = Mapped(
        kind=Kind.HEADER,
        key=dossier,
        dossier=dossier,
        source_ref=f"dossiers:{dossier}",
        payload={"MaHoSo": dossier},
    )
    store.inner.ingest("dossiers", [item], None, now=now)


def _pending_headers(doc: Mapping[str, Any]) -> int:
    return int(doc["outbox"]["header"]["pending"])


def test_figures_are_shared_within_the_interval_and_fresh_after_it(
    app: App, store: WatchedStore, clock: ManualClock
) -> None:
    """Within figures_max_age_seconds every snapshot serves the same figures, with their
    time and age; after it, the next one computes them again."""
    _queue(store, "D1", T0)
    first = app.snapshot()
    assert (store.scans, _pending_headers(first)) == (1, 1)
    assert (first["figures_as_of"], first["figures_age_s"]) == ("2027-01-15T08:00:00Z", 0.0)

    _queue(store, "D2", T0 + 1)
    clock.advance(10)
    shared = app.snapshot()
    assert (store.scans, _pending_headers(shared)) == (1, 1)
    assert (shared["figures_as_of"], shared["figures_age_s"]) == ("2027-01-15T08:00:00Z", 10.0)

    clock.advance(0.5)
    renewed = app.snapshot()
    assert (store.scans, _pending_headers(renewed)) == (2, 2)
    assert (renewed["figures_as_of"], renewed["figures_age_s"]) == ("2027-01-15T08:00:10Z", 0.0)


def test_the_jobs_health_and_uptime_stay_live_while_figures_are_shared(
    app: App, store: WatchedStore, clock: ManualClock
) -> None:
    """Only the store figures are shared: job states and uptime are read at each snapshot."""
    app.snapshot()
    clock.advance(3)
    app.health.push.failed(clock.now(), "portal unavailable: 503", state="retrying")
    doc = app.snapshot()
    assert store.scans == 1
    assert doc["push"]["state"] == "retrying"
    assert doc["daemon"]["uptime_s"] == 3.0


def test_a_slow_store_is_asked_at_most_once_per_ten_durations(
    app: App, store: WatchedStore, clock: ManualClock
) -> None:
    """A computation that took 3 s is not repeated within 30 s, whatever max age says."""
    store.on_scan = lambda: clock.advance(3)
    app.snapshot()
    clock.advance(26.5)  # 29.5 s after the computation started
    assert app.snapshot()["figures_age_s"] == 29.5
    assert store.scans == 1
    clock.advance(1)
    app.snapshot()
    assert store.scans == 2


def test_fresh_computes_whatever_the_age(app: App, store: WatchedStore) -> None:
    """`snapshot(fresh=True)` is for one-off callers that want the current state."""
    app.snapshot()
    _queue(store, "D1", T0)
    assert _pending_headers(app.snapshot(fresh=True)) == 1
    assert store.scans == 2


def test_figures_warmed_at_start_serve_the_first_request(
    app: App, store: WatchedStore, clock: ManualClock
) -> None:
    """The daemon computes the figures at start, so the first request does not scan."""
    _queue(store, "D1", T0)
    app.warm_figures()
    assert store.scans == 1
    clock.advance(3)
    first = app.snapshot()
    assert store.scans == 1
    assert (_pending_headers(first), first["figures_age_s"]) == (1, 3.0)


def test_a_failed_warm_up_is_only_logged(app: App, store: WatchedStore) -> None:
    """A store that fails at start does not stop the daemon; the first request tries again."""
    store.fail = StoreError("state store counts failed: disk I/O error")
    app.warm_figures()
    store.fail = None
    assert app.snapshot()["state_store"] == "ok"
    assert store.scans == 2


def test_a_store_error_is_reported_and_not_kept(app: App, store: WatchedStore) -> None:
    """A failing store gives the document without figures; the next request tries again
    and stale figures are not served as current in between."""
    app.snapshot()
    store.fail = StoreError("state store counts failed: database is locked")
    failed = app.snapshot(fresh=True)
    assert failed["state_store"] == "unavailable: state store counts failed: database is locked"
    assert "outbox" not in failed and "figures_as_of" not in failed
    assert failed["pull"]["state"] is not None
    store.fail = None
    recovered = app.snapshot()
    assert recovered["state_store"] == "ok"
    assert "figures_age_s" in recovered
    assert store.scans == 3


def test_concurrent_snapshots_compute_once(app: App, store: WatchedStore) -> None:
    """Requests arriving while the figures are computed wait for that computation."""
    scanning, release = threading.Event(), threading.Event()

    def slow_scan() -> None:
        scanning.set()
        release.wait(timeout=30)

    store.on_scan = slow_scan
    docs: list[dict[str, Any]] = []
    threads = [threading.Thread(target=lambda: docs.append(app.snapshot())) for _ in range(6)]
    threads[0].start()
    assert scanning.wait(timeout=30)
    for thread in threads[1:]:
        thread.start()
    time.sleep(0.2)  # lets the others reach the computation; not an assertion on time
    release.set()
    for thread in threads:
        thread.join(timeout=30)
    assert store.scans == 1
    assert len(docs) == 6
    assert len({doc["figures_as_of"] for doc in docs}) == 1


def test_a_failure_goes_to_the_waiting_callers_only(clock: ManualClock) -> None:
    """Callers waiting on a computation that fails get its error; the next caller tries."""
    calls: list[float] = []
    scanning, release = threading.Event(), threading.Event()

    def compute(now: float) -> Mapping[str, Any]:
        calls.append(now)
        if len(calls) == 1:
            scanning.set()
            release.wait(timeout=30)
            clock.advance(1)
            raise StoreError("state store counts failed: disk I/O error")
        return {"n": len(calls)}

    arrived = threading.Semaphore(0)

    class Arrivals:
        """The clock as the cache reads it. A caller arrives when `get` reads the monotonic
        time, before it waits for the computation: each reading by a caller other than the
        one computing is counted, so the test releases the computation only once all of
        them have arrived, however late their threads are scheduled."""

        def now(self) -> float:
            return clock.now()

        def monotonic(self) -> float:
            if threading.current_thread() is not threads[0]:
                arrived.release()
            return clock.monotonic()

    cache = FiguresCache(compute, Arrivals(), max_age=10)
    errors: list[str] = []

    def ask() -> None:
        try:
            cache.get()
        except StoreError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    threads[0].start()
    assert scanning.wait(timeout=30)
    for thread in threads[1:]:
        thread.start()
    for _ in threads[1:]:
        assert arrived.acquire(timeout=30), "a caller never reached the cache"
    release.set()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == ["state store counts failed: disk I/O error"] * 4
    assert len(calls) == 1
    assert cache.get().values == {"n": 2}


def test_ready_does_not_scan_the_outbox(app: App, store: WatchedStore) -> None:
    """/readyz asks the store a trivial read: it answers even where a scan would fail."""
    store.fail = StoreError("state store counts failed: interrupted")
    assert app.ready() == (True, "ok")
    assert store.scans == 0


def _unreachable(tmp_path: Path) -> SqlStore:
    """A store whose database file cannot be opened (its folder does not exist)."""
    return SqlStore(create_engine(f"sqlite:///{tmp_path / 'missing' / 'state.db'}"))


def test_ready_says_when_the_store_does_not_answer(app: App, tmp_path: Path) -> None:
    """A store that cannot answer the trivial read makes the connector not ready."""
    vars(app)["store"] = _unreachable(tmp_path)
    ready, reason = app.ready()
    assert not ready
    assert reason.startswith("state store: state store ping failed: unable to open database")


def test_the_store_ping_answers_or_raises_a_store_error(tmp_path: Path) -> None:
    """SqlStore.ping returns on a working store and raises StoreError on a broken one."""
    good = SqlStore.open("sqlite://")
    good.ping()
    good.close()
    with pytest.raises(StoreError, match="ping failed"):
        _unreachable(tmp_path).ping()


def test_max_age_setting_defaults_to_ten_seconds_and_refuses_negatives() -> None:
    assert StatusSettings().figures_max_age_seconds == 10.0
    assert StatusSettings(figures_max_age_seconds=0).figures_max_age_seconds == 0.0
    with pytest.raises(ValidationError):
        StatusSettings(figures_max_age_seconds=-1)


def test_an_operator_action_makes_the_next_snapshot_compute_anew(
    app: App, store: WatchedStore
) -> None:
    """A retry or resync over HTTP changes the outbox: the next /status shows it at once,
    not when the shared figures have aged out."""
    from connector.app import OperatorActions

    _queue(store, "D1", T0)
    assert _pending_headers(app.snapshot()) == 1
    _queue(store, "D2", T0)
    shared = app.snapshot()
    assert (store.scans, _pending_headers(shared)) == (1, 1)
    OperatorActions(app, origin="cli").retry([], all_dead=False)
    renewed = app.snapshot()
    assert (store.scans, _pending_headers(renewed)) == (2, 2)


def test_a_cursor_stamp_without_a_zone_is_read_in_the_streams_zone(
    app: App, store: WatchedStore
) -> None:
    """Most local systems stamp changes in Vietnam wall time without a zone. Read as UTC,
    a cursor two hours behind would show no lag at all. A stream's `changed_timezone`
    (the demo's streams: UTC) wins over the mapping's `timezone` (Asia/Ho_Chi_Minh)."""
    two_hours_ago_in_hanoi = "2027-01-15 13:00:00"  # T0 is 15:00 in Hà Nội
    for stream in ("legacy", "dossiers"):
        store.inner.ingest(stream, [], (two_hours_ago_in_hanoi, 1), now=T0)
    cursors = app.snapshot(fresh=True)["cursors"]
    assert cursors["legacy"]["lag_s"] == 7200.0
    assert cursors["dossiers"]["lag_s"] == 0.0  # 13:00 UTC: not yet reached
