"""The per-dossier pattern, as public one-stop systems push today: the benchmark's baseline.

For every dossier, sequentially: log in, look its procedure up (`LayThuTuc`), log in, send
the dossier alone (`DongBoHoSoMC`), then for every step log in and send the step alone
(`CapNhatTienDoHoSoMC`). Every request opens a new connection, with the standard library's
`http.client` (plain HTTP/1.1), so the baseline pays no client set-up beyond the socket.

The payloads are the connector's own (the same mapping), built before the clock starts:
only the sending is timed.
"""

from __future__ import annotations

import http.client
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.procs import DSTCODE, USERNAME, Processes
from bench.synth import MAPPING, Cloner, Stamper, populate
from connector.core.records import Payload
from connector.mapfiles import load_mapping
from connector.ports import Selection
from connector.sources.sql import SqlSource

MADONVI = "000.00.01.H26"
_ALL = Selection()


@dataclass(frozen=True, slots=True, kw_only=True)
class BaselineResult:
    dossiers: int
    steps: int
    requests: int
    seconds: float

    @property
    def dossiers_per_s(self) -> float:
        return self.dossiers / self.seconds if self.seconds > 0 else 0.0

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else 0.0


class PerDossierClient:
    """One request per call, one connection per request, one login per call."""

    def __init__(self, port: int, password: str) -> None:
        self._port = port
        self._login = orjson.dumps({"username": USERNAME, "password": password})
        self.requests = 0

    def _post(self, path: str, body: bytes) -> dict[str, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self._port, timeout=30)
        try:
            conn.request(
                "POST",
                path,
                body=body,
                headers={"Content-Type": "application/json", "dstcode": DSTCODE},
            )
            reply = conn.getresponse()
            data = reply.read()
        finally:
            conn.close()
        self.requests += 1
        if reply.status != 200:
            raise RuntimeError(f"{path}: HTTP {reply.status}")
        parsed: dict[str, Any] = orjson.loads(data)
        return parsed

    def _call(self, service: str, extra: dict[str, Any]) -> dict[str, Any]:
        session = self._post("/auth", self._login)["session"]
        body = {"session": session, "madonvi": MADONVI, "service": service, **extra}
        reply = self._post("/integration", orjson.dumps(body))
        if str(reply.get("error_code")) != "0":
            raise RuntimeError(f"{service}: {reply.get('error_code')} {reply.get('message')}")
        return reply

    def send(self, header: Payload, steps: list[Payload]) -> None:
        self._call("LayThuTuc", {"maTTHC": header["MaTTHC"]})
        self._call("DongBoHoSoMC", {"isUpdating": "False", "data": [header]})
        for step in steps:
            self._call("CapNhatTienDoHoSoMC", {"data": [step]})


def prepare(path: Path, cloner: Cloner, count: int) -> list[tuple[Payload, list[Payload]]]:
    """`count` new dossiers mapped by the connector's mapping; invalid ones left out."""
    stamper = Stamper(datetime.now() - timedelta(days=90))
    populate(path, cloner, count, stamper, path.parent / "template.db")
    mapping = load_mapping(MAPPING)
    source = SqlSource(f"sqlite:///{path}", mapping.streams)
    try:
        headers: dict[str, Payload] = {}
        for page in source.select(mapping.dossier_stream, _ALL, 1000):
            for record in page:
                mapped = mapping.map(mapping.dossier_stream, record)
                if mapped.ok:
                    headers[mapped.dossier] = mapped.payload
        steps: dict[str, list[tuple[str, Payload]]] = {}
        for page in source.select(mapping.step_stream, _ALL, 5000):
            for record in page:
                mapped = mapping.map(mapping.step_stream, record)
                if mapped.ok and mapped.dossier in headers:
                    steps.setdefault(mapped.dossier, []).append((mapped.event_time, mapped.payload))
    finally:
        source.close()
    return [
        (header, [p for _, p in sorted(steps.get(code, []), key=lambda s: s[0])])
        for code, header in headers.items()
    ]


def run_baseline(procs: Processes, cloner: Cloner, count: int) -> BaselineResult:
    """Send `count` fresh dossiers the per-dossier way to the running sandbox."""
    work = prepare(procs.workdir / "baseline-source.db", cloner, count)
    client = PerDossierClient(procs.sandbox_port, procs.password)
    started = time.perf_counter()
    for header, steps in work:
        client.send(header, steps)
    seconds = time.perf_counter() - started
    return BaselineResult(
        dossiers=len(work),
        steps=sum(len(s) for _, s in work),
        requests=client.requests,
        seconds=seconds,
    )
