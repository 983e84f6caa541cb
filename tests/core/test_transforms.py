"""The named field transforms, one table per transform."""

from __future__ import annotations

import unicodedata
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connector.core.transforms import (
    VN_TZ,
    Transform,
    TransformProblem,
    UnknownTransform,
    is_blank,
    resolve,
)

CODES = {"status": {"received": "2", "1": "1"}}
CROSSWALKS = {"procedures": {"HN-HT-01": "1.001193"}}
NFD_NAME = unicodedata.normalize("NFD", "Nguyễn Thị Hồng")


def build(name: str, zone: str = "Asia/Ho_Chi_Minh") -> Transform:
    return resolve(name, timezone=ZoneInfo(zone), codes=CODES, crosswalks=CROSSWALKS)


@pytest.mark.parametrize(
    ("name", "given", "expected"),
    [
        ("str", 1, "1"),
        ("str", 1.0, "1"),
        ("str", 1.5, "1.5"),
        ("str", True, "1"),
        ("str", False, "0"),
        ("str", Decimal("2.00"), "2"),
        ("str", Decimal("2.50"), "2.50"),
        ("str", "x", "x"),
        ("str", None, None),
        ("strip", "  a b \t", "a b"),
        ("strip", 5, 5),
        ("strip", None, None),
        ("nfc", NFD_NAME, "Nguyễn Thị Hồng"),
        ("nfc", None, None),
        ("upper", "g09-ht", "G09-HT"),
        ("upper", None, None),
        ("lower", "ONLINE", "online"),
        ("lower", None, None),
        ("default:0", None, "0"),
        ("default:0", "", "0"),
        ("default:0", "1", "1"),
        ("default:0", "   ", "0"),
        ("default:0", "\u00a0", "0"),
        ("default:0", " 1 ", " 1 "),
        ("code:status", "received", "2"),
        ("code:status", 1, "1"),
        ("code:status", None, None),
        ("code:status", "", None),
        ("code:status", "   ", None),
        ("code:status", "\t", None),
        ("crosswalk:procedures", "HN-HT-01", "1.001193"),
        ("crosswalk:procedures", None, None),
        ("crosswalk:procedures", "\u3000", None),
    ],
)
def test_simple_transforms(name: str, given: Any, expected: Any) -> None:
    """Each transform turns its input into the portal's form and passes None through."""
    assert build(name)(given) == expected


def test_nfc_output_is_composed() -> None:
    """Decomposed Vietnamese comes out NFC, not merely equal-looking."""
    out = build("nfc")(NFD_NAME)
    assert out != NFD_NAME
    assert unicodedata.is_normalized("NFC", out)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2026-11-26T17:30:00Z", "20261127003000"),  # UTC evening is the next day in Vietnam
        ("2026-11-27 00:00:00", "20261127000000"),  # naive midnight stays midnight
        ("2026-11-26 23:59:59", "20261126235959"),
        ("2026-11-27T00:00:00.123456", "20261127000000"),
        ("2026-11-27T07:00:00+07:00", "20261127070000"),
        ("2026-11-26T20:00:00-05:00", "20261127080000"),
        ("2026-11-27", "20261127000000"),
        (" 2026-11-27 08:15:00 ", "20261127081500"),
        (datetime(2026, 11, 27, 0, 0), "20261127000000"),
        (datetime(2026, 11, 26, 17, 0, tzinfo=UTC), "20261127000000"),
        (datetime(2026, 11, 27, 9, 0, tzinfo=timezone(timedelta(hours=9))), "20261127070000"),
        (date(2026, 11, 27), "20261127000000"),
        (None, None),
        ("", None),
        ("   ", None),
        (" " * 100, None),  # a wide CHAR column holding nothing
    ],
)
def test_vn_datetime(given: Any, expected: str | None) -> None:
    """Naive times are Vietnam time; aware times are converted to it."""
    assert build("vn_datetime")(given) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2026-11-26 17:30:00", "20261127003000"),
        ("2026-11-26T17:30:00+07:00", "20261126173000"),
        (datetime(2026, 11, 26, 16, 59, 59), "20261126235959"),
    ],
)
def test_utc_datetime(given: Any, expected: str) -> None:
    """utc_datetime reads naive times as UTC and still writes Vietnam time."""
    assert build("utc_datetime")(given) == expected


