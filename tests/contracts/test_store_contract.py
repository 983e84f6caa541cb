"""The `Store` contract, run against every backend: SQLite file, SQLite memory, PostgreSQL."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from connector.core.hashing import content_hash
from connector.core.records import Kind, Mapped, Problem, State
from connector.errors import StoreBusy, StoreError
from connector.ports import Settlement, Store
from connector.store import SqlStore, delivery
from connector.store import ingest as ingest_module
from connector.store.rows import new_row
from connector.store.schema import known, outbox

PG_URL = os.environ.get("CONNECTOR_TEST_POSTGRES_URL")
T0 = 1_000_000.0


def test_sql_store_satisfies_the_port() -> None:
    """SqlStore is a `Store` (checked by mypy) and opens on a bare memory URL."""
    store: Store = SqlStore.open("sqlite://")
    assert store.counts() == {}
    store.close()


def header(dossier: str, status: str = "1", **extra: Any) -> Mapped:
    payload = {"MaHoSo": dossier, "TrangThaiHoSo": status, **extra}
    return Mapped(
        kind=Kind.HEADER, key=dossier, dossier=dossier, source_ref=f"dossiers:{dossier}",
        payload=payload,
    )  # fmt: skip


def step(dossier: str, at: str, status: str = "2") -> Mapped:
    payload = {"MaHoSo": dossier, "ThoiDiemXuLy": at, "TrangThai": status}
    return Mapped(
        kind=Kind.STEP, key=f"{dossier}|{at}|{status}", dossier=dossier,
        source_ref=f"steps:{dossier}:{at}", payload=payload, event_time=at,
    )  # fmt: skip


def broken(item: Mapped, reason: str = "required") -> Mapped:
    return Mapped(
        kind=item.kind, key=item.key, dossier=item.dossier, source_ref=item.source_ref,
        payload=item.payload, problems=(Problem(field="NgayTiepNhan", reason=reason),),
    )  # fmt: skip


def states(store: Store, key: str) -> list[State]:
    """States of the rows with `key`, oldest first."""
    rows = [i for i in store.items(limit=1000) if i.key == key]
    return [i.state for i in sorted(rows, key=lambda i: i.id)]


def acknowledge(store: Store, kind: Kind, now: float = T0) -> list[int]:
    """Claim every due item of `kind` and settle it as acknowledged."""
    claimed = store.claim(kind, 1000, now=now)
    store.settle([Settlement(item_id=i.id, state=State.ACKED) for i in claimed], now=now)
    return [i.id for i in claimed]


# -- ingest ---------------------------------------------------------------------------------


def test_new_header_is_queued_pending(store: Store) -> None:
    """A header never seen before becomes one pending row, due now, with its content hash."""
    result = store.ingest("dossiers", [header("D1")], ("c", 1), now=T0)
    assert (result.queued, result.unchanged, result.invalid) == (1, 0, 0)
    (item,) = store.items()
    assert item.state is State.PENDING and item.next_attempt_at == T0 and item.attempts == 0
    assert item.payload == {"MaHoSo": "D1", "TrangThaiHoSo": "1"}
    assert item.content_hash == content_hash(item.payload)


def test_unchanged_header_is_skipped(store: Store) -> None:
    """Re-pulling the same header content queues nothing new."""
    store.ingest("dossiers", [header("D1")], None, now=T0)
    result = store.ingest("dossiers", [header("D1")], None, now=T0 + 1)
    assert (result.queued, result.unchanged) == (0, 1)
    assert states(store, "D1") == [State.PENDING]


def test_changed_header_supersedes_older_pending(store: Store) -> None:
    """A changed header is queued and the older pending version retired."""
    store.ingest("dossiers", [header("D1", "1")], None, now=T0)
    result = store.ingest("dossiers", [header("D1", "2")], None, now=T0 + 1)
    assert result.queued == 1
    assert states(store, "D1") == [State.SUPERSEDED, State.PENDING]


def test_two_versions_in_one_batch_keep_the_last(store: Store) -> None:
    """Within one page only the last version of a header stays pending."""
    store.ingest("dossiers", [header("D1", "1"), header("D1", "2")], None, now=T0)
    assert states(store, "D1") == [State.SUPERSEDED, State.PENDING]
    (pending,) = store.items(states=[State.PENDING])
    assert pending.payload["TrangThaiHoSo"] == "2"


def test_changed_header_while_one_is_being_sent(store: Store) -> None:
    """A version being sent is superseded by a newer one pulled meanwhile, yet its reply
    still settles it; the newer one goes next, as an update."""
    store.ingest("dossiers", [header("D1", "1")], None, now=T0)
    (sent,) = store.claim(Kind.HEADER, 10, now=T0)
    store.ingest("dossiers", [header("D1", "2")], None, now=T0 + 1)
    assert states(store, "D1") == [State.SUPERSEDED, State.PENDING]
    store.settle([Settlement(item_id=sent.id, state=State.ACKED)], now=T0 + 1)
    assert states(store, "D1") == [State.ACKED, State.PENDING]
    (newer,) = store.claim(Kind.HEADER, 10, now=T0 + 1)
    assert (newer.payload["TrangThaiHoSo"], newer.updating) == ("2", True)


def test_retried_version_sent_while_a_newer_one_came_is_not_sent_again(store: Store) -> None:
    """When the version being sent meets a transient failure after a newer one was pulled,
    only the newer one goes next; the older one is retired."""
    store.ingest("dossiers", [header("D1", "1")], None, now=T0)
    (sent,) = store.claim(Kind.HEADER, 10, now=T0)
    store.ingest("dossiers", [header("D1", "2")], None, now=T0 + 1)
    retry = Settlement(item_id=sent.id, state=State.PENDING, next_attempt_at=T0 + 1)
    store.settle([retry], now=T0 + 1)
    (claimed,) = store.claim(Kind.HEADER, 10, now=T0 + 1)
    assert claimed.payload["TrangThaiHoSo"] == "2"
    assert states(store, "D1") == [State.SUPERSEDED, State.PENDING]


def test_force_queues_unchanged_header_and_step(store: Store) -> None:
    """`force` queues items again even when the portal already has the same content."""
    items = [header("D1"), step("D1", "20260101080000")]
    store.ingest("dossiers", items, None, now=T0)
    acknowledge(store, Kind.HEADER)
    acknowledge(store, Kind.STEP)
    result = store.ingest("dossiers", items, None, now=T0 + 1, force=True)
    assert (result.queued, result.unchanged) == (2, 0)


def test_force_does_not_double_a_step_still_waiting(store: Store) -> None:
    """A resync of a step that has not gone yet leaves one pending row, not two."""
    item = step("D1", "20260101080000")
    store.ingest("dossiers", [item], None, now=T0)
    result = store.ingest("dossiers", [item], None, now=T0 + 1, force=True)
    assert (result.queued, result.unchanged) == (0, 1)
    assert len(store.items(states=[State.PENDING], kind=Kind.STEP)) == 1


def test_preview_counts_what_ingest_would_queue_and_writes_nothing(store: Store) -> None:
    """A dry run's preview gives the counts the same ingest would, and the outbox and the
    cursor stay as they were."""
    first = [header("D1"), step("D1", "20260101080000"), broken(header("D2"))]
    store.ingest("dossiers", first, ("c", 1), now=T0)
    acknowledge(store, Kind.HEADER)
    acknowledge(store, Kind.STEP)
    again = [
        header("D1", "3"),  # changed
        step("D1", "20260101080000"),  # already sent: again only when forced
        step("D1", "20260101090000"),  # new
        broken(header("D2")),  # the same dead letter again
        header("D3"),  # new
    ]
    before = (store.counts(), store.cursor("dossiers"))
    for force in (False, True):
        preview = store.preview_ingest(again, now=T0 + 1, force=force)
        assert (store.counts(), store.cursor("dossiers")) == before
        expected = (3, 2, 0) if not force else (4, 1, 0)
        assert (preview.queued, preview.unchanged, preview.invalid) == expected, force
    result = store.ingest("dossiers", again, None, now=T0 + 1)
    assert (result.queued, result.unchanged, result.invalid) == (3, 2, 0)


def test_acked_hash_detects_unchanged_after_purge(store: Store) -> None:
    """Once the acknowledged row is purged, the known hash still marks the header unchanged."""
    store.ingest("dossiers", [header("D1")], None, now=T0)
    acknowledge(store, Kind.HEADER)
    assert store.purge(before=T0 + 1) == 1
    result = store.ingest("dossiers", [header("D1")], None, now=T0 + 2)
    assert (result.queued, result.unchanged) == (0, 1)
    assert store.ingest("dossiers", [header("D1", "3")], None, now=T0 + 3).queued == 1


def test_acknowledged_steps_are_not_queued_again_after_purge(store: Store) -> None:
    """A step the portal acknowledged stays sent once its row is purged: an unforced ingest
    (the pull, `resync --missing-only`) skips it, a forced one (a resync) sends it again,
    and a step never sent is still queued."""
    at1, at2, at3 = "20260101080000", "20260102080000", "20260103080000"
    store.ingest("dossiers", [header("D1"), header("D2")], None, now=T0)
    acknowledge(store, Kind.HEADER)
    store.ingest("steps", [step("D1", at1), step("D1", at2), step("D2", at1)], None, now=T0)
    acknowledge(store, Kind.STEP)
    assert store.purge(before=T0 + 1) == 5
    assert store.items() == []
    again = [step("D1", at1), step("D1", at2), step("D2", at1), step("D1", at3)]
    assert store.purged_steps(again) == {s.key for s in again[:3]}  # what `trace` shows
    result = store.ingest("steps", again, None, now=T0 + 2)
    assert (result.queued, result.unchanged) == (1, 3)
    assert [i.key for i in store.items()] == [f"D1|{at3}|2"]
    preview = store.preview_ingest(again[:3], now=T0 + 3, force=False)
    assert (preview.queued, preview.unchanged) == (0, 3)
    assert store.ingest("steps", again[:1], None, now=T0 + 3, force=True).queued == 1


def test_purged_steps_are_forgotten_when_the_portal_no_longer_holds_the_dossier(
    store: Store,
) -> None:
    """A lookup finding the dossier gone from the portal forgets its purged steps too, so
    a resync sends them again with the header."""
    at = "20260101080000"
    store.ingest("dossiers", [header("D1")], None, now=T0)
    acknowledge(store, Kind.HEADER)
    store.ingest("steps", [step("D1", at)], None, now=T0)
    acknowledge(store, Kind.STEP)
    assert store.purge(before=T0 + 1) == 2
    store.set_known("D1", False, now=T0 + 2)
    result = store.ingest("dossiers", [header("D1"), step("D1", at)], None, now=T0 + 3)
    assert (result.queued, result.unchanged) == (2, 0)


def test_purge_forgets_dossiers_with_no_step_left_to_wait(store: Store) -> None:
    """A claim sets aside the steps of dossiers the portal does not hold (`waiting`); once
    an operator retires them, the purge drops the dossier from `waiting`, and keeps one
    whose steps still wait."""
    from sqlalchemy import select

    from connector.store.schema import waiting

    store.ingest("dossiers", [broken(header("D1")), broken(header("D2"))], None, now=T0)
    store.ingest("steps", [step("D1", "20260101080000"), step("D2", "20260101080000")], None,
                 now=T0)  # fmt: skip
    assert store.claim(Kind.STEP, 10, now=T0, max_wait=600) == []

    def waiting_now() -> list[str]:
        with store.engine.connect() as conn:  # type: ignore[attr-defined]
            return list(conn.scalars(select(waiting.c.dossier).order_by(waiting.c.dossier)))

    assert waiting_now() == ["D1", "D2"]
    (d1_step,) = [i for i in store.items() if i.kind is Kind.STEP and i.dossier == "D1"]
    assert store.supersede([d1_step.id], now=T0) == 1
    store.purge(before=T0 - 1)
    assert waiting_now() == ["D2"]


def test_purge_goes_in_parts_and_keeps_every_purged_step(store: Store) -> None:
    """More rows than one part of the purge: all go, and every acknowledged step among them
    is remembered (steps of several dossiers, some purged in an earlier part)."""
    times = [f"202601010{h}0000" for h in range(8)]
    dossiers = [f"D{n}" for n in range(40)]
    store.ingest("dossiers", [header(d) for d in dossiers], None, now=T0)
    acknowledge(store, Kind.HEADER)
    steps = [step(d, at) for at in times for d in dossiers]
    store.ingest("steps", steps, None, now=T0)
    acknowledge(store, Kind.STEP)
    assert store.purge(before=T0 + 1, part=7) == 40 + 320
    result = store.ingest("steps", steps, None, now=T0 + 2)
    assert (result.queued, result.unchanged) == (0, 320)


def test_when_the_portal_acknowledged_a_dossier_outlives_the_purge(store: Store) -> None:
    """`acked_at` (what `connector trace` reads) is kept after the acknowledged row goes."""
    store.ingest("dossiers", [header("D1")], None, now=T0)
    assert store.acked_at("D1") is None
    acknowledge(store, Kind.HEADER, now=T0 + 5)
    assert store.purge(before=T0 + 10) == 1
    assert store.acked_at("D1") == T0 + 5
    assert store.acked_at("D2") is None


def test_a_version_refused_while_superseded_is_no_dead_letter(store: Store) -> None:
    """A version superseded while in flight and then refused (or retried to the end) by the
    portal stays superseded: nobody will send it again, and the newer one goes. The store
    says so, so that the push does not count a dead letter."""
    store.ingest("dossiers", [header("D1", "1"), header("D2", "1")], None, now=T0)
    sent, other = store.claim(Kind.HEADER, 10, now=T0)
    store.ingest("dossiers", [header("D1", "2")], None, now=T0 + 1)
    refusal = Settlement(item_id=sent.id, state=State.REJECTED, code="E21", message="sai")
    moot = store.settle([refusal, replace(refusal, item_id=other.id)], now=T0 + 1)
    assert moot == {sent.id}
    assert states(store, "D1") == [State.SUPERSEDED, State.PENDING]
    assert states(store, "D2") == [State.REJECTED]
    assert store.settle([replace(refusal, state=State.PARKED)], now=T0 + 2) == {sent.id}
    store.settle([replace(refusal, state=State.PENDING, next_attempt_at=T0)], now=T0 + 2)
    assert states(store, "D1") == [State.SUPERSEDED, State.PENDING]


@pytest.mark.parametrize("dead", [State.REJECTED, State.PARKED])
def test_a_newer_version_acknowledged_retires_the_dead_older_ones(
    store: Store, dead: State
) -> None:
    """The record was fixed after the portal refused (or the outbox parked) its header: once
    the fixed version is acknowledged, the old dead letter no longer lists as one. Another
    dossier's dead letter stays."""
    store.ingest("dossiers", [header("D1", "1"), header("D2", "1")], None, now=T0)
    claimed = store.claim(Kind.HEADER, 10, now=T0)
    store.settle([Settlement(item_id=i.id, state=dead, code="E21") for i in claimed], now=T0)
    store.ingest("dossiers", [header("D1", "2")], None, now=T0 + 1)
    acknowledge(store, Kind.HEADER, now=T0 + 1)
    assert states(store, "D1") == [State.SUPERSEDED, State.ACKED]
    assert states(store, "D2") == [dead]


