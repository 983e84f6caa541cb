"""A small demo local system whose every personal value is known, for leak searches.

Every personal column (applicant name, 12-digit ID number, 10-digit phone, e-mail, officer
names) holds a seeded value, and the free-text columns (summary, note, step content,
supplement content) quote them too. A few records are made invalid in ways whose problem
would show a personal value if reasons were not masked, and one procedure is left out of
the portal's catalogue so the portal rejects those dossiers.
"""

from __future__ import annotations

import csv
import random
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.harness import MAPPING

CROSSWALKS = MAPPING.parent / "demo"
#: The local procedure whose national code the portal's catalogue leaves out.
UNKNOWN_TO_PORTAL = "HN-HT-01"

# Applicants get rare family names, so masking cannot rely on recognising a name.
_RARE = ("Khổng", "Hà", "Lạc", "Ông", "Giáp", "Chử", "Âu")
_FAMILY = (*_RARE, "Âu Dương", "Nguyễn", "Trần", "Lê", "Phạm")
_MIDDLE = ("Thị", "Văn", "Hữu", "Ngọc", "Đức", "Thanh", "Bảo")
_GIVEN = ("Ánh Tuyết", "Khải", "Phượng", "Hùng Cường", "Diệu Linh", "Trúc", "Nghĩa", "Yến")


@dataclass
class Seeded:
    """The seeded values, and which of them a log or status line must never contain."""

    names: set[str] = field(default_factory=set)
    ids: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    others: set[str] = field(default_factory=set)  # invalid values that are personal too

    def values(self) -> set[str]:
        return self.names | self.ids | self.phones | self.emails | self.others

    def found_in(self, text: str) -> list[str]:
        """The seeded values that occur in `text` (an empty list is the goal)."""
        return sorted(v for v in self.values() if v in text)


class _People:
    def __init__(self, rng: random.Random, seeded: Seeded) -> None:
        self._rng = rng
        self._seeded = seeded

    def name(self, *, rare: bool = False) -> str:
        r = self._rng
        name = f"{r.choice(_RARE if rare else _FAMILY)} {r.choice(_MIDDLE)} {r.choice(_GIVEN)}"
        self._seeded.names.add(name)
        return name

    def id_number(self) -> str:
        value = "0" + "".join(self._rng.choice("0123456789") for _ in range(11))
        self._seeded.ids.add(value)
        return value

    def phone(self) -> str:
        value = self._rng.choice(("09", "08", "03")) + "".join(
            self._rng.choice("0123456789") for _ in range(8)
        )
        self._seeded.phones.add(value)
        return value

    def email(self) -> str:
        value = f"cd{self._rng.randrange(10**6):06d}.{self._rng.choice('abcdefgh')}@thudan.vn"
        self._seeded.emails.add(value)
        return value


def seed_personal_data(db: Path, *, seed: int = 11) -> Seeded:
    """Overwrite every personal and free-text column of a demo database; plant bad records."""
    seeded = Seeded()
    people = _People(random.Random(seed), seeded)
    conn = sqlite3.connect(db)
    try:
        with conn:
            ids = [r[0] for r in conn.execute("SELECT id FROM dossiers ORDER BY id")]
            for dossier in ids:
                _dossier(conn, dossier, people)
            for (step,) in conn.execute("SELECT id FROM steps ORDER BY id").fetchall():
                name = people.name()
                conn.execute(
                    "UPDATE steps SET actor = ?, content = ? WHERE id = ?",
                    (name, f"Đã gọi {people.name()} số {people.phone()} về hồ sơ", step),
                )
            for (row,) in conn.execute("SELECT id FROM supplements").fetchall():
                conn.execute(
                    "UPDATE supplements SET requested_by = ?, received_by = ?, content = ?"
                    " WHERE id = ?",
                    (people.name(), people.name(), f"Bổ sung CCCD {people.id_number()}", row),
                )
            _plant_invalid(conn, ids, people, seeded)
    finally:
        conn.close()
    return seeded


def _dossier(conn: sqlite3.Connection, dossier: int, people: _People) -> None:
    name, id_number = people.name(rare=True), people.id_number()
    phone, email = people.phone(), people.email()
    summary = f"Đề nghị của {name}, CCCD {id_number}, điện thoại {phone}, thư {email}"
    note = f"Liên hệ {people.name()} qua {people.phone()} hoặc {people.email()}"
    conn.execute(
        "UPDATE dossiers SET applicant_name = ?, applicant_id = ?, phone = ?, email = ?,"
        " summary = ?, note = ? WHERE id = ?",
        (name, id_number, phone, email, summary, note, dossier),
    )


def _plant_invalid(
    conn: sqlite3.Connection, ids: list[int], people: _People, seeded: Seeded
) -> None:
    """Records whose problems would quote personal data if reasons were not masked."""
    bad_email = f"{people.name()} <{people.email()}"
    bad_phone = f"{people.phone()}x"
    code_name = f"Nguyễn {people.name()}"  # a name typed into a code column
    seeded.others |= {bad_email, bad_phone, code_name}
    long_note = f"{people.name()} " * 200
    changes = [
        ("summary", f"{people.name()}\r\nCCCD {people.id_number()}"),  # control characters
        ("email", bad_email),
        ("phone", bad_phone),
        ("note", long_note),  # longer than the portal's 2000 characters
        ("applicant_kind", code_name),
    ]
    for dossier, (column, value) in zip(ids[1::7], changes, strict=False):
        conn.execute(f"UPDATE dossiers SET {column} = ? WHERE id = ?", (value, dossier))
    step = conn.execute("SELECT min(id) FROM steps").fetchone()[0]
    content = f"Trả lời\t{people.name()} ({people.id_number()})"
    conn.execute("UPDATE steps SET content = ? WHERE id = ?", (content, step))


def portal_catalogue(folder: Path) -> Path:
    """The portal's procedure catalogue: the demo's, without UNKNOWN_TO_PORTAL's code."""
    with (CROSSWALKS / "procedures.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    target = folder / "portal-procedures.csv"
    with target.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(r for r in rows if r["local_code"] != UNKNOWN_TO_PORTAL)
    return target
