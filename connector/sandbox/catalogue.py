"""The catalogues the sandbox serves on the share path, read from the operators' CSV files.

The files are the mapping's own crosswalks (procedures: national_code, name, domain_code,
domain_name; agencies: qcvn_code, name, level), so a trial run validates `MaTTHC` against
exactly the codes the mapping can produce.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_PROCEDURE_COLUMNS = ("national_code", "name", "domain_code", "domain_name")
_AGENCY_COLUMNS = ("qcvn_code", "name", "level")


@dataclass(frozen=True, slots=True, kw_only=True)
class Catalogues:
    """The three catalogues in reply form; `procedure_codes` is None when none was loaded."""

    procedures: tuple[dict[str, str], ...] = ()
    agencies: tuple[dict[str, str], ...] = ()
    domains: tuple[dict[str, str], ...] = ()
    procedure_codes: frozenset[str] | None = None


def load_catalogues(procedures_csv: str | None, agencies_csv: str | None) -> Catalogues:
    """Read the optional catalogue files; a missing column is an error naming the file."""
    procedures = _read(procedures_csv, _PROCEDURE_COLUMNS) if procedures_csv else None
    agencies = _read(agencies_csv, _AGENCY_COLUMNS) if agencies_csv else []
    rows = procedures or []
    return Catalogues(
        procedures=tuple(
            {"MATTHC": r["national_code"], "TENTTHC": r["name"]}
            for r in _distinct(rows, "national_code")
        ),
        agencies=tuple(
            {"MADONVI": r["qcvn_code"], "TENDONVI": r["name"], "CAPDONVI": r["level"]}
            for r in _distinct(agencies, "qcvn_code")
        ),
        domains=tuple(
            {"MALINHVUC": r["domain_code"], "TENLINHVUC": r["domain_name"]}
            for r in _distinct(rows, "domain_code")
        ),
        procedure_codes=None if procedures is None else _codes(rows),
    )


def _codes(rows: Iterable[dict[str, str]]) -> frozenset[str]:
    return frozenset(r["national_code"] for r in rows if r["national_code"])


def _read(path: str, columns: tuple[str, ...]) -> list[dict[str, str]]:
    with Path(path).open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in columns if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
        return [{c: (row[c] or "").strip() for c in columns} for row in reader]


def _distinct(rows: Iterable[dict[str, str]], key: str) -> list[dict[str, str]]:
    """Rows with a non-empty, first-seen value of `key` (a crosswalk repeats national codes)."""
    seen: set[str] = set()
    out = []
    for row in rows:
        if row[key] and row[key] not in seen:
            seen.add(row[key])
            out.append(row)
    return out
