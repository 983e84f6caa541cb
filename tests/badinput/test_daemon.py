"""The bad-input corpus through the daemon against the sandbox portal over loopback: the
portal holds every good record exactly as the source holds it, and nothing else."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.badinput.corpus import Corpus, build_corpus, renumber
from tests.badinput.support import source_fields, step_fields, write_config
from tests.e2e.harness import Stack, held_by_sandbox, wait_until

pytestmark = pytest.mark.e2e


def _dead(state_db: Path) -> dict[str, str]:
    db = sqlite3.connect(f"file:{state_db}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT source_ref, last_message FROM outbox WHERE state = 'invalid'")
        return dict(rows.fetchall())
    finally:
        db.close()


def _held_all(stack: Stack, corpus: Corpus) -> bool:
    stats = stack.stats()
    return bool(
        stats["dossiers"] >= len(corpus.good_dossiers())
        and stats["steps"] >= len(corpus.good_steps())
    )


def test_daemon_delivers_the_good_and_refuses_the_bad(tmp_path: Path) -> None:
    """Good records arrive unaltered; each bad one is a dead letter naming its field; a
    renumbered dossier keeps its first number on the portal."""
    corpus = build_corpus(tmp_path)
    stack = Stack(tmp=tmp_path, mapping=corpus.mapping)
    write_config(stack.config, corpus, portal=stack.sandbox_url, status_port=stack.status_port)
    try:
        stack.start_sandbox()
        stack.start_daemon()
        wait_until(lambda: _held_all(stack, corpus), timeout=90, what="the good records")
        first = corpus.dossiers[corpus.renumbered]["dossier_no"]
        renumber(corpus, f"{first[:-4]}9999")
        wait_until(
            lambda: corpus.renumbered in _dead(stack.state_db), timeout=60, what="renumbering"
        )
    finally:
        stack.stop_all()
    held = held_by_sandbox(stack.sandbox_db)
    good = corpus.good_dossiers()
    assert set(held.dossiers) == {row["dossier_no"] for row in good.values()}
    for row in good.values():
        payload = held.dossiers[row["dossier_no"]]
        assert {k: payload.get(k) for k in source_fields(row)} == source_fields(row)
    assert held.dossiers[first]["TrangThaiHoSo"] == "2", "the renumbered version was applied"
    owner, duplicate = corpus.duplicate
    owned = held.dossiers[corpus.dossiers[owner]["dossier_no"]]
    assert (owned["TrangThaiHoSo"], owned["TrichYeuHoSo"]) == ("2", good[owner]["summary"])
    steps = {
        (s["dossier_no"], step_fields(s)["ThoiDiemXuLy"]) for s in corpus.good_steps().values()
    }
    assert {(m, t) for m, t, _ in held.steps} == steps
    dead = _dead(stack.state_db)
    assert set(dead) == corpus.bad_refs() | {corpus.renumbered}
    for ref, case in corpus.bad.items():
        assert f"{case.field}: " in dead[ref] and case.words in dead[ref], (case.name, dead[ref])
    assert owner in dead[duplicate] and "changed from" in dead[corpus.renumbered]
