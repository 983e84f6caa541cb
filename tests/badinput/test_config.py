"""Broken configuration files: each stops the command with a message naming the file and
the key, through the Python API and through the CLI (exit code 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from connector import settings as settings_mod
from connector.errors import ConfigError
from tests.badinput.corpus import DEMO_MAPPING

UNSET_ENV = "CONNECTOR_TEST_SURELY_UNSET_SECRET"

GOOD = f"""
[state]
url = "sqlite:///state.db"

[source]
url = "sqlite:///local.db"
mapping = "{DEMO_MAPPING}"
page_size = 100

[portal]
base_url = "http://127.0.0.1:9"
username = "demo"
password = {{ env = "CONNECTOR_PORTAL_PASSWORD" }}
dstcode = "TEST-DST"
madonvi = "000.00.01.H26"
header_batch_size = 50

[portal.timeouts]
connect = 5

[portal.retry]
attempts = 3

[portal.tls]
verify = true

[delivery]
max_attempts = 12

[schedule]
pull_seconds = 2

[status]
port = 1

[logging]
level = "INFO"
"""


def replace(old: str, new: str) -> Callable[[str], str]:
    def apply(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return apply


def drop_section(name: str) -> Callable[[str], str]:
    """Remove [name] and its sub-tables."""

    def apply(text: str) -> str:
        kept = []
        for block in text.split("\n["):
            if not (block.startswith(f"{name}]") or block.startswith(f"{name}.")):
                kept.append(block)
        return "\n[".join(kept)

    return apply


#: (breakage, words the message must contain). The file's name is always required too.
BROKEN: list[tuple[str, Callable[[str], str], str]] = [
    ("missing portal", drop_section("portal"), "portal: Field required"),
    ("missing source", drop_section("source"), "source: Field required"),
    ("text batch size", replace("header_batch_size = 50", 'header_batch_size = "fifty"'),
     "portal.header_batch_size: Input should be a valid integer"),
    ("negative batch", replace("header_batch_size = 50", "header_batch_size = -5"),
     "portal.header_batch_size: Input should be greater than 0"),
    ("negative page", replace("page_size = 100", "page_size = -1"),
     "source.page_size: Input should be greater than 0"),
    ("list as url", replace('base_url = "http://127.0.0.1:9"', "base_url = [1]"),
     "portal.base_url: Input should be a valid string"),
    ("bool timeout", replace("connect = 5", 'connect = "soon"'), "portal.timeouts.connect"),
    ("port too big", replace("port = 1", "port = 70000"), "status.port"),
    ("bad log level", replace('level = "INFO"', 'level = "LOUD"'), "logging.level"),
    ("typo in state", replace('url = "sqlite:///state.db"', 'ulr = "sqlite:///state.db"'),
     "state.ulr: Extra inputs are not permitted"),
    ("typo in source", replace("page_size = 100", "pagesize = 100"),
     "source.pagesize: Extra inputs are not permitted"),
    ("typo in portal", replace('dstcode = "TEST-DST"', 'dstcode = "TEST-DST"\ndstcod = "x"'),
     "portal.dstcod: Extra inputs are not permitted"),
    ("typo in timeouts", replace("connect = 5", "conect = 5"), "portal.timeouts.conect"),
    ("typo in retry", replace("attempts = 3", "atempts = 3"), "portal.retry.atempts"),
    ("typo in tls", replace("verify = true", "verfy = true"), "portal.tls.verfy"),
    ("typo in delivery", replace("max_attempts = 12", "max_atempts = 12"),
     "delivery.max_atempts"),
    ("typo in schedule", replace("pull_seconds = 2", "pull_second = 2"),
     "schedule.pull_second"),
    ("typo in status", replace("port = 1", "prot = 1"), "status.prot"),
    ("typo in logging", replace('level = "INFO"', 'levle = "INFO"'), "logging.levle"),
    ("typo in secret", replace('{ env = "CONNECTOR_PORTAL_PASSWORD" }', '{ evn = "X" }'),
     "portal.password.evn"),
    ("unknown section", replace("[delivery]", "[deliverry]"), "deliverry: Extra inputs"),
    ("mapping not found", replace(str(DEMO_MAPPING), "/nonexistent/mapping.toml"),
     "source.mapping"),
    ("ftp portal", replace("http://127.0.0.1:9", "ftp://127.0.0.1:9"),
     "portal.base_url: must be an http:// or https:// URL"),
    ("portal without scheme", replace("http://127.0.0.1:9", "127.0.0.1:9"), "portal.base_url"),
    ("path without slash", replace("[portal]\n", '[portal]\nauth_path = "auth"\n'),
     "portal.auth_path"),
    ("bad toml", replace("[delivery]", "[delivery"), "not valid TOML"),
]  # fmt: skip


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CONNECTOR_PORTAL_PASSWORD": "pw", **(env or {})},
    )


def test_the_baseline_configuration_loads(tmp_path: Path) -> None:
    """The table's starting point is valid, so each breakage is the only fault."""
    assert settings_mod.load(_write(tmp_path, GOOD)).source.page_size == 100


@pytest.mark.parametrize(("breakage", "words"), [(b, w) for _, b, w in BROKEN],
                         ids=[n for n, _, _ in BROKEN])  # fmt: skip
