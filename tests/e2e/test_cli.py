"""Operator commands against a real state store, demo system and sandbox portal."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.e2e.harness import Stack, copy_sqlite, expected_from_demo, held_by_sandbox

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def delivery(tmp_path_factory: pytest.TempPathFactory, demo_template: Path) -> Path:
    """The demo delivered once with `run --once`, for the whole module: the folder holding
    the three databases as they were then (each test gets copies)."""
    once = Stack(tmp=tmp_path_factory.mktemp("delivered"))
    shutil.copy(demo_template, once.demo_db)
    once.write_config()
    try:
        once.start_sandbox()
        once.cli("run", "--once", "--config", str(once.config))
    finally:
        once.stop_all()
    return once.tmp


@pytest.fixture
def delivered(stack: Stack, delivery: Path) -> Stack:
    """A stack whose demo has been delivered once with `run --once`, its sandbox running."""
    for db in (stack.demo_db, stack.state_db, stack.sandbox_db):
        copy_sqlite(delivery / db.name, db)
    stack.start_sandbox()
    return stack


def test_outbox_lists_dead_letters_with_reasons(delivered: Stack) -> None:
    """`outbox list` shows every invalid record with the field that stopped it."""
    expected = expected_from_demo(delivered.demo_db)
    result = delivered.cli(
        "outbox", "list", "--json", "--config", str(delivered.config), "--limit", "500"
    )
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert {r["dossier"] for r in rows} == set(expected.invalid)
    for row in rows:
        assert row["state"] == "invalid"
        assert "MaTTHC" in row["last_message"] or "NgayHenTra" in row["last_message"]


def test_outbox_blocked_names_the_dead_header_behind_each_dossier(delivered: Stack) -> None:
    """The steps that cannot go are those of the invalid dossiers, each listed with its
    header's reason and the command that sends it again once fixed."""
    expected = expected_from_demo(delivered.demo_db)
    result = delivered.cli("outbox", "blocked", "--json", "--config", str(delivered.config))
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert rows, "the demo's invalid dossiers have steps"
    assert {r["dossier"] for r in rows} <= set(expected.invalid)
    status = json.loads(delivered.cli("status", "--json", "--config", str(delivered.config)).stdout)
    assert sum(r["steps"] for r in rows) == status["blocked_steps"]
    for row in rows:
        assert row["header_state"] == "invalid"
        assert "MaTTHC" in row["reason"] or "NgayHenTra" in row["reason"]
        assert f"connector outbox retry {row['header_id']}" in row["reason"]
    table = delivered.cli("outbox", "blocked", "--config", str(delivered.config)).stdout
    assert f"{len(rows)} dossier(s)" in table


def test_mapping_preview_prints_the_exact_payload(delivered: Stack) -> None:
    """`mapping preview` prints the payload the portal received, without sending."""
    held = held_by_sandbox(delivered.sandbox_db)
    dossier = sorted(held.dossiers)[0]
    before = delivered.stats()["requests"]
    result = delivered.cli(
        "mapping", "preview", "--dossier", dossier, "--config", str(delivered.config)
    )
    assert "DongBoHoSoMC" in result.stdout and "CapNhatTienDoHoSoMC" in result.stdout
    assert f'"MaHoSo": "{dossier}"' in result.stdout
    assert delivered.stats()["requests"] == before


def test_mapping_check_passes_on_the_demo(delivered: Stack) -> None:
    """The shipped demo mapping checks clean."""
    result = delivered.cli("mapping", "check", "--config", str(delivered.config))
    assert "ok" in result.stdout


def test_resync_dry_run_queues_nothing(delivered: Stack) -> None:
    """A dry run reports what it would queue and leaves the outbox alone."""
    held = held_by_sandbox(delivered.sandbox_db)
    dossier = sorted(held.dossiers)[0]
    before = delivered.cli("status", "--json", "--config", str(delivered.config)).stdout
    result = delivered.cli(
        "resync", "--dossier", dossier, "--dry-run", "--config", str(delivered.config)
    )
    assert "dossiers: read 1, would queue 1" in result.stdout
    after = delivered.cli("status", "--json", "--config", str(delivered.config)).stdout
    assert json.loads(before)["outbox"] == json.loads(after)["outbox"]


