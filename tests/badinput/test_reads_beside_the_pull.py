"""An operator's resync or retry reads the local system while the daemon's pull runs.

When the pull queues a newer version of a record the command has already read, the
command's copy must not be queued after it: sent last, it would stay on the portal, and the
pull's cursor is already past the change, so nothing would put it right.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from connector.app import App
from connector.core.records import Kind, State
from connector.jobs.resync import ResyncReport, resync, retry_dead
from connector.ports import OutboxItem, Selection, Source, SourceRecord
from tests.badinput.corpus import Corpus


class _PullMeanwhile:
    """The local system as an operator's command reads it: the first stream it reads is
    handed over only after `meanwhile` ran (the record changed, the pull queued it)."""

    def __init__(self, source: Source, meanwhile: Callable[[], object]) -> None:
        self._source = source
        self._meanwhile: Callable[[], object] | None = meanwhile

    def streams(self) -> Sequence[str]:
        return self._source.streams()

    def select(self, stream: str, selection: Selection, batch: int) -> Iterator[list[SourceRecord]]:
        # Checked when called, read when iterated, as `Source.select` is.
        return self._read(self._source.select(stream, selection, batch))

    def _read(self, pages: Iterator[list[SourceRecord]]) -> Iterator[list[SourceRecord]]:
        read = list(pages)
        if self._meanwhile is not None:
            self._meanwhile()
            self._meanwhile = None
        yield from read

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)


def _change(corpus: Corpus, record: int, second: int, **values: object) -> None:
    """The local system changes dossier `record`, `second` s past midnight of a later day."""
    columns = ", ".join(f"{name} = ?" for name in values)
    stamp = f"2026-11-29T00:00:{second:02d}.000000Z"
    conn = sqlite3.connect(corpus.db, isolation_level=None)
    try:
        conn.execute(
            f"UPDATE dossiers SET {columns}, modified_at = ? WHERE id = ?",
            (*values.values(), stamp, record),
        )
    finally:
        conn.close()


def _good_dossiers(corpus: Corpus) -> Iterator[tuple[int, str]]:
    """(record id, dossier number) of the corpus's good dossiers."""
    for ref, row in corpus.good_dossiers().items():
        yield int(ref.split(":")[1]), str(row["dossier_no"])


def _a_good_dossier(corpus: Corpus) -> tuple[int, str]:
    return next(_good_dossiers(corpus))


def _headers(app: App, number: str) -> list[OutboxItem]:
    """The header rows of dossier `number`, oldest first."""
    rows = [i for i in app.store.items(kind=Kind.HEADER, limit=10_000) if i.key == number]
    return sorted(rows, key=lambda item: item.id)


def _newest_header(app: App, number: str) -> OutboxItem:
    return _headers(app, number)[-1]


def _resync_while_the_pull_queues(
    app: App, corpus: Corpus, number: str, *, changed: int, note: str
) -> ResyncReport:
    """Resync dossier `number`; between its read and its ingest, the local system changes
    record `changed` (its `note`) and the pull queues that change."""
    pull = app.pull_job()

    def meanwhile() -> None:
        _change(corpus, changed, 2, note=note)
        assert pull.run().records == 1

    return resync(
        source=_PullMeanwhile(app.source, meanwhile),
        mapping=app.mapping,
        store=app.store,
        clock=app.clock,
        selection=Selection(dossier=number),
    )


def test_a_resync_leaves_a_record_the_pull_queued_again_while_it_was_read(
    app: App, corpus: Corpus
) -> None:
    app.pull_job().run()
    record, number = _a_good_dossier(corpus)
    _change(corpus, record, 1, note="v1")  # what the resync reads
    report = _resync_while_the_pull_queues(app, corpus, number, changed=record, note="v2")
    newest = _newest_header(app, number)
    assert (newest.payload["GhiChu"], newest.state) == ("v2", State.PENDING)
    assert report.newer == {"dossiers": 1}
    assert report.queued == {"dossiers": 0, "steps": 0}


def test_a_resync_still_sends_what_the_pull_did_not_queue_while_it_read(
    app: App, corpus: Corpus
) -> None:
    """The mark holds back only the records the pull queued meanwhile: here it queued
    another dossier, and the resync's (forced) copy of this one is queued."""
    app.pull_job().run()
    (_, number), (other, _) = list(_good_dossiers(corpus))[:2]
    report = _resync_while_the_pull_queues(app, corpus, number, changed=other, note="other")
    assert (report.newer, report.queued["dossiers"]) == ({}, 1)
    assert [i.state for i in _headers(app, number)] == [State.SUPERSEDED, State.PENDING]


def test_a_retry_leaves_a_record_the_pull_queued_again_while_it_was_read(
    app: App, corpus: Corpus
) -> None:
    """A dead letter fixed in the local system, retried while it changes again: the pull's
    version, the newer one, is the one that goes."""
    app.pull_job().run()
    record, number = _a_good_dossier(corpus)
    due = corpus.dossiers[f"dossiers:{record}"]["due_at"]
    _change(corpus, record, 1, due_at=None)
    app.pull_job().run()
    (dead,) = [i for i in app.store.items(states=[State.INVALID], limit=10_000) if i.key == number]
    _change(corpus, record, 2, due_at=due, note="v1")  # fixed: what the retry reads
    pull = app.pull_job()

    def meanwhile() -> None:
        _change(corpus, record, 3, note="v2")
        assert pull.run().records == 1

    (result,) = retry_dead(
        item_ids=[dead.id],
        source=_PullMeanwhile(app.source, meanwhile),
        mapping=app.mapping,
        store=app.store,
        clock=app.clock,
    )
    newest = _newest_header(app, number)
    assert (newest.payload["GhiChu"], newest.state) == ("v2", State.PENDING)
    assert result.action == "re-read"
    assert app.store.get(dead.id).state is State.SUPERSEDED  # type: ignore[union-attr]
