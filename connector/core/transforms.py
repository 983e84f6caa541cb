"""The named field transforms a mapping file may list under `via`.

Each name is resolved once, when the mapping is compiled, into a plain one-argument
function; per record the mapping only calls them. A transform that cannot handle its input
raises `TransformProblem` (a value, not a crash): the mapping turns it into a `Problem` for
the field, so one bad record never stops the others.

Every transform passes None through as None, except `default:`, which exists to fill it.

Blank text (`is_blank`: nothing but whitespace) is as missing as None: a padded CHAR column
holding only spaces has no value. The date transforms and the lookups turn it into None, and
`default:` fills it; the other transforms keep it, and the mapping leaves it out.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import date, datetime, tzinfo
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

#: One compiled transform: the value in, the value out.
Transform = Callable[[Any], Any]

#: The portal's time zone: every date it receives is Vietnam wall time.
VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
UTC = ZoneInfo("UTC")


#: How much of an offending text value a problem quotes (a 100 KB value is not repeated).
SHOWN_CHARS = 60


class TransformProblem(ValueError):
    """A value the transform cannot turn into something the portal accepts.

    `value` is for the reason only: a long text is kept to its first SHOWN_CHARS characters.
    """

    def __init__(self, reason: str, value: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.value = _shortened(value)


def _shortened(value: Any) -> Any:
    if isinstance(value, str) and len(value) > SHOWN_CHARS:
        return value[:SHOWN_CHARS] + "…"
    return value


class UnknownTransform(LookupError):
    """A `via` entry names no transform, code table or crosswalk; the mapping names the field."""


def is_blank(value: Any) -> bool:
    """Whether `value` is text with nothing in it but whitespace, `""` included.

    Whitespace is Python's (`str.isspace`), the very characters `strip` removes: ASCII
    space, tab, CR, LF, VT and FF, the separators U+001C-U+001F and U+0085, and the Unicode
    spaces, among them the no-break space U+00A0, U+2000-U+200A, U+2028, U+2029 and the
    ideographic space U+3000. Format characters such as the zero-width space U+200B or the
    BOM U+FEFF are not whitespace: text holding them is not blank.
    """
    return isinstance(value, str) and (not value or value.isspace())


def to_str(value: Any) -> Any:
    """`str`: numbers and flags as the portal writes them ("1", not "1.0" or "True").

    Only text, numbers and flags are written out; anything else (bytes, lists, dates, NaN)
    is a problem rather than its Python spelling ("b'...'", "[1]", "nan").
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        if not (value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)):
            raise TransformProblem("not a finite number", value)
        return str(int(value)) if value == int(value) else str(value)
    raise TransformProblem(f"not text or a number ({type(value).__name__})", value)


def strip(value: Any) -> Any:
    """`strip`: surrounding blanks are never meaningful in the portal's fields."""
    return value.strip() if isinstance(value, str) else value


def nfc(value: Any) -> Any:
    """`nfc`: some sources store Vietnamese decomposed; the portal wants composed (NFC)."""
    return unicodedata.normalize("NFC", value) if isinstance(value, str) else value


def upper(value: Any) -> Any:
    """`upper`: for sources that store codes in lower case."""
    return value.upper() if isinstance(value, str) else value


def lower(value: Any) -> Any:
    """`lower`: for sources that store codes in upper case."""
    return value.lower() if isinstance(value, str) else value


def _format(moment: datetime) -> str:
    # One %-format call costs about half of an f-string with six format specs.
    return "%04d%02d%02d%02d%02d%02d" % (  # noqa: UP031
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
    )


#: The plain wall time most SQL sources return ("2026-11-27 08:00:00"): its digits already
#: are the portal's, in order. Hours stop at 23 so no parser leniency can move the day.
_WALL_TIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ]([01]\d|2[0-3]):(\d\d):(\d\d)", re.ASCII)


def _wall_time(wall: re.Match[str]) -> str:
    """'yyyyMMddHHmmss' of a `_WALL_TIME` text in the portal's zone, without building it from
    a datetime; the parser still decides whether the calendar time is real."""
    try:
        datetime.fromisoformat(wall.string)
    except ValueError:
        raise TransformProblem("not a recognised date or time", wall.string) from None
    return "".join(wall.groups())


#: How many texts one date transform remembers the answer for. Sources repeat times (every
#: version of a dossier header carries the same dates; a step often starts when the one
#: before it ended), and a remembered answer costs one lookup instead of a parse.
_REMEMBERED = 4096


#: No ISO date or time is longer ("2026-11-27T08:00:00.000000+07:00" with spaces to spare).
_LONGEST_TIME = 64