def test_vn_datetime_with_utc_mapping_zone() -> None:
    """A mapping whose timezone is UTC reads naive source times as UTC."""
    assert build("vn_datetime", zone="UTC")("2026-11-26 17:30:00") == "20261127003000"


def test_vietnam_zone_is_the_shared_instance() -> None:
    """The fast path for Vietnam-time sources relies on ZoneInfo's instance cache."""
    assert ZoneInfo("Asia/Ho_Chi_Minh") is VN_TZ


@pytest.mark.parametrize(
    ("name", "given", "reason"),
    [
        ("vn_datetime", "27/11/2026", "not a recognised date or time"),
        ("vn_datetime", "2026-02-30 10:00:00", "not a recognised date or time"),
        ("vn_datetime", 20261127, "not a date or time (int)"),
        ("utc_datetime", "tomorrow", "not a recognised date or time"),
        ("code:status", "lost", "no code in table status for value 'lost'"),
        ("code:status", 7, "no code in table status for value '7'"),
        (
            "crosswalk:procedures",
            "ZZ-99",
            "no crosswalk entry in procedures for local code 'ZZ-99'",
        ),
    ],
)
def test_bad_values_raise_a_problem(name: str, given: Any, reason: str) -> None:
    """A value a transform cannot handle is a TransformProblem carrying the raw value."""
    with pytest.raises(TransformProblem) as caught:
        build(name)(given)
    assert caught.value.reason == reason
    assert caught.value.value == given


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("frobnicate", "unknown transform 'frobnicate'"),
        ("code:nope", "unknown code table 'nope'"),
        ("crosswalk:nope", "unknown crosswalk 'nope'"),
        ("vn_date", "unknown transform 'vn_date'"),
    ],
)
def test_unknown_names_are_refused(name: str, words: str) -> None:
    """A via entry naming nothing known is refused when the mapping is compiled."""
    with pytest.raises(UnknownTransform, match=words):
        build(name)


#: Python's whitespace (`str.isspace`, what `strip` removes), the no-break spaces included.
WHITESPACE = " \t\n\r\x0b\x0c\x1c\x1f\x85\u00a0\u1680\u2000\u200a\u2028\u2029\u202f\u205f\u3000"


@pytest.mark.parametrize(
    ("value", "blank"),
    [
        ("", True),
        ("   ", True),
        ("\t", True),
        (" \r\n ", True),
        ("\u00a0", True),  # no-break space: blank, as `strip` removes it
        ("\u00a0 \u3000\u2003", True),
        (WHITESPACE, True),
        ("\u200b", False),  # zero-width space: a format character, not whitespace
        ("\ufeff", False),  # BOM
        (" x ", False),
        (" \u200b ", False),
        (None, False),
        (0, False),
        (b"  ", False),
    ],
)
def test_is_blank_is_what_strip_empties(value: Any, blank: bool) -> None:
    """Blank is text that `strip` leaves empty; nothing that is not text is blank."""
    assert is_blank(value) is blank
    if isinstance(value, str):
        assert (build("strip")(value) == "") is blank


def test_blank_text_has_no_code_even_when_a_table_lists_it() -> None:
    """Blank text is missing, so a lookup gives None for it, whatever its table lists."""
    table = resolve(
        "code:t", timezone=VN_TZ, codes={"t": {" ": "1", "": "0", "x": "2"}}, crosswalks={}
    )
    assert (table(" "), table(""), table("\t"), table("x")) == (None, None, None, "2")