def test_rejected_header_with_same_content_is_not_resent(store: Store) -> None:
    """A header the portal refused stays refused until its content changes."""
    store.ingest("dossiers", [header("D1")], None, now=T0)
    (item,) = store.claim(Kind.HEADER, 10, now=T0)
    store.settle([Settlement(item_id=item.id, state=State.REJECTED, code="E1")], now=T0)
    assert store.ingest("dossiers", [header("D1")], None, now=T0 + 1).unchanged == 1


def test_an_ingest_that_retires_a_dead_letter_queues_its_record_again(store: Store) -> None:
    """An operator's retry: the refused version goes and the record, unchanged, is queued in
    its place, in one ingest."""
    store.ingest("dossiers", [header("D1")], None, now=T0)
    (item,) = store.claim(Kind.HEADER, 10, now=T0)
    store.settle([Settlement(item_id=item.id, state=State.REJECTED, code="E1")], now=T0)
    result = store.ingest("dossiers", [header("D1")], None, now=T0 + 1, retire=[item.id])
    assert result.queued == 1
    assert states(store, "D1") == [State.SUPERSEDED, State.PENDING]


def test_a_record_queued_again_after_a_read_mark_is_left_as_it_is(store: Store) -> None:
    """An operator's command read D1 (status 2) and D2 after the mark; the pull then queued
    D1 at status 3 and acknowledged it. The command's D1, perhaps older, is not queued
    after it: D1's newest row stays the pull's. D2, which nothing queued meanwhile, is."""
    store.ingest("dossiers", [header("D1"), header("D2")], None, now=T0)
    mark = store.newest_id()
    store.ingest("dossiers", [header("D1", "3")], None, now=T0 + 1)
    acknowledge(store, Kind.HEADER, now=T0 + 1)
    read = [header("D1", "2"), header("D2", "2"), step("D1", "20260101080000")]
    preview = store.preview_ingest(read, now=T0 + 2, force=True, read_mark=mark)
    result = store.ingest("dossiers", read, None, now=T0 + 2, force=True, read_mark=mark)
    assert (result.queued, result.newer) == (2, 1) == (preview.queued, preview.newer)
    newest = max((i for i in store.items(limit=100) if i.key == "D1"), key=lambda i: i.id)
    assert (newest.payload["TrangThaiHoSo"], newest.state) == ("3", State.ACKED)
    assert states(store, "D2") == [State.ACKED, State.PENDING]
    assert store.newest_id() == max(i.id for i in store.items(limit=100))