def _parse(value: Any) -> datetime | None:
    """A datetime from what sources hold (datetime, date, ISO text); None if blank."""
    if not isinstance(value, str):
        if isinstance(value, datetime):
            return value
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day)
        raise TransformProblem(f"not a date or time ({type(value).__name__})", value)
    if len(value) > _LONGEST_TIME:
        if value.isspace():  # a wide padded column holding nothing
            return None
        raise TransformProblem("not a recognised date or time", value)
    text = value.strip()
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise TransformProblem("not a recognised date or time", value) from None


def portal_datetime(naive_zone: tzinfo) -> Transform:
    """`vn_datetime` / `utc_datetime`: 'yyyyMMddHHmmss' in Vietnam time.

    A value without a zone is read in `naive_zone`; one with a zone (including 'Z') is
    converted. When the naive zone already is Vietnam time no conversion is needed.
    Answers for text are remembered; a problem is not, and is raised afresh each time.
    """
    same_zone = naive_zone is VN_TZ
    remembered: dict[str, str] = {}

    def convert(value: Any) -> Any:
        if type(value) is not str:
            return None if value is None else read(value)
        done = remembered.get(value)
        if done is None:
            done = read(value)
            if done is None:  # blank text
                return None
            if len(remembered) >= _REMEMBERED:
                remembered.clear()
            remembered[value] = done
        return done

    def read(value: Any) -> str | None:
        if same_zone and type(value) is str:
            wall = _WALL_TIME.fullmatch(value)
            if wall is not None:
                return _wall_time(wall)
        moment = _parse(value)
        if moment is None:
            return None
        if moment.tzinfo is None:
            if same_zone:
                return _format(moment)
            moment = moment.replace(tzinfo=naive_zone)
        try:
            return _format(moment.astimezone(VN_TZ))
        except (OverflowError, ValueError):  # e.g. 9999-12-31T23:00Z is past year 9999 here
            raise TransformProblem("outside the years the portal can be sent", value) from None

    return convert


def lookup(table: Mapping[str, str], describe: str) -> Transform:
    """`code:` / `crosswalk:`: a local value to the portal's code; unknown is a problem.

    Numbers are looked up by their `str` form, because table keys are always text. A missing
    value (None, or blank text) has no code: it stays missing, whatever the table holds.
    """
    if any(is_blank(local) for local in table):  # such an entry could never be used
        table = {local: code for local, code in table.items() if not is_blank(local)}

    def translate(value: Any) -> Any:
        if value is None or value == "":
            return None
        key = value if isinstance(value, str) else to_str(value)
        found = table.get(key)
        if found is None:
            if key.isspace():  # blank: missing, not an unknown code (no table key is blank)
                return None
            raise TransformProblem(f"{describe} {_shortened(key)!r}", value)
        return found

    return translate


def default(literal: str) -> Transform:
    """`default:LITERAL`: what to send when the source has nothing (None or blank text)."""

    def fill(value: Any) -> Any:
        return literal if value is None or value == "" or is_blank(value) else value

    return fill


_SIMPLE: dict[str, Transform] = {
    "str": to_str,
    "strip": strip,
    "nfc": nfc,
    "upper": upper,
    "lower": lower,
}

#: The transforms whose output is always None or a real time in the portal's 'yyyyMMddHHmmss'
#: form (it is formatted from a datetime, or taken digit for digit from text the datetime
#: parser accepted), so the time rule has nothing left to refuse in it.
PORTAL_TIME = frozenset({"vn_datetime", "utc_datetime"})

#: The names a mapping may use, for error messages and the format reference.
NAMES = (*_SIMPLE, "vn_datetime", "utc_datetime", "code:TABLE", "crosswalk:NAME", "default:LITERAL")


def resolve(
    name: str,
    *,
    timezone: tzinfo,
    codes: Mapping[str, Mapping[str, str]],
    crosswalks: Mapping[str, Mapping[str, str]],
) -> Transform:
    """The function for one `via` entry; raises UnknownTransform naming what is missing."""
    if name in _SIMPLE:
        return _SIMPLE[name]
    if name == "vn_datetime":
        return portal_datetime(timezone)
    if name == "utc_datetime":
        return portal_datetime(UTC)
    prefix, sep, arg = name.partition(":")
    if sep and prefix == "default":
        return default(arg)
    if sep and prefix == "code":
        if arg not in codes:
            raise UnknownTransform(f"unknown code table {arg!r} in {name!r}")
        return lookup(codes[arg], f"no code in table {arg} for value")
    if sep and prefix == "crosswalk":
        if arg not in crosswalks:
            raise UnknownTransform(f"unknown crosswalk {arg!r} in {name!r}")
        return lookup(crosswalks[arg], f"no crosswalk entry in {arg} for local code")
    raise UnknownTransform(f"unknown transform {name!r} (known: {', '.join(NAMES)})")
