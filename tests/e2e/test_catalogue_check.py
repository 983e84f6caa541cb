"""`connector mapping check --portal` against the real sandbox portal on 127.0.0.1: the
demo crosswalks' target codes checked against the catalogues the sandbox serves."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import MAPPING, Stack

pytestmark = pytest.mark.e2e

CROSSWALKS = MAPPING.parent / "demo"


@pytest.fixture
def portal_stack(tmp_path: Path) -> Iterator[Stack]:
    """A configuration and (when a test starts it) a sandbox; no local system is needed."""
    s = Stack(tmp=tmp_path)
    s.write_config()
    try:
        yield s
    finally:
        s.stop_all()


def _rows(name: str) -> list[dict[str, str]]:
    with (CROSSWALKS / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _check(stack: Stack) -> tuple[int, str, str]:
    done = stack.cli("mapping", "check", "--portal", "--config", str(stack.config), check=False)
    return done.returncode, done.stdout, done.stderr


def _last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_demo_catalogue_lists_every_crosswalk_code(portal_stack: Stack) -> None:
    """With the demo's catalogue every code is known: exit 0, every row counted."""
    portal_stack.start_sandbox()
    code, stdout, stderr = _check(portal_stack)
    assert code == 0, stdout + stderr
    rows = len(_rows("procedures.csv")) + len(_rows("agencies.csv"))
    assert f"portal catalogues: {rows} crosswalk code(s) checked, 0 unknown" in stdout
    assert "unknown:" not in stdout
    assert portal_stack.stats()["logins"] >= 1  # the portal was really asked


def test_code_missing_from_the_portal_catalogue(portal_stack: Stack, tmp_path: Path) -> None:
    """A portal whose procedure catalogue lacks one code the demo crosswalk uses: exit 1,
    and the output names the code, the local code and the crosswalk file."""
    rows = _rows("procedures.csv")
    dropped = rows[0]["national_code"]
    users = sorted(r["local_code"] for r in rows if r["national_code"] == dropped)
    trimmed = tmp_path / "procedures-trimmed.csv"
    with trimmed.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(r for r in rows if r["national_code"] != dropped)
    portal_stack.start_sandbox(
        "--procedures-csv",
        str(trimmed),
        "--agencies-csv",
        str(CROSSWALKS / "agencies.csv"),
        catalogue=False,
    )
    code, stdout, stderr = _check(portal_stack)
    assert code == 1, stdout + stderr
    findings = [line for line in stdout.splitlines() if line.startswith("unknown:")]
    assert len(findings) == len(users)
    for line, local in zip(findings, users, strict=True):
        assert f"{CROSSWALKS / 'procedures.csv'}:" in line
        assert f"'{local}'" in line and f"'{dropped}'" in line
        assert "LayDanhSachTTHC" in line
    assert f"{len(users)} unknown" in stdout
    assert _last_line(stderr) == (
        f"error: {len(users)} crosswalk code(s) not in the portal's catalogues"
    )


def test_portal_without_catalogues(portal_stack: Stack) -> None:
    """A portal serving empty catalogues checks nothing: exit 1, each catalogue named once
    rather than every code called unknown."""
    portal_stack.start_sandbox(catalogue=False)
    code, stdout, stderr = _check(portal_stack)
    assert code == 1, stdout + stderr
    assert "unknown:" not in stdout
    assert "empty: the portal's procedures catalogue (LayDanhSachTTHC)" in stdout
    assert "empty: the portal's agencies catalogue (LayDanhMucCoQuan)" in stdout
    rows = len(_rows("procedures.csv")) + len(_rows("agencies.csv"))
    assert f"0 crosswalk code(s) checked, 0 unknown, {rows} not checked" in stdout
    assert _last_line(stderr) == (
        "error: the portal returned an empty catalogue: LayDanhSachTTHC, LayDanhMucCoQuan"
    )


def test_refused_login_is_a_configuration_error(portal_stack: Stack) -> None:
    """A portal refusing the login: exit 2 with one line saying so, password not shown."""
    portal_stack.start_sandbox()
    portal_stack.password = "not-the-password-" + portal_stack.password  # the CLI's only
    code, stdout, stderr = _check(portal_stack)
    assert code == 2, stdout + stderr
    last = _last_line(stderr)
    assert last.startswith(f"error: portal {portal_stack.sandbox_url} refused the connector")
    assert "login refused" in last
    assert portal_stack.password not in stdout + stderr
    assert "portal catalogues:" not in stdout


def test_unreachable_portal_is_one_line(portal_stack: Stack) -> None:
    """No portal listening: exit 1 with one line naming the portal, no code verdict."""
    code, stdout, stderr = _check(portal_stack)
    assert code == 1, stdout + stderr
    assert _last_line(stderr).startswith(
        f"error: portal {portal_stack.sandbox_url} cannot be reached or did not answer:"
    )
    assert "portal catalogues:" not in stdout


def test_without_the_option_the_portal_is_not_asked(portal_stack: Stack) -> None:
    """`mapping check` alone stays offline: it passes with no portal listening."""
    done = portal_stack.cli("mapping", "check", "--config", str(portal_stack.config))
    assert "ok" in done.stdout
    assert "portal catalogues:" not in done.stdout
