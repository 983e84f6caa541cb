"""A small demo system with seeded personal data, and a stack over it that is always stopped."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.security.seeded import CROSSWALKS, Seeded, seed_personal_data
from tests.security.stack import SecureStack

DOSSIERS = 60


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Seeded]:
    from connector.demo.generate import init_demo

    path = tmp_path_factory.mktemp("seeded") / "demo.db"
    init_demo(path, CROSSWALKS, dossiers=DOSSIERS, seed=5, overwrite=True)
    return path, seed_personal_data(path)


@pytest.fixture
def secure_stack(tmp_path: Path, seeded_template: tuple[Path, Seeded]) -> Iterator[SecureStack]:
    stack = SecureStack(tmp=tmp_path)
    shutil.copy(seeded_template[0], stack.demo_db)
    stack.write_config()
    try:
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture(scope="session")
def plain_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from connector.demo.generate import init_demo

    path = tmp_path_factory.mktemp("plain") / "demo.db"
    init_demo(path, CROSSWALKS, dossiers=DOSSIERS, seed=6, overwrite=True)
    return path


@pytest.fixture
def plain_stack(tmp_path: Path, plain_template: Path) -> Iterator[SecureStack]:
    """The stack over a small unmodified demo system (every record valid)."""
    stack = SecureStack(tmp=tmp_path)
    shutil.copy(plain_template, stack.demo_db)
    stack.write_config()
    try:
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture
def seeded(seeded_template: tuple[Path, Seeded]) -> Seeded:
    return seeded_template[1]


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (needs the openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not found")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "portal.pem", folder / "portal.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key
