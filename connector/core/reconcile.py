"""Compare what the portal holds with what the connector knows it sent. Pure.

A first version: it looks at the header fields the on-time indicators depend on and at the
number of progress steps; the full QĐ 766 reconciliation comes later behind the same call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from connector.core.records import PortalView

#: Header fields whose drift changes how the portal scores a dossier.
COMPARED_FIELDS = ("TrangThaiHoSo", "NgayTiepNhan", "NgayHenTra", "NgayKetThucXuLy")


class Drift(StrEnum):
    """How the portal's view differs from local truth."""

    MISSING = "missing"  # acknowledged, yet the portal does not hold the dossier
    FIELDS = "fields"  # a compared header field differs
    FEWER_STEPS = "fewer_steps"  # the portal holds fewer steps than were acknowledged


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    dossier: str
    drift: Drift
    detail: str


def compare(
    dossier: str,
    view: PortalView | None,
    sent: Mapping[str, Any] | None,
    acked_steps: int,
) -> list[Finding]:
    """Findings for one dossier; an empty list means the portal agrees."""
    if view is None:
        return [Finding(dossier=dossier, drift=Drift.MISSING, detail="not held by the portal")]
    findings = []
    if sent is not None:
        differing = [f for f in COMPARED_FIELDS if _text(view.fields.get(f)) != _text(sent.get(f))]
        if differing:
            detail = ", ".join(
                f"{f}: portal {_text(view.fields.get(f))!r} vs sent {_text(sent.get(f))!r}"
                for f in differing
            )
            findings.append(Finding(dossier=dossier, drift=Drift.FIELDS, detail=detail))
    if view.step_count < acked_steps:
        detail = f"portal holds {view.step_count} steps, {acked_steps} acknowledged"
        findings.append(Finding(dossier=dossier, drift=Drift.FEWER_STEPS, detail=detail))
    return findings


def _text(value: Any) -> str:
    return "" if value is None else str(value)
