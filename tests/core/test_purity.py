"""The pure core imports no I/O library."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = ("httpx", "zeep", "sqlalchemy", "apscheduler")
PROBE = f"""
import importlib, json, pkgutil, sys
import connector.core
names = [m.name for m in pkgutil.iter_modules(connector.core.__path__)]
for name in names:
    importlib.import_module("connector.core." + name)
print(json.dumps({{"modules": names, "leaked": [m for m in {FORBIDDEN!r} if m in sys.modules]}}))
"""


def test_core_imports_no_io_library() -> None:
    """Importing every connector.core module in a fresh interpreter pulls in none of them."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(done.stdout)
    assert {"mapping", "transforms", "validation", "records"} <= set(report["modules"])
    assert report["leaked"] == []