def test_resync_queues_and_delivers_again(delivered: Stack) -> None:
    """A resync of one dossier queues its header and steps; the portal takes them as the
    same dossier and the same steps."""
    held = held_by_sandbox(delivered.sandbox_db)
    dossier = sorted(held.dossiers)[0]
    result = delivered.cli("resync", "--dossier", dossier, "--config", str(delivered.config))
    assert "dossiers: read 1, queued 1" in result.stdout
    delivered.cli("run", "--once", "--config", str(delivered.config))
    stats = delivered.stats()
    assert stats["dossiers"] == len(held.dossiers)
    assert stats["steps"] == len(held.steps)
    assert stats["duplicate_steps"] > 0


def test_resync_missing_only_queues_what_the_pull_missed(delivered: Stack) -> None:
    """Two changes commit behind the cursor (stamped before rows already pulled): a note
    on a dossier and a new step of it. The pull never sees them; `resync --missing-only`
    queues those two and nothing else of the dossier, and the portal gets them."""
    import sqlite3
    from datetime import datetime, timedelta

    config = str(delivered.config)
    number = sorted(expected_from_demo(delivered.demo_db).dossiers)[0]
    with sqlite3.connect(delivered.demo_db) as db:
        (dossier_id,) = db.execute(
            "SELECT id FROM dossiers WHERE dossier_no = ?", (number,)
        ).fetchone()
        (oldest,) = db.execute("SELECT min(modified_at) FROM steps").fetchone()
        db.execute(
            "UPDATE dossiers SET note = 'Đã bổ sung bản sao giấy tờ', modified_at = ? WHERE id = ?",
            (oldest, dossier_id),
        )
        last = db.execute(
            "SELECT actor, actor_title, department, action_at, content, status, started_at,"
            " deadline_at FROM steps WHERE dossier_id = ? ORDER BY action_at DESC LIMIT 1",
            (dossier_id,),
        ).fetchone()
        later = datetime.fromisoformat(last[3]) + timedelta(hours=1)
        db.execute(
            "INSERT INTO steps (dossier_id, actor, actor_title, department, action_at, content,"
            " status, started_at, deadline_at, modified_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (dossier_id, *last[:3], later.isoformat(sep=" "), *last[4:], oldest),
        )
    before = delivered.stats()
    delivered.cli("run", "--once", "--config", config)
    assert delivered.stats()["steps"] == before["steps"]  # the pull missed both

    options = ("--dossier", number, "--missing-only", "--config", config)
    preview = delivered.cli("resync", *options, "--dry-run").stdout
    assert "dossiers: read 1, would queue 1" in preview
    assert "would queue 1, invalid 0" in preview.split("steps:")[1]
    result = delivered.cli("resync", *options).stdout
    assert "dossiers: read 1, queued 1" in result
    assert "queued 1, invalid 0" in result.split("steps:")[1]
    delivered.cli("run", "--once", "--config", config)
    after = delivered.stats()
    assert after["steps"] == before["steps"] + 1
    assert after["duplicate_steps"] == before["duplicate_steps"]  # nothing sent twice
    held = held_by_sandbox(delivered.sandbox_db).dossiers[number]
    assert held["GhiChu"] == "Đã bổ sung bản sao giấy tờ"
    trail = delivered.cli("audit", "show", "--action", "operator", "--json", "--config", config)
    (record,) = [json.loads(line) for line in trail.stdout.splitlines()]
    assert record["service"] == "resync" and record["keys"] == [number]
    assert (record["detail"], record["outcome"]) == ("cli; missing-only", "dossiers=1,steps=1")


def test_resync_missing_only_sends_nothing_again_after_the_purge(delivered: Stack) -> None:
    """Every acknowledged row of the delivered demo is purged. A `--missing-only` resync of
    everything then finds nothing to send (the headers' hashes and the steps' digests
    outlive their rows); a plain one would send it all again."""
    from connector.store import SqlStore

    config = str(delivered.config)
    expected = expected_from_demo(delivered.demo_db)
    store = SqlStore.open(f"sqlite:///{delivered.state_db}")
    try:
        purged = store.purge(before=4102444800.0, part=1000)  # 2100-01-01: every finished row
    finally:
        store.close()
    assert purged >= len(expected.dossiers) + len(expected.steps)
    everything = ("--since", "2000-01-01", "--config", config)
    preview = delivered.cli("resync", *everything, "--missing-only", "--dry-run").stdout
    assert "would queue 0," in preview.split("steps:")[0]
    assert "would queue 0," in preview.split("steps:")[1]
    forced = delivered.cli("resync", *everything, "--dry-run").stdout.split("steps:")[1]
    assert f"would queue {len(expected.steps)}," in forced
    before = delivered.stats()
    result = delivered.cli("resync", *everything, "--missing-only").stdout
    assert "queued 0," in result.split("steps:")[1]
    delivered.cli("run", "--once", "--config", config)
    after = delivered.stats()
    assert {k: v for k, v in after.items() if k != "uptime_s"} == {
        k: v for k, v in before.items() if k != "uptime_s"
    }