def test_without_a_read_mark_the_last_version_ingested_is_queued(store: Store) -> None:
    """The pull gives no mark: what it reads is newer than what it queued before."""
    store.ingest("dossiers", [header("D1")], None, now=T0)
    store.ingest("dossiers", [header("D1", "3")], None, now=T0 + 1)
    assert store.ingest("dossiers", [header("D1", "2")], None, now=T0 + 2).queued == 1


def test_the_fingerprint_key_is_made_once_and_kept(store: Store) -> None:
    key = store.fingerprint_key()
    assert len(key) == 32 and store.fingerprint_key() == key
    other = SqlStore.open("sqlite://")
    try:
        assert other.fingerprint_key() != key, "each store makes its own"
    finally:
        other.close()


def test_the_fingerprint_key_outlives_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    first = SqlStore.open(url)
    key = first.fingerprint_key()
    first.close()
    again = SqlStore.open(url)
    try:
        assert again.fingerprint_key() == key
    finally:
        again.close()


def test_the_newest_id_of_an_empty_store_is_zero(store: Store) -> None:
    assert store.newest_id() == 0


def test_step_is_queued_once(store: Store) -> None:
    """A step key already queued or sent is not queued again, even twice in one page."""
    first = store.ingest("steps", [step("D1", "20260101080000")] * 2, None, now=T0)
    again = store.ingest("steps", [step("D1", "20260101080000")], None, now=T0 + 1)
    assert (first.queued, first.unchanged, again.queued, again.unchanged) == (1, 1, 0, 1)


def test_invalid_item_is_recorded_once(store: Store) -> None:
    """Re-pulling a record with the same problem does not pile up dead letters."""
    bad = broken(header("D1"))
    first = store.ingest("dossiers", [bad], None, now=T0)
    again = store.ingest("dossiers", [bad], None, now=T0 + 1)
    assert (first.invalid, again.invalid, again.unchanged) == (1, 0, 1)
    (item,) = store.items()
    assert (item.state, item.last_code) == (State.INVALID, "invalid")
    assert item.last_message == "NgayTiepNhan: required"


def test_invalid_item_with_new_reason_replaces_old(store: Store) -> None:
    """A record failing for a new reason keeps only its latest dead letter."""
    store.ingest("dossiers", [broken(header("D1"), "required")], None, now=T0)
    store.ingest("dossiers", [broken(header("D1"), "bad date")], None, now=T0 + 1)
    assert states(store, "D1") == [State.SUPERSEDED, State.INVALID]


def test_fixed_record_supersedes_its_dead_letter(store: Store) -> None:
    """A valid version of an invalid header or step retires the dead letter and is queued."""
    items = [header("D1"), step("D1", "20260101080000")]
    store.ingest("dossiers", [broken(i) for i in items], None, now=T0)
    store.ingest("dossiers", items, None, now=T0 + 1)
    assert states(store, "D1") == [State.SUPERSEDED, State.PENDING]
    assert states(store, items[1].key) == [State.SUPERSEDED, State.PENDING]


def test_fix_and_break_in_one_batch_keep_the_last(store: Store) -> None:
    """Within one page, the later of a fix and a new problem decides the dead letter."""
    store.ingest("dossiers", [broken(header("D1")), header("D1")], None, now=T0)
    assert store.counts().get((Kind.HEADER, State.INVALID), 0) == 0
    store.ingest("dossiers", [header("D1", "2"), broken(header("D1", "3"))], None, now=T0 + 1)
    assert store.counts()[(Kind.HEADER, State.INVALID)] == 1


def test_invalid_version_does_not_supersede_pending_valid(store: Store) -> None:
    """The last good header version still travels when a newer version is invalid."""
    store.ingest("dossiers", [header("D1")], None, now=T0)
    store.ingest("dossiers", [broken(header("D1", "2"))], None, now=T0 + 1)
    assert states(store, "D1") == [State.PENDING, State.INVALID]


def owned(dossier: str, ref: str, status: str = "1") -> Mapped:
    """A valid header for `dossier` pulled from the local record `ref`."""
    return Mapped(
        kind=Kind.HEADER, key=dossier, dossier=dossier, source_ref=ref,
        payload={"MaHoSo": dossier, "TrangThaiHoSo": status},
    )  # fmt: skip


def dead(store: Store) -> list[tuple[str, str, str]]:
    """(source_ref, dossier, reason) of every dead letter, oldest first."""
    rows = sorted(store.items(states=[State.INVALID], limit=1000), key=lambda i: i.id)
    return [(i.source_ref, i.dossier, i.last_message) for i in rows]


@pytest.mark.parametrize("same_page", [True, False], ids=["same-page", "later-page"])
def test_second_record_with_the_same_dossier_number_is_refused(
    store: Store, same_page: bool
) -> None:
    """A second local record with a MaHoSo already queued by another is a dead letter naming
    both records, and the first record's queued version is left as it was."""
    first, second = owned("D1", "dossiers:1", "1"), owned("D1", "dossiers:2", "2")
    if same_page:
        result = store.ingest("dossiers", [first, second], None, now=T0)
        assert (result.queued, result.invalid) == (1, 1)
    else:
        store.ingest("dossiers", [first], None, now=T0)
        assert store.ingest("dossiers", [second], None, now=T0 + 1).invalid == 1
    ((ref, dossier, reason),) = dead(store)
    assert (ref, dossier) == ("dossiers:2", "D1")
    assert reason.startswith("MaHoSo: dossier number already used by dossiers:1: dossiers:2")
    (pending,) = store.items(states=[State.PENDING])
    assert (pending.source_ref, pending.payload["TrangThaiHoSo"]) == ("dossiers:1", "1")