def test_broken_configuration_names_file_and_key(
    tmp_path: Path, breakage: Callable[[str], str], words: str
) -> None:
    """`connector.settings.load` raises ConfigError naming the file and the key."""
    path = _write(tmp_path, breakage(GOOD))
    with pytest.raises(ConfigError) as caught:
        settings_mod.load(path)
    assert str(path) in str(caught.value)
    assert words in str(caught.value)


@pytest.mark.parametrize("name", ["missing portal", "negative batch", "typo in tls", "ftp portal"])
def test_cli_exits_2_with_the_key_on_stderr(tmp_path: Path, name: str) -> None:
    """`connector status --config` stops with exit code 2 and one line naming the key."""
    ((breakage, words),) = [(b, w) for n, b, w in BROKEN if n == name]
    path = _write(tmp_path, breakage(GOOD))
    result = _cli("status", "--config", str(path))
    assert result.returncode == 2, result.stderr
    assert words in " ".join(result.stderr.split()) and str(path.name) in result.stderr


@pytest.mark.parametrize(
    ("secret", "words"),
    [
        (f'{{ env = "{UNSET_ENV}" }}', f"environment variable {UNSET_ENV} is not set"),
        ('{ file = "secrets/none.txt" }', "cannot read secret file"),
    ],
    ids=["env-unset", "file-missing"],
)
def test_missing_secret_names_the_key(tmp_path: Path, secret: str, words: str) -> None:
    """A secret whose variable is unset or whose file is missing is a ConfigError naming
    the key and the file when it is read, and `connector status` exits 2 for the token."""
    text = GOOD.replace('{ env = "CONNECTOR_PORTAL_PASSWORD" }', secret)
    text = text.replace("port = 1", f"port = 1\ntoken = {secret}")
    path = _write(tmp_path, text)
    loaded = settings_mod.load(path)
    for read, key in (
        (loaded.portal_password, "portal.password"),
        (loaded.status_token, "status.token"),
    ):
        with pytest.raises(ConfigError) as caught:
            read()
        assert f"{path}: {key}: {words}" in str(caught.value)
    result = _cli("status", "--config", str(path))
    assert result.returncode == 2, result.stderr
    assert "status.token" in result.stderr and words.split()[0] in result.stderr


def test_a_secret_written_in_the_file_is_refused_without_repeating_it(tmp_path: Path) -> None:
    """`password = "..."` stops the load with what to write instead; the value appears
    neither in the message nor in the exception it came from, nor on the CLI's stderr."""
    literal = "hunter2-literal-secret"
    text = GOOD.replace('{ env = "CONNECTOR_PORTAL_PASSWORD" }', f'"{literal}"')
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        settings_mod.load(path)
    message = str(caught.value)
    assert "portal.password: a secret is never written in the configuration file" in message
    assert "{ env = " in message
    assert literal not in message and caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    result = _cli("status", "--config", str(path))
    assert result.returncode == 2 and "portal.password" in result.stderr
    assert literal not in result.stderr + result.stdout


def test_missing_configuration_file_is_named(tmp_path: Path) -> None:
    """A configuration path that does not exist is named in the error and exits 2."""
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigError, match="configuration file not found"):
        settings_mod.load(missing)
    result = _cli("status", "--config", str(missing))
    assert result.returncode == 2 and "nowhere.toml" in result.stderr


@pytest.mark.parametrize(
    ("window", "words"),
    [
        (["--since", "2026-11-05", "--until", "2026-11-01"], "--since must be before --until"),
        (
            ["--changed-since", "2026-11-05T10:00", "--changed-until", "2026-11-05T10:00"],
            "--changed-since must be before --changed-until",
        ),
    ],
)
def test_a_resync_window_that_ends_before_it_starts_is_refused(
    tmp_path: Path, window: list[str], words: str
) -> None:
    """A window that can select nothing is a mistake in the command, said as such (exit 2),
    not a resync reporting "nothing matched"; the configuration is not even read."""
    result = _cli("resync", *window, "--config", str(tmp_path / "nowhere.toml"))
    assert result.returncode == 2, result.stderr
    assert words in result.stderr


def test_listing_the_blocked_state_points_to_the_command_that_lists_them(tmp_path: Path) -> None:
    """`blocked` is a figure of the status, not an item's state: asked for as one, the
    answer says where blocked steps are listed (before the configuration is read)."""
    result = _cli("outbox", "list", "--state", "blocked", "--config", str(tmp_path / "x.toml"))
    assert result.returncode == 2
    assert "connector outbox blocked" in " ".join(result.stderr.split())


def test_a_state_store_that_cannot_be_created_is_one_line(tmp_path: Path) -> None:
    """A state file under a path that cannot be made (a file where a folder should be) ends
    the command with one line naming it, not a traceback."""
    (tmp_path / "blocker").write_text("a file, not a folder", encoding="utf-8")
    text = GOOD.replace('url = "sqlite:///state.db"', 'url = "sqlite:///blocker/var/state.db"')
    result = _cli("outbox", "list", "--config", str(_write(tmp_path, text)))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot create the folder" in lines[0], result.stderr
    assert "blocker" in lines[0] and "Traceback" not in result.stderr
