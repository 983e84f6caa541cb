"""The bad-input corpus in a local database, and an app reading it (no daemon, no portal)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connector import settings as settings_mod
from connector.app import App
from tests.badinput.corpus import Corpus, build_corpus
from tests.badinput.support import write_config


@pytest.fixture
def corpus(tmp_path: Path) -> Corpus:
    return build_corpus(tmp_path)


@pytest.fixture
def app(tmp_path: Path, corpus: Corpus) -> Iterator[App]:
    opened = App(settings_mod.load(write_config(tmp_path / "config.toml", corpus)))
    try:
        yield opened
    finally:
        opened.close()