def test_duplicate_with_identical_content_is_still_refused(store: Store) -> None:
    """A duplicate is refused even when its content equals the owner's (not 'unchanged')."""
    store.ingest("dossiers", [owned("D1", "dossiers:1")], None, now=T0)
    acknowledge(store, Kind.HEADER)
    result = store.ingest("dossiers", [owned("D1", "dossiers:2")], None, now=T0 + 1, force=True)
    assert (result.queued, result.unchanged, result.invalid) == (0, 0, 1)


def test_owner_keeps_updating_and_the_duplicate_stays_dead(store: Store) -> None:
    """The owner's later versions are queued and leave the duplicate's dead letter alone;
    re-pulling the duplicate does not pile up dead letters."""
    store.ingest("dossiers", [owned("D1", "dossiers:1")], None, now=T0)
    acknowledge(store, Kind.HEADER)
    store.ingest("dossiers", [owned("D1", "dossiers:2")], None, now=T0 + 1)
    result = store.ingest(
        "dossiers", [owned("D1", "dossiers:1", "2"), owned("D1", "dossiers:2")], None, now=T0 + 2
    )
    assert (result.queued, result.unchanged, result.invalid) == (1, 1, 0)
    assert [ref for ref, _, _ in dead(store)] == ["dossiers:2"]


def test_changed_dossier_number_is_refused_and_the_old_one_stays(store: Store) -> None:
    """A local record queued under one MaHoSo and later pulled under another is a dead
    letter saying from what to what; its first MaHoSo is still the one sent."""
    store.ingest("dossiers", [owned("D1", "dossiers:1")], None, now=T0)
    acknowledge(store, Kind.HEADER)
    result = store.ingest("dossiers", [owned("D2", "dossiers:1", "2")], None, now=T0 + 1)
    assert (result.queued, result.invalid) == (0, 1)
    ((ref, dossier, reason),) = dead(store)
    assert (ref, dossier) == ("dossiers:1", "D2")
    assert "changed from 'D1' to 'D2'" in reason
    assert states(store, "D1") == [State.ACKED]
    assert store.ingest("dossiers", [owned("D1", "dossiers:1", "3")], None, now=T0 + 2).queued == 1
    assert dead(store) == [], "changing the number back retires the dead letter"


def test_changed_dossier_number_within_one_page(store: Store) -> None:
    """Two versions of one record with different MaHoSo in one page: the first is queued."""
    items = [owned("D1", "dossiers:1"), owned("D2", "dossiers:1")]
    result = store.ingest("dossiers", items, None, now=T0)
    assert (result.queued, result.invalid) == (1, 1)
    (pending,) = store.items(states=[State.PENDING])
    assert pending.dossier == "D1"


def test_invalid_record_does_not_claim_a_dossier_number(store: Store) -> None:
    """A record never queued (invalid) owns no number: another record may use it, and it
    may itself come back valid under a different number."""
    store.ingest("dossiers", [broken(owned("D1", "dossiers:1"))], None, now=T0)
    assert store.ingest("dossiers", [owned("D1", "dossiers:2")], None, now=T0 + 1).queued == 1
    assert store.ingest("dossiers", [owned("D3", "dossiers:1")], None, now=T0 + 2).queued == 1


def test_dossier_numbers_stay_owned_after_purge(store: Store) -> None:
    """Once the portal acknowledged a record's header, its number stays its own even after
    the acknowledged rows are purged: no other record takes it, and it keeps it."""
    store.ingest("dossiers", [owned("D1", "dossiers:1")], None, now=T0)
    acknowledge(store, Kind.HEADER)
    assert store.purge(before=T0 + 1) == 1
    assert store.ingest("dossiers", [owned("D1", "dossiers:2")], None, now=T0 + 2).invalid == 1
    assert store.ingest("dossiers", [owned("D2", "dossiers:1")], None, now=T0 + 3).invalid == 1
    reasons = [reason for _, _, reason in dead(store)]
    assert "already used by dossiers:1" in reasons[0]
    assert "changed from 'D1' to 'D2'" in reasons[1]
    assert store.ingest("dossiers", [owned("D1", "dossiers:1", "2")], None, now=T0 + 4).queued == 1


def step_of(record: str, dossier: str, at: str) -> Mapped:
    """A step of the local dossier record `record` (its mapping names the record)."""
    return Mapped(
        kind=Kind.STEP, key=f"{dossier}|{at}|2", dossier=dossier, source_ref=f"steps:{at}",
        payload={"MaHoSo": dossier, "ThoiDiemXuLy": at, "TrangThai": "2"}, event_time=at,
        dossier_ref=record,
    )  # fmt: skip


@pytest.mark.parametrize("claim", ["queued", "acknowledged and purged"])
def test_step_of_a_second_record_with_the_same_number_is_refused(store: Store, claim: str) -> None:
    """A step whose dossier record reuses another record's MaHoSo is a dead letter naming
    the owner: it would otherwise be added to the owner's dossier on the portal. A step
    that does not name its record cannot be told apart and is queued. Once the record has
    a number of its own, reading the step again retires its dead letter."""
    store.ingest("dossiers", [owned("D1", "dossiers:1")], None, now=T0)
    if claim != "queued":
        acknowledge(store, Kind.HEADER)
        assert store.purge(before=T0 + 1) == 1
    steps = [step_of("dossiers:1", "D1", "t1"), step_of("dossiers:2", "D1", "t2")]
    result = store.ingest("steps", [*steps, step("D1", "t3")], None, now=T0 + 1)
    assert (result.queued, result.invalid) == (2, 1)
    ((ref, dossier, reason),) = dead(store)
    assert (ref, dossier) == ("steps:t2", "D1")
    assert reason.startswith(
        "MaHoSo: dossier number belongs to dossiers:1: this step's dossier record dossiers:2"
    ), reason
    store.ingest("dossiers", [owned("D2", "dossiers:2")], None, now=T0 + 2)
    result = store.ingest("steps", [step_of("dossiers:2", "D2", "t2")], None, now=T0 + 3)
    assert (result.queued, result.invalid) == (1, 0)
    assert dead(store) == []


def test_step_of_a_renumbered_record_is_refused(store: Store) -> None:
    """A step under a number its dossier record was not first queued under is a dead letter
    saying which number stands; the record's steps under that number still go."""
    store.ingest("dossiers", [owned("D1", "dossiers:1")], None, now=T0)
    acknowledge(store, Kind.HEADER)
    store.ingest("dossiers", [owned("D2", "dossiers:1", "2")], None, now=T0 + 1)
    steps = [step_of("dossiers:1", "D2", "t1"), step_of("dossiers:1", "D1", "t2")]
    result = store.ingest("steps", steps, None, now=T0 + 2)
    assert (result.queued, result.invalid) == (1, 1)
    refs = {ref: reason for ref, _, reason in dead(store)}
    assert "changed from 'D1' to 'D2'" in refs["dossiers:1"]
    assert refs["steps:t1"].startswith(
        "MaHoSo: the step's dossier record dossiers:1 was queued as 'D1'"
    ), refs["steps:t1"]
    (pending,) = store.items(states=[State.PENDING])
    assert pending.key == "D1|t2|2"


def test_steps_queued_before_any_claim_follow_the_first_record_to_claim(store: Store) -> None:
    """Two records share a number while both headers are invalid: no record holds the
    number, so their steps are queued (blocked). When one record's header comes valid it
    claims the number, and the other record's queued steps become dead letters naming
    both, in the same transaction: they never reach the claimer's dossier."""
    bad = [broken(owned("D1", "dossiers:1")), broken(owned("D1", "dossiers:2"))]
    store.ingest("dossiers", bad, None, now=T0)
    steps = [step_of("dossiers:1", "D1", "t1"), step_of("dossiers:2", "D1", "t2")]
    assert store.ingest("steps", [*steps, step("D1", "t3")], None, now=T0 + 1).queued == 3
    result = store.ingest("dossiers", [owned("D1", "dossiers:1", "2")], None, now=T0 + 2)
    assert (result.queued, result.invalid) == (1, 1)
    ((ref, key, reason),) = result.withdrawn
    assert (ref, key) == ("steps:t2", "D1|t2|2")
    assert reason.startswith(
        "MaHoSo: dossier number belongs to dossiers:1: this step's dossier record dossiers:2"
    ), reason
    dead_steps = [(ref, text) for ref, _, text in dead(store) if ref.startswith("steps:")]
    assert dead_steps == [("steps:t2", reason)]
    acknowledge(store, Kind.HEADER, now=T0 + 3)
    sent = acknowledge(store, Kind.STEP, now=T0 + 3)
    assert sorted(i.key for i in store.items(limit=100) if i.id in sent) == ["D1|t1|2", "D1|t3|2"]
    # Read again unchanged, the refused step stays one dead letter with the same reason.
    again = store.ingest("steps", [step_of("dossiers:2", "D1", "t2")], None, now=T0 + 4)
    assert (again.queued, again.unchanged, again.invalid) == (0, 1, 0)


