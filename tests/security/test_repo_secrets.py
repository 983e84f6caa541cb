"""Secrets come from the environment or a file: never from the repository or the TOML."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from connector.errors import ConfigError
from connector.settings import load
from tests.e2e.harness import ROOT

SECRET_KEY = re.compile(r"(password|passwd|secret|token|api_?key|credential)", re.IGNORECASE)
#: `name = "literal"` or `name: "literal"` where the name says it is a secret.
ASSIGNED = re.compile(
    r"""(?P<name>[\w.-]*(?:password|passwd|secret|token|api_?key)[\w.-]*)["']?\s*[:=]\s*"""
    r"""(?P<q>["'])(?P<value>[^"'\n]{4,})(?P=q)""",
    re.IGNORECASE,
)
PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
CLOUD_KEYS = re.compile(r"\b(?:AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36}|xox[abp]-[\w-]{10,})")
URL_CREDENTIALS = re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:[^/\s@'\"]+@", re.IGNORECASE)
#: An environment variable's name is a reference to a secret, not a secret.
ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
#: Test fixtures may hold throwaway credentials for fakes: short, or saying so in the value.
THROWAWAY = re.compile(r"test|fake|wrong|not-the|s3cr|t0k|tok-|pw\b|example", re.IGNORECASE)


def _tracked() -> list[Path]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30
    ).stdout.decode("utf-8")
    return [ROOT / name for name in listed.split("\0") if name]


def _texts(paths: list[Path]) -> Iterator[tuple[str, str]]:
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError:
            continue  # listed but deleted in the working tree
        if b"\0" not in data[:4096]:
            yield str(path.relative_to(ROOT)), data.decode("utf-8", errors="replace")


def findings(name: str, text: str) -> list[str]:
    """Password-looking literals in one file; tests may keep labelled throwaway ones."""
    found = [f"{name}: private key" for _ in PRIVATE_KEY.finditer(text)]
    found += [f"{name}: cloud token {m.group(0)[:6]}…" for m in CLOUD_KEYS.finditer(text)]
    in_tests = name.startswith("tests/")
    if not in_tests:
        found += [f"{name}: credentials in a URL" for _ in URL_CREDENTIALS.finditer(text)]
    for match in ASSIGNED.finditer(text):
        value = match.group("value")
        throwaway = len(value) < 8 or THROWAWAY.search(value) is not None
        if ENV_NAME.fullmatch(value) or (in_tests and throwaway):
            continue
        found.append(f"{name}: {match.group('name')} holds a literal")
    return found


def test_tracked_files_hold_no_secrets() -> None:
    """No private key, cloud token, URL with a password or password-looking literal is
    committed (test fakes may use labelled throwaway values)."""
    problems = [p for name, text in _texts(_tracked()) for p in findings(name, text)]
    assert problems == []


# Planted values are assembled, so this file does not trip its own scan once committed.
PLANTED = "Hanoi" + "@2026!"
QUOTED = '"' + PLANTED + '"'


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("config.toml", "password = " + QUOTED),
        ("connector/x.py", "PORTAL_TOKEN = " + QUOTED),
        ("docs/x.md", "url = postgresql://svc:" + "Kx8pq2@db/connector"),
        ("deploy/key.pem", "-----BEGIN EC " + "PRIVATE KEY-----"),
        ("tests/x.py", "PASSWORD = " + QUOTED),
    ],
)
def test_the_scan_finds_planted_secrets(name: str, text: str) -> None:
    """The scan is not vacuous: each planted secret is reported."""
    assert findings(name, text)


def _secret_values(doc: Mapping[str, Any], path: str = "") -> Iterator[str]:
    for key, value in doc.items():
        where = f"{path}{key}"
        if isinstance(value, Mapping):
            if SECRET_KEY.search(key) and not set(value) <= {"env", "file"}:
                yield f"{where}: only env or file"
            yield from _secret_values(value, where + ".")
        elif SECRET_KEY.search(key) and isinstance(value, str):
            yield f"{where}: a literal"


def test_example_config_reads_secrets_from_env_or_file_only() -> None:
    """config.example.toml names every secret by environment variable or file."""
    doc = tomllib.loads((ROOT / "config.example.toml").read_text(encoding="utf-8"))
    assert doc["portal"]["password"] == {"env": "CONNECTOR_PORTAL_PASSWORD"}
    assert list(_secret_values(doc)) == []


def test_a_literal_password_in_the_config_is_refused(tmp_path: Path) -> None:
    """`password = "..."` in the TOML is a configuration error naming portal.password."""
    config = tmp_path / "config.toml"
    config.write_text(
        '[source]\nurl = "sqlite:///x.db"\nmapping = "m.toml"\n'
        '[portal]\nbase_url = "https://portal"\nusername = "u"\ndstcode = "D"\n'
        f'madonvi = "000.00.01.H26"\npassword = {QUOTED}\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load(config)
    assert "portal.password" in str(caught.value)
    assert PLANTED not in str(caught.value)
