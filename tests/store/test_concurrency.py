"""Two writers on one SQLite file (the pull thread and the push loop) never hit a lock error."""

from __future__ import annotations

import threading
from pathlib import Path

from connector.core.records import Kind, Mapped, State
from connector.ports import Settlement
from connector.store import SqlStore

ROUNDS = 60


def _pull(store: SqlStore, errors: list[BaseException]) -> None:
    try:
        for n in range(ROUNDS):
            item = Mapped(
                kind=Kind.HEADER, key=f"D{n}", dossier=f"D{n}", source_ref=f"d:{n}",
                payload={"MaHoSo": f"D{n}"},
            )  # fmt: skip
            store.ingest("dossiers", [item], (n,), now=float(n))
    except BaseException as exc:
        errors.append(exc)


def _push(store: SqlStore, errors: list[BaseException], done: threading.Event) -> None:
    try:
        while not done.is_set() or store.counts().get((Kind.HEADER, State.PENDING)):
            claimed = store.claim(Kind.HEADER, 7, now=1e9)
            acks = [Settlement(item_id=i.id, state=State.ACKED) for i in claimed]
            store.settle(acks, now=1e9)
    except BaseException as exc:
        errors.append(exc)


def test_pull_and_push_threads_share_the_file(tmp_path: Path) -> None:
    """Interleaved ingest and claim/settle transactions all succeed and lose nothing."""
    store = SqlStore.open(f"sqlite:///{tmp_path / 'shared.db'}")
    errors: list[BaseException] = []
    done = threading.Event()
    pusher = threading.Thread(target=_push, args=(store, errors, done))
    pusher.start()
    _pull(store, errors)
    done.set()
    pusher.join(timeout=60)
    assert errors == []
    assert store.counts() == {(Kind.HEADER, State.ACKED): ROUNDS}
    assert store.cursor("dossiers") == (ROUNDS - 1,)
    store.close()