def test_resync_by_change_time_sends_what_changed_in_the_window(delivered: Stack) -> None:
    """New activity is stamped on 1 January 2000 (UTC), behind the cursor: the pull never
    reads it. A resync of what changed that day (a naive time is Hà Nội's wall clock, so
    07:00 is midnight UTC) reads exactly those records, and the portal then holds them."""
    import sqlite3

    from connector.demo.live import DemoActivity

    config = str(delivered.config)
    activity = DemoActivity(delivered.demo_db, delivered.mapping.parent / "demo", seed=5)
    try:
        activity.tick(new_dossiers=3, advances=4)
    finally:
        activity.close()
    with sqlite3.connect(delivered.demo_db) as db:
        (newest,) = db.execute("SELECT max(modified_at) FROM dossiers").fetchone()
        counts = {}
        for table in ("dossiers", "steps"):
            counts[table] = db.execute(
                f"UPDATE {table} SET modified_at = '2000-01-01T00:00:' ||"
                f" printf('%09.6f', id / 1e6) || 'Z' WHERE modified_at >= ?",
                (newest[:16],),
            ).rowcount
    assert counts["dossiers"] >= 3 and counts["steps"] >= 3
    before = delivered.stats()
    delivered.cli("run", "--once", "--config", config)
    assert delivered.stats()["dossiers"] == before["dossiers"]  # the pull missed them

    window = ("--changed-since", "2000-01-01T07:00", "--changed-until", "2000-01-02")
    result = delivered.cli("resync", *window, "--missing-only", "--config", config).stdout
    assert f"dossiers: read {counts['dossiers']}," in result
    assert f"steps: read {counts['steps']}," in result
    delivered.cli("run", "--once", "--config", config)
    held = held_by_sandbox(delivered.sandbox_db)
    expected = expected_from_demo(delivered.demo_db)
    assert set(held.dossiers) == set(expected.dossiers)
    assert delivered.stats()["dossiers"] == before["dossiers"] + 3


