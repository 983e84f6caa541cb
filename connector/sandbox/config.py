"""The sandbox portal's settings: one frozen value object, validated when built.

Every behaviour the real portal may vary on (paths, session lifetime, per-item replies,
fault injection) is a field here, so a test or an operator can reproduce a given portal.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

#: The faults the sandbox can inject; see `connector.sandbox.faults`.
FAULT_KINDS = frozenset({"503", "500", "stall", "reset", "429", "slow"})


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxConfig:
    """How the sandbox portal listens, authenticates, validates and misbehaves."""

    host: str = "127.0.0.1"
    port: int = 8780
    db_path: str = "sandbox.db"
    username: str = "demo"
    password: str
    dstcode: str = "DEMO-DST"
    madonvi_pattern: str = r"^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}$"
    auth_path: str = "/auth"
    integration_path: str = "/integration"
    share_path: str = "/share"
    session_ttl: float = 1800.0
    session_expired_http: bool = False
    per_item: bool = True
    max_batch: int = 1000
    fault_rate: float = 0.0
    faults: tuple[str, ...] = ("503",)
    stall_seconds: float = 30.0
    slow_seconds: float = 2.0
    retry_after: float = 1.0
    reset_after_apply: bool = True
    seed: int = 0
    procedures_csv: str | None = None
    agencies_csv: str | None = None

    def __post_init__(self) -> None:
        _check_paths(self.auth_path, self.integration_path, self.share_path)
        check_faults(self.fault_rate, self.faults)
        re.compile(self.madonvi_pattern)
        if not self.password:
            raise ValueError("password must not be empty")
        if self.max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port out of range: {self.port}")
        for name in ("session_ttl", "stall_seconds", "slow_seconds", "retry_after"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")


def check_faults(fault_rate: float, faults: tuple[str, ...]) -> None:
    """Refuse a fault rate outside [0, 1] or a fault kind the sandbox cannot inject."""
    if not 0.0 <= fault_rate <= 1.0:
        raise ValueError(f"fault_rate must be within [0, 1], not {fault_rate!r}")
    unknown = set(faults) - FAULT_KINDS
    if unknown:
        raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {sorted(FAULT_KINDS)}")
    if fault_rate > 0 and not faults:
        raise ValueError("fault_rate > 0 needs at least one fault kind")


def _check_paths(auth_path: str, integration_path: str, share_path: str) -> None:
    # The integration and share paths may coincide (one endpoint serves every service).
    if auth_path in (integration_path, share_path):
        raise ValueError("auth_path must differ from the service paths")
    for path in (auth_path, integration_path, share_path):
        if not path.startswith("/") or path.startswith("/_sandbox"):
            raise ValueError(f"path must start with '/' and not with '/_sandbox': {path!r}")
