"""Reconciliation findings for one dossier."""

from __future__ import annotations

from connector.core.reconcile import Drift, compare
from connector.core.records import PortalView

SENT = {
    "MaHoSo": "X",
    "TrangThaiHoSo": "4",
    "NgayTiepNhan": "20261120080000",
    "NgayHenTra": "20261130170000",
}


def test_agreement_has_no_findings() -> None:
    """A portal view matching what was sent, with as many steps, gives no finding."""
    view = PortalView(ma_ho_so="X", fields=dict(SENT), step_count=3)
    assert compare("X", view, SENT, acked_steps=3) == []


def test_missing_dossier() -> None:
    """An acknowledged dossier the portal does not hold is reported missing."""
    assert [f.drift for f in compare("X", None, SENT, acked_steps=0)] == [Drift.MISSING]


def test_status_drift_names_the_field() -> None:
    """A differing status is reported with both values."""
    view = PortalView(ma_ho_so="X", fields={**SENT, "TrangThaiHoSo": "2"}, step_count=3)
    (finding,) = compare("X", view, SENT, acked_steps=3)
    assert finding.drift == Drift.FIELDS
    assert "TrangThaiHoSo: portal '2' vs sent '4'" in finding.detail


def test_fewer_steps() -> None:
    """A portal holding fewer steps than were acknowledged is drift."""
    view = PortalView(ma_ho_so="X", fields=dict(SENT), step_count=1)
    assert [f.drift for f in compare("X", view, SENT, acked_steps=3)] == [Drift.FEWER_STEPS]