def test_trace_says_where_a_dossier_stands(delivered: Stack) -> None:
    """A delivered dossier: the portal holds it with every valid step. An invalid one:
    refused locally, with the field. Without the portal: not asked."""
    config = str(delivered.config)
    expected = expected_from_demo(delivered.demo_db)
    held = sorted(expected.dossiers)[3]
    steps = sum(1 for step in expected.steps if step[0] == held)
    found = json.loads(delivered.cli("trace", held, "--json", "--config", config).stdout)
    status = held_by_sandbox(delivered.sandbox_db).dossiers[held]["TrangThaiHoSo"]
    assert found["verdict"] == (
        f"the portal holds it (TrangThaiHoSo {status}) with {steps} of {steps} steps"
    )
    assert [c["action"] for c in found["calls"]] == ["send", "reply"] * (len(found["calls"]) // 2)
    assert all("body" not in row for row in found["outbox"])

    invalid = sorted(expected.invalid)[0]
    refused = delivered.cli("trace", invalid, "--no-portal", "--config", config).stdout
    assert "the local record is refused:" in refused
    assert "MaTTHC" in refused or "NgayHenTra" in refused
    quiet = json.loads(
        delivered.cli("trace", held, "--no-portal", "--json", "--config", config).stdout
    )
    assert (quiet["looked_up"], quiet["portal_said"]) == (False, "not asked")


def test_audit_show_lists_every_call_that_carried_a_dossier(delivered: Stack) -> None:
    """`audit show --dossier` gives the calls that carried the dossier's header and each
    of its steps, every send followed by its reply, and only those calls."""
    held = held_by_sandbox(delivered.sandbox_db)
    dossier = sorted(held.dossiers)[len(held.dossiers) // 2]
    steps = {f"{m}|{t}|{s}" for m, t, s in held.steps if m == dossier}
    trail = delivered.cli(
        "audit", "show", "--dossier", dossier, "--json", "--config", str(delivered.config)
    )
    records = [json.loads(line) for line in trail.stdout.splitlines()]
    carried = [(r["action"], r["service"], tuple(r["dossier_keys"])) for r in records]
    assert all(keys for _, _, keys in carried)
    sends = [(service, keys) for action, service, keys in carried if action == "send"]
    replies = [(service, keys) for action, service, keys in carried if action == "reply"]
    assert sends == replies and len(sends) * 2 == len(records)
    assert [keys for service, keys in sends if service == "DongBoHoSoMC"] == [(dossier,)]
    sent_steps = [k for service, keys in sends if service == "CapNhatTienDoHoSoMC" for k in keys]
    assert sorted(sent_steps) == sorted(steps)
    assert all(r["outcome"].startswith("ack=") for r in records if r["action"] == "reply")
    table = delivered.cli("audit", "show", "--dossier", dossier, "--config", str(delivered.config))
    assert f"{len(records)} record(s)" in table.stdout


def test_an_operator_resync_is_recorded_with_what_it_covered(delivered: Stack) -> None:
    """The audit record of a resync says where it came from and what it selected, even
    when the selection held nothing."""
    config = str(delivered.config)
    asked = ("--since", "2001-01-01", "--until", "2001-01-02", "--agency", "000.00.01.H26")
    said = delivered.cli("resync", *asked, "--config", config).stdout
    assert "nothing matched" in said
    assert "--agency and --procedure take the local system's codes" in said
    trail = delivered.cli("audit", "show", "--action", "operator", "--json", "--config", config)
    (record,) = [json.loads(line) for line in trail.stdout.splitlines()]
    assert (record["service"], record["keys"]) == ("resync", [])
    assert record["detail"] == (
        "cli; since=2001-01-01T00:00:00 until=2001-01-02T00:00:00 agency=000.00.01.H26"
    )
    assert delivered.cli("audit", "verify", "--config", config).returncode == 0


def test_dead_letters_listed_and_retried_by_code(delivered: Stack) -> None:
    """`--code` picks the dead letters whose last code it names: `invalid` lists and
    re-reads every refused record, a code nothing has lists and retries nothing, and the
    audit trail records what was asked."""
    config = str(delivered.config)
    expected = expected_from_demo(delivered.demo_db)

    def listed(code: str) -> list[dict[str, object]]:
        out = delivered.cli("outbox", "list", "--code", code, "--json", "--limit", "500",
                            "--config", config).stdout  # fmt: skip
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    invalid = listed("invalid")
    assert {r["dossier"] for r in invalid} == set(expected.invalid)
    assert listed("E99") == []
    nothing = delivered.cli("outbox", "retry", "--code", "E99", "--config", config).stdout
    assert nothing == "nothing to retry: no dead letter matches\n"
    both = delivered.cli("outbox", "retry", "--code", "E99", "--all-dead", "--config", config,
                         check=False)  # fmt: skip
    assert both.returncode == 2 and "not both" in both.stderr
    # Nothing was fixed: each record is read again, refused again with its reason, and the
    # command says so and fails (its dead letters are still there).
    again = delivered.cli("outbox", "retry", "--code", "invalid", "--config", config, check=False)
    assert again.returncode == 1
    assert f"{len(invalid)} of {len(invalid)} dead letter(s) not retried" in again.stderr
    lines = sorted(again.stdout.splitlines())
    assert [line.split(": still refused: ")[0] for line in lines] == sorted(
        str(r["id"]) for r in invalid
    )
    assert all(line.split(": still refused: ")[1] for line in lines), lines
    assert len(listed("invalid")) == len(invalid), "each is a dead letter again"
    trail = delivered.cli("audit", "show", "--action", "operator", "--json", "--config", config)
    details = [json.loads(line)["detail"] for line in trail.stdout.splitlines()]
    assert details == ["cli; code=E99", "cli; code=invalid"]


def test_dead_letters_dismissed_with_a_reason_clear_the_status_and_lose_nothing(
    delivered: Stack,
) -> None:
    """Dismissing the invalid records (`--code invalid`) retires them and the steps
    blocked behind them: the status shows no dead letter and no blocked step, and the
    audit trail keeps the reason, masked. A reason is required. The local records are
    not lost: a `--missing-only` resync of one queues it again, refused again."""
    config = str(delivered.config)
    expected = expected_from_demo(delivered.demo_db)
    refused = delivered.cli("outbox", "dismiss", "--code", "invalid", "--config", config,
                            check=False)  # fmt: skip
    assert refused.returncode == 2 and "--reason" in refused.stderr
    before = json.loads(delivered.cli("status", "--json", "--config", config).stdout)
    assert before["blocked_steps"] > 0
    reason = "thủ tục chỉ có ở địa phương; liên hệ 0912345678"
    said = delivered.cli("outbox", "dismiss", "--code", "invalid", "--reason", reason,
                         "--config", config).stdout  # fmt: skip
    n = len(expected.invalid)
    assert f"dismissed {n} dead letter(s) and {before['blocked_steps']} step(s)" in said
    after = json.loads(delivered.cli("status", "--json", "--config", config).stdout)
    assert (after["dead_letters"], after["blocked_steps"]) == (0, 0)
    trail = delivered.cli("audit", "show", "--action", "operator", "--json", "--config", config)
    (record,) = [json.loads(line) for line in trail.stdout.splitlines()]
    assert record["service"] == "dismiss"
    assert record["outcome"] == f"dismissed={n},steps={before['blocked_steps']}"
    assert record["detail"].startswith("cli; code=invalid reason=thủ tục chỉ có ở địa phương")
    assert "0912345678" not in record["detail"]
    not_dead = delivered.cli("outbox", "dismiss", "1", "--reason", "x", "--config", config,
                             check=False)  # fmt: skip
    assert not_dead.returncode == 1 and "[1]" in not_dead.stdout
    dossier = sorted(expected.invalid)[0]
    delivered.cli("resync", "--dossier", dossier, "--missing-only", "--config", config)
    back = delivered.cli("outbox", "list", "--dossier", dossier, "--json", "--config", config)
    assert [json.loads(line)["state"] for line in back.stdout.splitlines()] == ["invalid"]


def test_retry_of_invalid_record_after_mapping_fix(delivered: Stack) -> None:
    """An invalid record (unknown procedure) is sent after the crosswalk is fixed and the
    operator retries it, and its steps, set aside meanwhile, go with it in the same run."""
    import shutil
    import sqlite3

    expected = expected_from_demo(delivered.demo_db)
    db = sqlite3.connect(delivered.demo_db)
    marks = ",".join("?" * len(expected.invalid))
    unknown = db.execute(
        "SELECT dossier_no, procedure_code FROM dossiers WHERE due_at IS NOT NULL "
        f"AND dossier_no IN ({marks})",
        sorted(expected.invalid),
    ).fetchall()
    db.close()
    assert unknown, "the demo seed must contain an unknown-procedure record"
    dossier, local_code = unknown[0]
    # With backoff capped at 600 s, a run sets the record's steps aside for 300 s: only the
    # acknowledgement of the fixed header can bring them back within the test.
    _cap_backoff(delivered, 600)
    delivered.cli("run", "--once", "--config", str(delivered.config))
    # Copy the mapping next to the test and add the missing crosswalk row there.
    mapping_dir = delivered.tmp / "mappings"
    shutil.copytree(delivered.mapping.parent, mapping_dir)
    crosswalk = mapping_dir / "demo" / "procedures.csv"
    national = crosswalk.read_text(encoding="utf-8").splitlines()[1].split(",")[1]
    with crosswalk.open("a", encoding="utf-8") as f:
        f.write(f"{local_code},{national},Thủ tục bổ sung,district,G01-XD,Xây dựng,5\n")
    delivered.mapping = mapping_dir / "demo.toml"
    delivered.write_config()
    _cap_backoff(delivered, 600)
    listing = delivered.cli(
        "outbox", "list", "--json", "--config", str(delivered.config), "--limit", "500"
    )
    rows = [json.loads(line) for line in listing.stdout.splitlines() if line.strip()]
    (item,) = [r for r in rows if r["dossier"] == dossier]
    assert item["state"] == "invalid" and "MaTTHC" in item["last_message"]
    result = delivered.cli("outbox", "retry", str(item["id"]), "--config", str(delivered.config))
    assert "re-read" in result.stdout
    delivered.cli("run", "--once", "--config", str(delivered.config))
    held = held_by_sandbox(delivered.sandbox_db)
    assert dossier in held.dossiers
    fixed = expected_from_demo(delivered.demo_db, delivered.mapping)
    its_steps = {s for s in fixed.steps if s[0] == dossier}
    assert its_steps and its_steps <= set(held.steps)


def _cap_backoff(stack: Stack, seconds: int) -> None:
    text = stack.config.read_text()
    assert text.count("backoff_max = 2\n") == 1
    stack.config.write_text(text.replace("backoff_max = 2\n", f"backoff_max = {seconds}\n"))


def test_check_tries_every_part_and_sends_nothing(stack: Stack) -> None:
    """On a working installation `check` says ready: the mapping, both streams, the state
    store and a login, and the portal received no dossier and no step."""
    stack.start_sandbox()
    result = stack.cli("check", "--config", str(stack.config))
    assert "ready: every part answered" in result.stdout
    for part in ("mapping", "local system: dossiers", "local system: steps", "state store"):
        assert part in result.stdout
    assert result.stdout.count("one-dossier") == 2, result.stdout
    assert "logged in as demo" in result.stdout
    store = stack.cli("check", "--json", "--config", str(stack.config)).stdout
    (found,) = [f for f in map(json.loads, store.splitlines()) if f["part"] == "state store"]
    assert found["detail"].startswith("answers at sqlite:///"), found
    assert "no stream cursor yet" in found["detail"]
    stats = stack.stats()
    assert (stats["dossiers"], stats["steps"], stats["logins"]) == (0, 0, 2), "one per check"


def test_check_names_every_part_that_fails(stack: Stack) -> None:
    """A local database that cannot be opened and a wrong password: both are reported, the
    state store is still tried, and the password never appears in the output."""
    stack.start_sandbox()
    text = stack.config.read_text(encoding="utf-8")
    broken = text.replace(f'url = "sqlite:///{stack.demo_db}"', f'url = "sqlite:///{stack.tmp}"')
    assert broken != text
    stack.config.write_text(broken, encoding="utf-8")
    stack.password = "not-" + stack.password
    result = stack.cli("check", "--json", "--config", str(stack.config), check=False)
    assert result.returncode == 1
    assert "3 part(s) failed: local system: dossiers, local system: steps, portal" in result.stderr
    found = {f["part"]: f for f in map(json.loads, result.stdout.splitlines())}
    assert [part for part, f in found.items() if f["ok"]] == ["mapping", "state store"]
    unopened = found["local system: dossiers"]["detail"]
    assert "unable to open database file" in unopened and f"(file {stack.tmp})" in unopened
    assert found["portal"]["detail"].startswith("refused: ")
    assert stack.password not in result.stdout + result.stderr


def test_check_runs_the_query_that_reads_one_dossier(stack: Stack) -> None:
    """A broken `select_dossier` would fail only when an operator retries, traces or
    resyncs a dossier, or when the pull reads a fixed record's steps again: `check` runs it
    for the first record's dossier and names the stream, the query's key and the database's
    reason."""
    stack.start_sandbox()
    mapping_dir = stack.tmp / "mappings"
    shutil.copytree(stack.mapping.parent, mapping_dir)
    mapping = mapping_dir / "demo.toml"
    text = mapping.read_text(encoding="utf-8")
    good = "WHERE d.dossier_no = :dossier AND s.id > :after"
    assert text.count(good) == 1
    mapping.write_text(text.replace(good, good.replace("d.dossier_no", "d.dossier_number")))
    stack.mapping = mapping
    stack.write_config()
    result = stack.cli("check", "--json", "--config", str(stack.config), check=False)
    assert result.returncode == 1
    assert "1 part(s) failed: local system: steps" in result.stderr
    found = {f["part"]: f for f in map(json.loads, result.stdout.splitlines())}
    detail = found["local system: steps"]["detail"]
    assert "no such column: d.dossier_number" in detail
    assert detail.endswith("(in streams.steps.select_dossier)")


def test_bad_config_names_the_key(stack: Stack) -> None:
    """A wrong setting stops the command with exit code 2 and names the key."""
    stack.config.write_text(stack.config.read_text().replace("page_size = 200", "page_size = -1"))
    result = stack.cli("status", "--config", str(stack.config), check=False)
    assert result.returncode == 2
    assert "source.page_size" in result.stderr


def test_outbox_show_gives_times_as_the_status_does(delivered: Stack) -> None:
    """One item's times are ISO UTC, as everywhere an operator reads them, not epoch
    seconds; its reason is printed as it is, brackets included."""
    config = str(delivered.config)
    listing = delivered.cli("outbox", "list", "--json", "--limit", "1", "--config", config)
    (row,) = [json.loads(line) for line in listing.stdout.splitlines() if line.strip()]
    shown = delivered.cli("outbox", "show", str(row["id"]), "--config", config).stdout
    for name in ("created_at", "updated_at", "next_attempt_at"):
        assert re.search(rf"^{name}: \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", shown, re.M), shown
    assert f"last_message: {row['last_message']}" in shown
