"""`connector demo …` and `connector sandbox`: the embedded demo and the local trial portal."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.markup import escape

from connector import settings as settings_mod
from connector.errors import ConnectorError
from connector.settings import Settings

out = Console()
err = Console(stderr=True)
demo_app = typer.Typer(no_args_is_help=True, help="The demo local one-stop system.")

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML configuration.")]
DEMO_PASSWORD_ENV = "CONNECTOR_PORTAL_PASSWORD"


def _settings(config: Path | None) -> Settings:
    try:
        return settings_mod.load(config)
    except ConnectorError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from exc


def _sqlite_path(url: str, key: str) -> Path:
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        err.print(f"[red]error:[/red] {key}: the demo needs an sqlite:/// URL, got another kind")
        raise typer.Exit(2)
    return Path(url[len(prefix) :])


def _crosswalks(settings: Settings) -> Path:
    return settings.source.mapping.parent / "demo"


@demo_app.command("init")
def demo_init(
    config: ConfigOpt = None,
    dossiers: Annotated[int, typer.Option(min=10, help="How many dossiers to generate.")] = 3000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data).")] = 7,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing demo database.")
    ] = False,
    if_missing: Annotated[
        bool, typer.Option("--if-missing", help="Do nothing if it exists.")
    ] = False,
) -> None:
    """Create the demo local one-stop database named by [source].url."""
    from connector.demo.generate import init_demo

    settings = _settings(config)
    path = _sqlite_path(settings.source.url, "source.url")
    if path.exists() and if_missing:
        out.print(f"demo database already there: {path}")
        return
    if path.exists() and not force:
        err.print(f"[red]error:[/red] {path} exists; use --force to replace it")
        raise typer.Exit(1)
    summary = init_demo(path, _crosswalks(settings), dossiers=dossiers, seed=seed, overwrite=True)
    out.print(
        f"demo database {path}: {summary.dossiers} dossiers, {summary.steps} steps, "
        f"{summary.invalid} deliberately invalid"
    )


@demo_app.command("live")
def demo_live(
    config: ConfigOpt = None,
    interval: Annotated[float, typer.Option(min=0.05, help="Seconds between ticks.")] = 1.0,
    ticks: Annotated[int | None, typer.Option(help="Stop after this many ticks.")] = None,
) -> None:
    """Keep the demo system alive: new dossiers and steps keep arriving."""
    from connector.demo.live import run_activity

    settings = _settings(config)
    run_activity(
        _sqlite_path(settings.source.url, "source.url"),
        _crosswalks(settings),
        interval=interval,
        ticks=ticks,
    )


@demo_app.command("up")
def demo_up(
    config: ConfigOpt = None,
    dossiers: Annotated[int, typer.Option(min=10, help="Demo size when it is created.")] = 3000,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
) -> None:
    """Everything on one machine: demo system + sandbox portal + the connector daemon."""
    from connector.app import App
    from connector.daemon import run_daemon
    from connector.demo.generate import init_demo
    from connector.demo.live import run_activity
    from connector.logs import configure_logging

    settings = _settings(config)
    password_file = _demo_password(settings)
    db = _sqlite_path(settings.source.url, "source.url")
    if not db.exists():
        summary = init_demo(db, _crosswalks(settings), dossiers=dossiers, overwrite=True)
        out.print(
            f"created demo system: {summary.dossiers} dossiers, {summary.steps} steps, "
            f"{summary.invalid} deliberately invalid"
        )
    sandbox_db = _sqlite_path(settings.state.url, "state.url").parent / "sandbox.db"
    sandbox = _start_sandbox(settings, sandbox_db)
    stop = threading.Event()
    live = threading.Thread(
        target=run_activity,
        args=(db, _crosswalks(settings)),
        kwargs={"interval": 1.0, "stop": stop},
        daemon=True,
    )
    live.start()
    status = f"http://{settings.status.host}:{settings.status.port}/status"
    # soft_wrap: URLs and commands stay on one line, whole, for copying
    out.print(
        f"sandbox portal: {settings.portal.base_url}  (counts: "
        f"{settings.portal.base_url}/_sandbox/stats)",
        soft_wrap=True,
    )
    out.print(
        f"status:         {status}  (also: connector status -c {config or 'config.toml'})",
        soft_wrap=True,
    )
    if password_file is not None:
        out.print(
            "other commands (trace, check) log in to the sandbox with its password: "
            f"export {DEMO_PASSWORD_ENV}=$(cat {password_file})",
            highlight=False,
            soft_wrap=True,
        )
    out.print("press Ctrl-C to stop")
    timer = None
    if duration is not None:
        timer = threading.Timer(duration, lambda: os.kill(os.getpid(), signal.SIGTERM))
        timer.start()
    configure_logging(fmt=settings.logging.format, level=settings.logging.level)
    try:
        run_daemon(App(settings))
    finally:
        if timer is not None:  # stopped sooner (Ctrl-C): the process must not wait for it
            timer.cancel()
        stop.set()
        sandbox.terminate()
        sandbox.wait(timeout=10)


def _demo_password(settings: Settings) -> Path | None:
    """Make up the sandbox's password unless one is set, and keep it where other commands
    run beside the demo (`trace`, `check`) can read it: a file only its owner may read,
    beside the state store. None when the password came from the environment."""
    if os.environ.get(DEMO_PASSWORD_ENV):
        return None
    password = secrets.token_urlsafe(18)
    path = _sqlite_path(settings.state.url, "state.url").parent / "sandbox-password"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(password + "\n")
    os.environ[DEMO_PASSWORD_ENV] = password
    return path


def _start_sandbox(settings: Settings, db: Path) -> subprocess.Popen[bytes]:
    url = urlsplit(settings.portal.base_url)
    cmd = [
        sys.executable,
        "-m",
        "connector",
        "sandbox",
        "--port",
        str(url.port or 80),
        "--db",
        str(db),
        "--username",
        settings.portal.username,
        "--dstcode",
        settings.portal.dstcode,
        "--password-env",
        DEMO_PASSWORD_ENV,
        "--auth-path",
        settings.portal.auth_path,
        "--integration-path",
        settings.portal.integration_path,
        "--share-path",
        settings.portal.share_path,
    ]
    crosswalks = _crosswalks(settings)
    for option, name in (
        ("--procedures-csv", "procedures.csv"),
        ("--agencies-csv", "agencies.csv"),
    ):
        if (crosswalks / name).exists():
            cmd += [option, str(crosswalks / name)]
    proc = subprocess.Popen(cmd)
    _wait_port(url.hostname or "127.0.0.1", url.port or 80, proc)
    return proc


def _wait_port(host: str, port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err.print(f"[red]error:[/red] the sandbox portal exited (code {proc.returncode})")
            raise typer.Exit(1)
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    err.print(f"[red]error:[/red] the sandbox portal did not listen on {host}:{port}")
    raise typer.Exit(1)


def sandbox_command(
    port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1.")] = 8780,
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    db: Annotated[
        str, typer.Option(help="SQLite file holding what the sandbox received.")
    ] = "sandbox.db",
    username: Annotated[str, typer.Option(help="Login the sandbox accepts.")] = "demo",
    password_env: Annotated[
        str, typer.Option(help="Environment variable with the password.")
    ] = DEMO_PASSWORD_ENV,
    dstcode: Annotated[str, typer.Option(help="dstcode header the sandbox requires.")] = "DEMO-DST",
    auth_path: Annotated[str, typer.Option()] = "/auth",
    integration_path: Annotated[str, typer.Option()] = "/integration",
    share_path: Annotated[str, typer.Option()] = "/share",
    session_ttl: Annotated[float, typer.Option(help="Session lifetime in seconds.")] = 1800.0,
    session_expired_http: Annotated[
        bool, typer.Option(help="Answer HTTP 401 (not code -1) to an expired session.")
    ] = False,
    per_item: Annotated[bool, typer.Option(help="Per-item results in replies.")] = True,
    fault_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of calls that get a fault.")
    ] = 0.0,
    faults: Annotated[
        str,
        typer.Option(
            help="Which faults, comma-separated, from: 503, 500, stall, reset, 429, slow."
        ),
    ] = "503",
    stall_seconds: Annotated[
        float, typer.Option(help="How long a 'stall' fault holds a call.")
    ] = 30.0,
    slow_seconds: Annotated[
        float, typer.Option(help="How long a 'slow' fault trickles a reply.")
    ] = 2.0,
    reset_after_apply: Annotated[
        bool, typer.Option(help="A 'reset' fault applies the call before breaking the reply.")
    ] = True,
    retry_after: Annotated[float, typer.Option(help="Retry-After on 429, seconds.")] = 1.0,
    seed: Annotated[int, typer.Option()] = 0,
    procedures_csv: Annotated[str | None, typer.Option(help="Procedure catalogue CSV.")] = None,
    agencies_csv: Annotated[str | None, typer.Option(help="Agency catalogue CSV.")] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="Serve HTTPS with this certificate (PEM); needs --tls-key.")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option(help="The private key (PEM) of --tls-cert.")
    ] = None,
) -> None:
    """Run the sandbox portal: a strict local implementation of the REST profile."""
    from connector.sandbox.config import SandboxConfig
    from connector.sandbox.server import Tls, serve

    password = os.environ.get(password_env)
    if not password:
        err.print(f"[red]error:[/red] set the sandbox password in ${password_env}")
        raise typer.Exit(2)
    if (tls_cert is None) != (tls_key is None):
        err.print("[red]error:[/red] --tls-cert and --tls-key go together")
        raise typer.Exit(2)
    try:
        tls = Tls(cert=tls_cert, key=tls_key) if tls_cert and tls_key else None
        config = SandboxConfig(
            host=host,
            port=port,
            db_path=db,
            username=username,
            password=password,
            dstcode=dstcode,
            auth_path=auth_path,
            integration_path=integration_path,
            share_path=share_path,
            session_ttl=session_ttl,
            session_expired_http=session_expired_http,
            per_item=per_item,
            fault_rate=fault_rate,
            faults=tuple(f.strip() for f in faults.split(",") if f.strip()),
            stall_seconds=stall_seconds,
            slow_seconds=slow_seconds,
            reset_after_apply=reset_after_apply,
            retry_after=retry_after,
            seed=seed,
            procedures_csv=procedures_csv,
            agencies_csv=agencies_csv,
        )
    except ValueError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from exc
    serve(config, tls=tls)