def test_two_records_steps_with_one_key_are_each_decided_by_the_first_claim(
    store: Store,
) -> None:
    """Before any record claims their number, two records' steps with the same time and
    status share the portal's step key. Each is queued, so the first claim can tell them
    apart: the claimer's step is sent and the other record's is a dead letter. Taken as
    one step, the claimer's would have been refused with the other's and never sent."""
    bad = [broken(owned("D1", "dossiers:1")), broken(owned("D1", "dossiers:2"))]
    store.ingest("dossiers", bad, None, now=T0)
    others = replace(step_of("dossiers:2", "D1", "t1"), source_ref="steps:2")
    own = replace(step_of("dossiers:1", "D1", "t1"), source_ref="steps:1")
    assert store.ingest("steps", [others], None, now=T0 + 1).queued == 1
    result = store.ingest("steps", [own, others], None, now=T0 + 2)
    assert (result.queued, result.unchanged) == (1, 1)
    result = store.ingest("dossiers", [owned("D1", "dossiers:1", "2")], None, now=T0 + 3)
    assert [ref for ref, _, _ in result.withdrawn] == ["steps:2"]
    acknowledge(store, Kind.HEADER, now=T0 + 4)
    sent = acknowledge(store, Kind.STEP, now=T0 + 4)
    assert [i.source_ref for i in store.items(limit=100) if i.id in sent] == ["steps:1"]
    assert [ref for ref, _, _ in dead(store) if ref.startswith("steps:")] == ["steps:2"]


def test_valid_header_retires_only_its_own_record_s_dead_letter(store: Store) -> None:
    """Two records refused under one number: the first one fixed is queued and retires its
    own dead letter; the other record is still as refused, and its dead letter stays."""
    refused = [broken(owned("D1", "dossiers:1")), broken(owned("D1", "dossiers:2"))]
    store.ingest("dossiers", refused, None, now=T0)
    assert store.ingest("dossiers", [owned("D1", "dossiers:1", "2")], None, now=T0 + 1).queued == 1
    assert [ref for ref, _, _ in dead(store)] == ["dossiers:2"]


def test_fixed_header_lists_its_number_when_its_steps_were_refused(store: Store) -> None:
    """A record whose refused header comes valid has its number listed for the pull to
    read its steps again (`rereads`), in the ingest's transaction, only when some of its
    steps are dead letters: steps are refused for their header's sake by number, and the
    others have nothing to read again. The pull takes it off the list once read."""
    store.ingest("dossiers", [owned("D1", "dossiers:1")], None, now=T0)
    refused = [owned("D1", "dossiers:2"), broken(owned("D3", "dossiers:3"))]
    assert store.ingest("dossiers", refused, None, now=T0 + 1).invalid == 2
    steps = [step_of("dossiers:2", "D1", "t1"), step_of("dossiers:3", "D3", "t2")]
    assert store.ingest("steps", steps, None, now=T0 + 2).invalid == 1
    assert store.rereads() == []
    fixed = [owned("D2", "dossiers:2"), owned("D3", "dossiers:3", "2")]
    assert store.ingest("dossiers", fixed, None, now=T0 + 3).queued == 2
    assert store.rereads() == ["D2"]
    store.ingest("dossiers", [owned("D2", "dossiers:2", "3")], None, now=T0 + 4)
    assert store.rereads() == ["D2"], "listed once"
    store.reread("D2")
    assert store.rereads() == []


def test_store_made_before_dossier_ref_gets_the_column(tmp_path: Path) -> None:
    """A store whose outbox has no `dossier_ref` column gets it, and its index, on opening;
    its rows read as naming no record, and new rows keep theirs."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = SqlStore.open(url)
    store.ingest("dossiers", [owned("D1", "dossiers:1")], None, now=T0)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_outbox_refused_steps")
        conn.exec_driver_sql("ALTER TABLE outbox DROP COLUMN dossier_ref")
    store.close()
    store = SqlStore.open(url)
    store.ingest("steps", [step_of("dossiers:1", "D1", "t1")], None, now=T0 + 1)
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT key, dossier_ref FROM outbox ORDER BY id").all()
        names = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'")
        assert "ix_outbox_refused_steps" in set(names.scalars())
    assert [tuple(row) for row in rows] == [("D1", ""), ("D1|t1|2", "dossiers:1")]
    store.close()


def test_store_made_before_owners_gets_them_from_its_rows(tmp_path: Path) -> None:
    """Opening a store that has no `owners` table yet fills it from acknowledged headers."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = SqlStore.open(url)
    store.ingest("dossiers", [owned("D1", "dossiers:1"), owned("D2", "dossiers:2")], None, now=T0)
    acknowledge(store, Kind.HEADER)
    store.ingest("dossiers", [owned("D1", "dossiers:1", "2")], None, now=T0 + 1)
    acknowledge(store, Kind.HEADER, now=T0 + 1)
    store.ingest("dossiers", [owned("D3", "dossiers:3")], None, now=T0 + 1)  # never acknowledged
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE owners")
    store.close()
    store = SqlStore.open(url)
    with store.engine.connect() as conn:
        rows = sorted(conn.exec_driver_sql("SELECT dossier, source_ref FROM owners").all())
    assert [tuple(row) for row in rows] == [("D1", "dossiers:1"), ("D2", "dossiers:2")]
    store.purge(before=T0 + 2)
    assert store.ingest("dossiers", [owned("D1", "dossiers:9")], None, now=T0 + 3).invalid == 1
    store.close()


def test_identity_look_up_spans_many_chunks(store: Store) -> None:
    """The identity rules hold for pages larger than one look-up chunk."""
    first = [owned(f"D{n}", f"dossiers:{n}") for n in range(1200)]
    store.ingest("dossiers", first, None, now=T0)
    again = [owned(f"D{n}", f"dossiers:{n + 1}") for n in range(0, 1200, 100)]
    result = store.ingest("dossiers", again, None, now=T0 + 1)
    assert (result.queued, result.invalid) == (0, len(again))


def test_cursor_moves_with_ingest(store: Store) -> None:
    """The cursor is saved with its page and left alone when no cursor is given."""
    assert store.cursor("dossiers") is None
    store.ingest("dossiers", [header("D1")], ("2026-01-01T00:00:00Z", 7), now=T0)
    store.ingest("dossiers", [], None, now=T0 + 1)
    assert store.cursor("dossiers") == ("2026-01-01T00:00:00Z", 7)
    assert store.cursors() == {"dossiers": (("2026-01-01T00:00:00Z", 7), T0)}


