"""The set-up the in-process benchmarks share (`stages.py`, `lean.py`).

Both need the same things before they time anything: a generated local system, the sandbox
portal as a subprocess on 127.0.0.1, and the connector's `App` built on the two with the
benchmark's tuning. `set_up` makes them and takes them down again, whatever happens.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.procs import Processes, Tuning
from bench.synth import Generated, generate
from connector.app import App
from connector.settings import load


@dataclass(frozen=True, slots=True)
class Bench:
    """What a run works with: its folder, the sandbox, the connector and the generated data."""

    workdir: Path
    procs: Processes
    app: App
    generated: Generated


def options(description: str) -> argparse.ArgumentParser:
    """The options every in-process benchmark takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--dossiers", type=int, default=20_000)
    p.add_argument("--template-dossiers", type=int, default=2000, help="made by the demo")
    p.add_argument("--workdir", type=Path, default=None, help="kept when given")
    return p


@contextmanager
def set_up(args: argparse.Namespace, prefix: str) -> Iterator[Bench]:
    """Generate the local system, start the sandbox and build the App; the sandbox is
    stopped and a temporary folder removed on the way out."""
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix=prefix))
    workdir.mkdir(parents=True, exist_ok=True)
    procs = Processes(workdir=workdir, password=secrets.token_urlsafe(16))
    try:
        source = workdir / "source.db"
        generated, _ = generate(
            source, args.dossiers, template_dossiers=args.template_dossiers, workdir=workdir
        )
        procs.start_sandbox()
        os.environ["CONNECTOR_PORTAL_PASSWORD"] = procs.password  # read by the config
        app = App(load(procs.write_config(source, Tuning())))
        try:
            yield Bench(workdir=workdir, procs=procs, app=app, generated=generated)
        finally:
            app.close()
    finally:
        procs.stop_all()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
