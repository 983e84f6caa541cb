"""Pull: read changed records from the local system, map them, queue them durably.

The cursor moves in the same transaction that stores the mapped items, so a crash at any
moment either keeps both or neither: nothing is skipped and nothing is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import structlog

from connector.core.mapping import CompiledMapping
from connector.core.records import Kind, Mapped, SourceRecord
from connector.errors import MappingError, SourceError, StoreError
from connector.jobs.health import Health
from connector.metrics import Metrics
from connector.ports import Clock, IngestResult, Selection, Source, Store

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class PullReport:
    records: int = 0
    queued: int = 0
    unchanged: int = 0
    invalid: int = 0

    def __add__(self, other: PullReport) -> PullReport:
        return PullReport(
            records=self.records + other.records,
            queued=self.queued + other.queued,
            unchanged=self.unchanged + other.unchanged,
            invalid=self.invalid + other.invalid,
        )


def map_records(
    mapping: CompiledMapping, stream: str, records: Iterable[SourceRecord]
) -> list[Mapped]:
    return [mapping.map(stream, record) for record in records]


def read_dossier(
    source: Source, mapping: CompiledMapping, stream: str, dossier: str, batch: int = 500
) -> Iterator[list[Mapped]]:
    """One dossier's records of `stream` in the local system, a page at a time, mapped now.

    What every look at a single dossier reads (a re-read of fixed steps, a retry, a trace):
    `Source.select` uses the stream's `select_dossier` for it, an index search.
    """
    for records in source.select(stream, Selection(dossier=dossier), batch):
        yield map_records(mapping, stream, records)


def read_whole_dossier(
    source: Source, mapping: CompiledMapping, dossier: str
) -> dict[str, list[Mapped]]:
    """Every stream's records of one dossier, mapped now (a retry's re-read, a trace)."""
    return {
        stream: [m for page in read_dossier(source, mapping, stream, dossier) for m in page]
        for stream in source.streams()
    }


class PullJob:
    """Drains every stream page by page, up to `max_pages` per stream per run."""

    def __init__(
        self,
        *,
        source: Source,
        mapping: CompiledMapping,
        store: Store,
        clock: Clock,
        metrics: Metrics,
        health: Health,
        page_size: int,
        max_pages: int = 50,
        on_queued: Callable[[], None] = lambda: None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self._source = source
        self._mapping = mapping
        self._store = store
        self._clock = clock
        self._metrics = metrics
        self._health = health
        self._page_size = page_size
        self._max_pages = max_pages
        self._on_queued = on_queued
        self._should_stop = should_stop

    def run(self) -> PullReport:
        """One scheduled run. Source or store trouble pauses pulling; pushing goes on."""
        total = PullReport()
        try:
            for stream in self._source.streams():
                total += self._drain(stream)
            self.read_steps_again()
        except (SourceError, StoreError) as exc:
            what = "local system" if isinstance(exc, SourceError) else "state store"
            self._health.pull.failed(self._clock.now(), f"{what}: {exc}")
            log.error("pull paused", reason=str(exc), component=what)
            return total
        self._health.pull.succeeded(self._clock.now())
        return total

    def _drain(self, stream: str) -> PullReport:
        total = PullReport()
        for _ in range(self._max_pages):
            if self._should_stop():
                return total
            report, full = self._one_page(stream)
            total += report
            if not full:
                self._health.caught_up[stream] = True
                return total
        self._health.caught_up[stream] = False
        return total

    def _one_page(self, stream: str) -> tuple[PullReport, bool]:
        page = self._source.pull(stream, self._store.cursor(stream), self._page_size)
        if not page.records:
            return PullReport(), False
        mapped = map_records(self._mapping, stream, page.records)
        result = self._store.ingest(stream, mapped, page.cursor, now=self._clock.now())
        self._count(stream, mapped, result)
        if result.queued:
            self._on_queued()
        report = PullReport(
            records=len(page.records),
            queued=result.queued,
            unchanged=result.unchanged,
            invalid=result.invalid,
        )
        return report, len(page.records) >= self._page_size

    def read_steps_again(self) -> None:
        """Read again the steps of dossiers whose refused record was fixed (`Store.rereads`).

        Steps are refused for their header's sake when their record's number belongs to
        another record or is not the one it was first queued under. When the local system
        fixes the number, only the dossier's row changes, so the cursor never brings those
        steps back: the ingest lists the dossier, in its own transaction, and they are read
        here by its number, as `connector resync --dossier N --missing-only` would; their
        dead letters retire. A dossier stays listed while the local system is unavailable;
        when the stream has no usable `select` it leaves the list with a warning, and the
        dead letters stay and say how to repair them by hand.
        """
        stream = self._mapping.step_stream
        for dossier in self._store.rereads():
            if self._should_stop():
                return
            try:
                pages = read_dossier(self._source, self._mapping, stream, dossier, self._page_size)
                for mapped in pages:
                    result = self._store.ingest(stream, mapped, None, now=self._clock.now())
                    self._count(stream, mapped, result)
            except MappingError as exc:
                log.warning(
                    "steps of a fixed dossier not read again: resync it",
                    dossier=dossier,
                    stream=stream,
                    reason=str(exc),
                )
            self._store.reread(dossier)

    def _count(self, stream: str, mapped: list[Mapped], result: IngestResult) -> None:
        kind = mapped[0].kind if mapped else Kind.HEADER
        self._metrics.pulled.labels(stream).inc(len(mapped))
        self._metrics.queued.labels(kind.value).inc(result.queued)
        refused = result.invalid - len(result.withdrawn)
        if refused:
            self._metrics.dead.labels(kind.value, "invalid").inc(refused)
            for item in mapped:
                if not item.ok:
                    log.warning(
                        "record refused",
                        source=item.source_ref,
                        key=item.key,
                        reason=item.reason(),
                    )
        if result.withdrawn:
            self._metrics.dead.labels(Kind.STEP.value, "invalid").inc(len(result.withdrawn))
            for source_ref, key, reason in result.withdrawn:
                log.warning("queued step refused", source=source_ref, key=key, reason=reason)