def test_failed_ingest_changes_nothing(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """When a row cannot be written, neither the page nor its cursor is stored."""
    store.ingest("dossiers", [header("D0")], ("c", 1), now=T0)

    def poisoned(item: Mapped, state: State, *, now: float) -> dict[str, Any]:
        row = new_row(item, state, now=now)
        return {**row, "dossier": None} if item.key == "BAD" else row

    monkeypatch.setattr(ingest_module, "new_row", poisoned)
    with pytest.raises(StoreError, match="ingest of dossiers"):
        store.ingest("dossiers", [header("D1"), header("BAD")], ("c", 2), now=T0 + 1)
    assert store.cursor("dossiers") == ("c", 1)
    assert [i.key for i in store.items()] == ["D0"]


# -- claim and settle -----------------------------------------------------------------------


def test_claim_headers_due_only_and_writes_nothing(store: Store) -> None:
    """Only due pending headers are claimed, oldest first; they stay pending until settled
    (one worker per store: nothing else claims them), so a claim again returns them."""
    store.ingest("dossiers", [header("D1"), header("D2")], None, now=T0)
    store.ingest("dossiers", [header("D3")], None, now=T0 + 100)
    claimed = store.claim(Kind.HEADER, 10, now=T0 + 1)
    assert [i.key for i in claimed] == ["D1", "D2"]
    assert states(store, "D1") == [State.PENDING]
    assert states(store, "D3") == [State.PENDING]
    assert [i.id for i in store.claim(Kind.HEADER, 10, now=T0 + 1)] == [i.id for i in claimed]


def test_claim_respects_limit(store: Store) -> None:
    """A claim returns at most `limit` items."""
    store.ingest("dossiers", [header(f"D{n}") for n in range(5)], None, now=T0)
    assert len(store.claim(Kind.HEADER, 3, now=T0)) == 3


def test_claim_header_updating_follows_known(store: Store) -> None:
    """A header is sent as an update exactly when the portal is known to hold the dossier."""
    store.ingest("dossiers", [header("D1")], None, now=T0)
    (first,) = store.claim(Kind.HEADER, 10, now=T0)
    store.settle([Settlement(item_id=first.id, state=State.ACKED)], now=T0)
    store.ingest("dossiers", [header("D1", "2")], None, now=T0 + 1)
    (second,) = store.claim(Kind.HEADER, 10, now=T0 + 1)
    assert (first.updating, second.updating) == (False, True)


def test_claim_sends_only_the_newest_header_version(store: Store) -> None:
    """A requeued old version never goes after a newer one: it is retired at claim time."""
    store.ingest("dossiers", [header("D1", "1")], None, now=T0)
    (old,) = store.claim(Kind.HEADER, 10, now=T0)
    store.settle([Settlement(item_id=old.id, state=State.REJECTED)], now=T0)
    store.ingest("dossiers", [header("D1", "2")], None, now=T0)
    assert store.requeue([old.id], now=T0) == 1
    (claimed,) = store.claim(Kind.HEADER, 10, now=T0)
    assert claimed.payload["TrangThaiHoSo"] == "2"
    assert states(store, "D1") == [State.SUPERSEDED, State.PENDING]


def test_steps_wait_for_their_dossier(store: SqlStore) -> None:
    """Steps are claimed only once their dossier's header was acknowledged."""
    store.ingest("dossiers", [header("D1"), step("D1", "20260101080000")], None, now=T0)
    assert store.claim(Kind.STEP, 10, now=T0) == []
    assert store.blocked_steps() == 1
    acknowledge(store, Kind.HEADER)
    assert store.blocked_steps() == 0
    assert len(store.claim(Kind.STEP, 10, now=T0)) == 1


def due_times(store: Store, dossier: str) -> list[float]:
    steps = [i for i in store.items() if i.dossier == dossier and i.kind is Kind.STEP]
    return sorted(i.next_attempt_at for i in steps)


def test_blocked_steps_are_set_aside_and_come_back_with_their_header(store: Store) -> None:
    """A claim sets aside the steps it cannot send, however many come before the ones it
    can, so the next claims do not walk them again; the header's acknowledgement brings
    them back at once."""
    blocked = [step("B", f"2026010100000{n}") for n in range(3)]
    store.ingest("steps", blocked, None, now=T0)
    store.ingest("dossiers", [header("D1"), step("D1", "20260101080000")], None, now=T0 + 1)
    acknowledge(store, Kind.HEADER, now=T0 + 1)
    assert [i.dossier for i in store.claim(Kind.STEP, 2, now=T0 + 2)] == ["D1"]
    assert due_times(store, "B") == [T0 + 2 + delivery.SET_ASIDE_SECONDS] * 3
    assert store.blocked_steps() == 3
    store.ingest("dossiers", [header("B")], None, now=T0 + 3)
    acknowledge(store, Kind.HEADER, now=T0 + 4)
    assert due_times(store, "B") == [T0 + 4] * 3
    claimed = [i.key for i in store.claim(Kind.STEP, 10, now=T0 + 4) if i.dossier == "B"]
    assert claimed == [s.key for s in blocked]


def test_set_aside_never_reaches_the_stranded_horizon(store: Store) -> None:
    """With `max_wait` shorter than the set-aside time, a step waits `max_wait` at most:
    beyond it, it would be taken for a step stranded by the clock going back."""
    store.ingest("steps", [step("B", "20260101000000")], None, now=T0)
    assert store.claim(Kind.STEP, 10, now=T0, max_wait=60) == []
    assert due_times(store, "B") == [T0 + 60]


def test_set_known_brings_set_aside_steps_back(store: Store) -> None:
    """A reconciliation finding the dossier held frees its steps like an acknowledgement."""
    store.ingest("steps", [step("B", "20260101000000")], None, now=T0)
    assert store.claim(Kind.STEP, 10, now=T0) == []
    store.set_known("B", True, now=T0 + 5)
    assert len(store.claim(Kind.STEP, 10, now=T0 + 5)) == 1


def test_set_aside_steps_are_looked_at_again_in_time(store: SqlStore) -> None:
    """A dossier held without the store being told (a restored `known` table) still gets
    its steps sent, once the set-aside time has passed."""
    store.ingest("steps", [step("B", "20260101000000")], None, now=T0)
    assert store.claim(Kind.STEP, 10, now=T0) == []
    with store.engine.begin() as conn:
        conn.execute(insert(known).values(dossier="B", acked_hash="", acked_at=T0))
    later = T0 + delivery.SET_ASIDE_SECONDS
    assert store.claim(Kind.STEP, 10, now=later - 1) == []
    assert len(store.claim(Kind.STEP, 10, now=later)) == 1


def test_claimed_steps_are_in_time_order_per_dossier(store: Store) -> None:
    """Each dossier's claimed steps come in event-time order whatever order they were queued."""
    store.ingest("dossiers", [header("D2"), header("D1")], None, now=T0)
    acknowledge(store, Kind.HEADER)
    late, early = step("D1", "20260102000000"), step("D1", "20260101000000")
    store.ingest("steps", [step("D2", "20260101000000"), late, early], None, now=T0)
    claimed = store.claim(Kind.STEP, 10, now=T0)
    assert [i.key for i in claimed] == [early.key, late.key, "D2|20260101000000|2"]


def test_settle_transitions(store: Store) -> None:
    """Settlements record the verdict, code and message; retries count attempts when asked."""
    store.ingest("dossiers", [header(f"D{n}") for n in range(4)], None, now=T0)
    a, b, c, d = store.claim(Kind.HEADER, 10, now=T0)
    store.settle(
        [
            Settlement(item_id=a.id, state=State.REJECTED, code="E9", message="bad code"),
            Settlement(item_id=b.id, state=State.PARKED, code="timeout"),
            Settlement(item_id=c.id, state=State.PENDING, next_attempt_at=T0 + 60, code="503"),
            Settlement(item_id=d.id, state=State.PENDING, next_attempt_at=T0, count_attempt=False),
        ],
        now=T0 + 1,
    )
    got = {i.id: i for i in store.items()}
    assert (got[a.id].state, got[a.id].last_code, got[a.id].last_message) == (
        State.REJECTED, "E9", "bad code",
    )  # fmt: skip
    assert got[b.id].state is State.PARKED
    assert (got[c.id].state, got[c.id].attempts, got[c.id].next_attempt_at) == (
        State.PENDING, 1, T0 + 60,
    )  # fmt: skip
    assert got[d.id].attempts == 0
    assert store.known_sample(10) == []


def test_settle_acked_header_makes_dossier_known(store: Store) -> None:
    """An acknowledged header records the dossier as held, with the acknowledged hash."""
    store.ingest("dossiers", [header("D1")], None, now=T0)
    (item,) = store.claim(Kind.HEADER, 10, now=T0)
    store.settle([Settlement(item_id=item.id, state=State.ACKED, code="0")], now=T0 + 5)
    assert store.known_sample(10) == ["D1"]
    assert store.get(item.id) is not None
    assert store.acked_since(T0 + 5) == {Kind.HEADER: 1}
    assert store.acked_since(T0 + 6) == {}


def test_settle_refuses_non_final_state(store: Store) -> None:
    """Settling an item as in flight is a programming error."""
    with pytest.raises(ValueError, match="in_flight"):
        store.settle([Settlement(item_id=1, state=State.IN_FLIGHT)], now=T0)


def test_set_known_repairs_knowledge(store: Store) -> None:
    """A lookup can add a dossier (unknown version) or remove it; a known hash is kept."""
    store.ingest("dossiers", [header("D1")], None, now=T0)
    acknowledge(store, Kind.HEADER)
    store.set_known("D1", True, now=T0 + 1)
    assert store.ingest("dossiers", [header("D1")], None, now=T0 + 1).unchanged == 1
    store.set_known("D1", False, now=T0 + 2)
    store.set_known("D2", True, now=T0 + 2)
    assert store.known_sample(10) == ["D2"]
    store.ingest("dossiers", [header("D2")], None, now=T0 + 3)
    (item,) = store.claim(Kind.HEADER, 10, now=T0 + 3)
    assert (item.key, item.updating) == ("D2", True)


def test_recover_returns_in_flight_to_pending(store: SqlStore) -> None:
    """Items an earlier version left in flight are pending again, no attempt counted."""
    store.ingest("dossiers", [header("D1"), header("D2")], None, now=T0)
    with store.engine.begin() as conn:
        conn.execute(outbox.update().values(state=State.IN_FLIGHT.value))
    assert store.recover() == 2
    assert {i.state for i in store.items()} == {State.PENDING}
    assert {i.attempts for i in store.items()} == {0}
    assert store.recover() == 0


# -- operating ------------------------------------------------------------------------------


def test_requeue_only_rejected_and_parked(store: Store) -> None:
    """Rejected and parked items return to pending with a fresh budget; others are refused."""
    store.ingest("dossiers", [header(f"D{n}") for n in range(3)], None, now=T0)
    store.ingest("dossiers", [broken(header("X"))], None, now=T0)
    a, b, c = store.claim(Kind.HEADER, 10, now=T0)
    store.settle(
        [
            Settlement(item_id=a.id, state=State.REJECTED),
            Settlement(item_id=b.id, state=State.PENDING, next_attempt_at=T0),
            Settlement(item_id=c.id, state=State.ACKED),
        ],
        now=T0,
    )
    (b_again,) = store.claim(Kind.HEADER, 10, now=T0)
    store.settle([Settlement(item_id=b_again.id, state=State.PARKED)], now=T0)
    (x,) = store.items(states=[State.INVALID])
    assert store.requeue([a.id, b.id, c.id, x.id], now=T0 + 9) == 2
    requeued = store.get(b.id)
    assert requeued is not None
    assert (requeued.state, requeued.attempts, requeued.next_attempt_at) == (
        State.PENDING, 0, T0 + 9,
    )  # fmt: skip
    assert store.get(x.id) == x


def test_supersede_retires_unsent_items_only(store: Store) -> None:
    """Operators may retire pending and dead items, never acknowledged ones."""
    store.ingest("dossiers", [header("D1"), header("D2")], None, now=T0)
    a, b = store.claim(Kind.HEADER, 10, now=T0)
    store.settle([Settlement(item_id=a.id, state=State.ACKED)], now=T0)
    store.settle([Settlement(item_id=b.id, state=State.PARKED)], now=T0)
    assert store.supersede([a.id, b.id], now=T0) == 1
    assert states(store, "D1") == [State.ACKED]
    assert states(store, "D2") == [State.SUPERSEDED]


def test_purge_drops_old_finished_rows(store: Store) -> None:
    """Purge removes acknowledged and superseded rows older than the cut-off, nothing else."""
    store.ingest("dossiers", [header("D1"), header("D2", "1")], None, now=T0)
    store.ingest("dossiers", [header("D2", "2"), broken(header("D3"))], None, now=T0)
    (first,) = store.claim(Kind.HEADER, 1, now=T0)
    store.settle([Settlement(item_id=first.id, state=State.ACKED)], now=T0)
    assert store.purge(before=T0) == 0
    assert store.purge(before=T0 + 1) == 2
    assert sorted(i.state for i in store.items()) == [State.INVALID, State.PENDING]


def test_counts_and_reports(store: SqlStore) -> None:
    """Counts, filters, history, ages and dead-letter statistics describe the outbox."""
    store.ingest("dossiers", [header("D1"), step("D1", "20260101000000")], None, now=T0)
    store.ingest("dossiers", [broken(header("D2")), broken(header("D3"))], None, now=T0 + 5)
    assert store.counts() == {
        (Kind.HEADER, State.PENDING): 1,
        (Kind.STEP, State.PENDING): 1,
        (Kind.HEADER, State.INVALID): 2,
    }
    assert [i.key for i in store.items(kind=Kind.HEADER, limit=2)] == ["D3", "D2"]
    assert [i.kind for i in store.dossier_history("D1")] == [Kind.HEADER, Kind.STEP]
    assert store.oldest_pending_age(T0 + 30) == 30
    assert store.stats_by_code() == [("invalid", 2)]
    assert store.get(10_000) is None


def test_meta_and_schema_version(store: Store) -> None:
    """The schema version is recorded and meta values can be replaced."""
    store.put_meta("portal", "rest")
    store.put_meta("portal", "soap")
    assert store.meta() == {"schema_version": "1", "portal": "soap"}


def test_reopening_a_file_store_keeps_its_rows(tmp_path: Path) -> None:
    """Opening an existing database creates nothing twice and loses nothing."""
    url = f"sqlite:///{tmp_path / 'again.db'}"
    first = SqlStore.open(url)
    first.ingest("dossiers", [header("D1")], ("c", 1), now=T0)
    first.close()
    second = SqlStore.open(url)
    assert (second.cursor("dossiers"), len(second.items())) == (("c", 1), 1)
    second.close()


# -- one worker per store ---------------------------------------------------------------------


def _shared_store(tmp_path: Path, backend: str) -> str:
    if backend == "pg":
        if not PG_URL:
            pytest.skip("CONNECTOR_TEST_POSTGRES_URL is not set")
        return PG_URL
    return f"sqlite:///{tmp_path / 'shared.db'}"


@pytest.mark.parametrize("backend", ["file", "pg"])
def test_worker_lock_admits_one_holder(tmp_path: Path, backend: str) -> None:
    """A second holder is refused with the first one's pid; once released, it may take it."""
    url = _shared_store(tmp_path, backend)
    first, second = SqlStore.open(url), SqlStore.open(url)
    try:
        lock = first.lock_worker()
        with pytest.raises(StoreBusy, match=f"pid {os.getpid()} on host"):
            second.lock_worker()
        lock.release()
        second.lock_worker().release()
    finally:
        first.close()
        second.close()


_HOLD = """
import sys, time
from connector.store import SqlStore
SqlStore.open(sys.argv[1]).lock_worker()
print("held", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("backend", ["file", "pg"])
def test_worker_lock_of_a_killed_process_is_free_at_once(tmp_path: Path, backend: str) -> None:
    """SIGKILL leaves nothing to wait for: the OS or the server drops the lock with its holder."""
    import subprocess
    import sys

    url = _shared_store(tmp_path, backend)
    store = SqlStore.open(url)
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, url], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreBusy, match=f"pid {holder.pid} on host"):
            store.lock_worker()
        holder.kill()
        holder.wait(timeout=10)
        for _ in range(50):  # the server notices a dropped connection within moments
            try:
                store.lock_worker().release()
                break
            except StoreBusy:
                time.sleep(0.1)
        else:
            pytest.fail("the killed holder's lock was not freed")
    finally:
        holder.kill()
        holder.wait(timeout=10)
        store.close()


@pytest.mark.parametrize("backend", ["file", "pg"])
def test_worker_lock_waits_for_its_holder_to_let_go(tmp_path: Path, backend: str) -> None:
    """A second process waits (saying why, once) and takes the lock when the first lets go;
    with a wait too short it is refused."""
    url = _shared_store(tmp_path, backend)
    first, second = SqlStore.open(url), SqlStore.open(url)
    heard: list[str] = []
    try:
        lock = first.lock_worker()
        with pytest.raises(StoreBusy):
            second.lock_worker(wait=0.3, on_wait=heard.append)
        assert len(heard) == 1 and f"pid {os.getpid()}" in heard[0]

        def let_go(message: str) -> None:  # once the second one is waiting, however late
            heard.append(message)
            lock.release()

        second.lock_worker(wait=30.0, on_wait=let_go).release()
        assert len(heard) == 2
    finally:
        first.close()
        second.close()


def test_dismissing_an_invalid_header_retires_it_and_the_steps_behind_it(store: Store) -> None:
    """The steps of a dossier the portal does not hold, with no other version to go, could
    never be sent: they are retired with the header, and nothing is blocked any more."""
    steps = [step("D1", "20260101080000"), step("D1", "20260101090000")]
    store.ingest("dossiers", [broken(header("D1")), *steps], None, now=T0)
    store.ingest("dossiers", [header("D2"), step("D2", "20260101080000")], None, now=T0)
    (dead,) = store.items(states=[State.INVALID])
    done = store.dismiss([dead.id], now=T0 + 1)
    assert (done.ids, done.steps) == ([dead.id], 2)
    assert states(store, "D1") == [State.SUPERSEDED]
    assert [states(store, s.key) for s in steps] == [[State.SUPERSEDED]] * 2
    assert store.items(states=[State.INVALID]) == []
    retired = [i for i in store.items(states=[State.SUPERSEDED]) if i.dossier == "D1"]
    assert {i.last_code for i in retired} == {"dismissed"}, "told apart from a replaced version"
    assert store.blocked_steps() == 1  # D2's step, whose header is still to go
    # Nothing is lost: the record, read again, is queued again.
    result = store.ingest("dossiers", [header("D1"), *steps], None, now=T0 + 2)
    assert result.queued == 3


def test_dismissing_leaves_steps_another_version_will_carry(store: Store) -> None:
    """An invalid newer version beside a valid pending one: its steps follow the valid one."""
    store.ingest("dossiers", [header("D1"), step("D1", "20260101080000")], None, now=T0)
    store.ingest("dossiers", [broken(header("D1", "2"))], None, now=T0 + 1)
    (dead,) = store.items(states=[State.INVALID])
    assert store.dismiss([dead.id], now=T0 + 2).steps == 0
    assert states(store, "D1") == [State.PENDING, State.SUPERSEDED]
    assert store.blocked_steps() == 1


def test_dismissing_one_of_two_dead_versions_leaves_the_steps(store: Store) -> None:
    """A rejected version and a later invalid one: dismissing the invalid one leaves the
    steps, since the rejected one may still be retried; dismissing both retires them."""
    store.ingest("dossiers", [header("D1"), step("D1", "20260101080000")], None, now=T0)
    (first,) = store.claim(Kind.HEADER, 10, now=T0)
    rejected = Settlement(item_id=first.id, state=State.REJECTED, code="E21", message="no")
    store.settle([rejected], now=T0)
    store.ingest("dossiers", [broken(header("D1", "2"))], None, now=T0 + 1)
    (invalid,) = store.items(states=[State.INVALID])
    assert store.dismiss([invalid.id], now=T0 + 2).steps == 0
    assert store.blocked_steps() == 1
    assert store.dismiss([first.id], now=T0 + 3).steps == 1
    assert store.blocked_steps() == 0


def test_dismissing_leaves_steps_of_a_dossier_the_portal_holds(store: Store) -> None:
    """A rejected update of a held dossier: its steps can still go, after the held version."""
    store.ingest("dossiers", [header("D1")], None, now=T0)
    acknowledge(store, Kind.HEADER)
    store.ingest("dossiers", [header("D1", "2"), step("D1", "20260101080000")], None, now=T0 + 1)
    (newer,) = store.claim(Kind.HEADER, 10, now=T0 + 1)
    rejected = Settlement(item_id=newer.id, state=State.REJECTED, code="E21", message="no")
    store.settle([rejected], now=T0 + 2)
    done = store.dismiss([newer.id], now=T0 + 3)
    assert (done.ids, done.steps) == ([newer.id], 0)
    assert len(store.claim(Kind.STEP, 10, now=T0 + 3)) == 1


def test_only_dead_letters_are_dismissed(store: Store) -> None:
    """A pending or acknowledged item, or an unknown id, is left as it is."""
    store.ingest("dossiers", [header("D1"), header("D2")], None, now=T0)
    (first, _) = store.claim(Kind.HEADER, 10, now=T0)
    store.settle([Settlement(item_id=first.id, state=State.ACKED)], now=T0)
    ids = sorted(i.id for i in store.items())
    assert store.dismiss([*ids, 999_999], now=T0 + 1).ids == []
    assert sorted(states(store, "D1") + states(store, "D2")) == sorted([State.ACKED, State.PENDING])


def test_items_list_newest_first_or_oldest_first(store: Store) -> None:
    """An operator looking at a backlog asks for what has waited longest (`--oldest`)."""
    store.ingest("dossiers", [header(f"D{n}") for n in range(5)], None, now=T0)
    newest = [i.key for i in store.items(states=[State.PENDING], limit=2)]
    oldest = [i.key for i in store.items(states=[State.PENDING], limit=2, oldest=True)]
    assert (newest, oldest) == (["D4", "D3"], ["D0", "D1"])


@pytest.mark.parametrize("backend", ["file", "pg"])
def test_two_processes_append_to_the_audit_trail_at_once(tmp_path: Path, backend: str) -> None:
    """The daemon's push and an operator's command each record their calls and actions:
    appending at once, every record is kept and the chain still verifies (on PostgreSQL,
    both used to read the same head and one failed on a duplicate key)."""
    from concurrent.futures import ThreadPoolExecutor

    from connector.ports import AuditEvent
    from connector.store.audit import verify_audit

    url = _shared_store(tmp_path, backend)
    stores = [SqlStore.open(url), SqlStore.open(url)]
    before = verify_audit(stores[0]).checked

    def write(store: SqlStore) -> None:
        for n in range(60):
            store.audit([AuditEvent(at=T0 + n, action="send", service="S", keys=[f"K{n}"])])

    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(write, stores))
        check = verify_audit(stores[0])
    finally:
        for store in stores:
            store.close()
    assert check.ok, check.reason
    assert check.checked == before + 120


@pytest.mark.parametrize("backend", ["file", "pg"])
def test_processes_opening_a_new_store_at_once_all_open_it(tmp_path: Path, backend: str) -> None:
    """Two daemons (or a daemon and a command) started together on an empty database: one
    creates the tables, the others find them (on PostgreSQL they used to collide and fail
    before the worker lock could say who holds the store)."""
    from concurrent.futures import ThreadPoolExecutor

    from connector.store.schema import metadata

    url = _shared_store(tmp_path, backend)
    empty = SqlStore.open(url)
    metadata.drop_all(empty.engine)
    empty.close()
    with ThreadPoolExecutor(4) as pool:
        opened = list(pool.map(SqlStore.open, [url] * 4))
    for store in opened:
        store.close()
    assert len(opened) == 4
