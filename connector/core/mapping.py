"""Compile a parsed mapping document into plain callables, once, at start.

The mapping file says how one local schema becomes the portal's messages. Compiling it
resolves every column name, transform, code table and crosswalk into closures, so mapping a
record is only a walk over (field, getter) pairs: no per-record reading of the spec. Every
mistake in the file is found here and raised as `MappingError` naming the file, the section
and the field; mistakes in the *data* never raise, they become `Problem`s.

Pure: takes already-parsed dicts (`connector.mapfiles` reads the TOML and CSV files).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connector.core import validation
from connector.core.masking import shown_value
from connector.core.records import Kind, Mapped, Payload, Problem, SourceRecord
from connector.core.transforms import (
    PORTAL_TIME,
    Transform,
    TransformProblem,
    UnknownTransform,
    is_blank,
    resolve,
)
from connector.errors import MappingError

Getter = Callable[[SourceRecord], Any]
#: A shape's mapping and validation in one pass: the payload of a valid record, else None.
_Fused = Callable[[SourceRecord], Payload | None]

_SECTIONS = frozenset({"mapping", "crosswalks", "codes", "catalogue", "streams", "dossier", "step"})
_FIELD_KEYS = frozenset({"from", "via", "required", "const"})
_DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"


def _never_fused(record: SourceRecord) -> Payload | None:
    """A shape not (yet) fused sends every record down the field-by-field path."""
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Field:
    """One portal field: how to get its value from a source record."""

    name: str
    column: str  # the source column, or "" for a constant
    get: Getter
    required: bool
    via: tuple[Transform, ...] = ()  # what `get` applies to the column, in order
    literal: str | None = None  # the constant, when the field is one
    makes_time: bool = False  # the last of `via` always yields a real portal time
    #: `get` never yields blank text other than "" (so the fused code need not test for it)
    blank_free: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class _List:
    """One header list, filled from a child stream attached to the record."""

    name: str
    source: str
    fields: tuple[_Field, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Shape:
    """How one stream's records become one kind of portal message."""

    kind: Kind
    stream: str
    key_column: str
    fields: tuple[_Field, ...]
    lists: tuple[_List, ...] = ()
    fused: _Fused = _never_fused
    #: For steps: the column holding the key of the step's dossier record (`dossier_record`)
    dossier_column: str = ""

    def build(self, record: SourceRecord) -> tuple[Payload, list[Problem]]:
        payload: Payload = {}
        problems: list[Problem] = []
        _fill(self.fields, record, payload, problems, "")
        for spec in self.lists:
            items = _fill_list(spec, record.get(spec.source), problems)
            if items:
                payload[spec.name] = items
        return payload, problems


def _fill(
    fields: tuple[_Field, ...],
    record: SourceRecord,
    payload: Payload,
    problems: list[Problem],
    prefix: str,
) -> None:
    """Put each field's value in `payload`; a missing value (None, or blank text: `""` or
    whitespace only, see `is_blank`) is left out, never sent as `""` or as blanks."""
    for field in fields:
        try:
            value = field.get(record)
        except TransformProblem as exc:
            raw = str(exc.value)
            shown = shown_value(field.name, raw)
            # A transform's reason may quote the value: it must not show more than `shown`.
            said = exc.reason.replace(raw, shown) if raw and shown != raw else exc.reason
            reason = f"{said} (column {field.column})"
            problems.append(Problem(field=prefix + field.name, reason=reason, value=shown))
            continue
        if value is None or value == "" or is_blank(value):
            if field.required:
                reason = f"required by the mapping but empty (column {field.column})"
                problems.append(Problem(field=prefix + field.name, reason=reason))
            continue
        if type(value) is not str:
            # Kept out of the payload: every portal field is text, and a dead letter's
            # payload must still be storable JSON (bytes, big ints and dict keys are not).
            wrong = f"must be a string, got {type(value).__name__} (column {field.column})"
            problems.append(validation.shown_problem(prefix + field.name, wrong, value))
            continue
        payload[field.name] = value


def _fill_list(spec: _List, children: Any, problems: list[Problem]) -> list[Payload]:
    if not children:
        return []
    if not isinstance(children, list | tuple):
        kind = type(children).__name__
        reason = f"child stream {spec.source} must be a list of records, got {kind}"
        problems.append(Problem(field=spec.name, reason=reason))
        return []
    items: list[Payload] = []
    for index, child in enumerate(children):
        if not isinstance(child, Mapping):
            reason = f"a record of child stream {spec.source} must be a table of columns"
            problems.append(Problem(field=f"{spec.name}[{index}]", reason=reason))
            continue
        item: Payload = {}
        _fill(spec.fields, child, item, problems, f"{spec.name}[{index}].")
        if item:
            items.append(item)
    return items


@dataclass(frozen=True, slots=True, kw_only=True)
class CompiledMapping:
    """A mapping ready to use: `map` turns one source record into a final verdict."""

    name: str
    streams: Mapping[str, Mapping[str, Any]]
    dossier_stream: str
    step_stream: str
    catalogue: validation.Catalogue
    header: _Shape
    step: _Shape
    timezone: str  # `[mapping] timezone`: the zone of the source's times without one

    def map(self, stream: str, record: SourceRecord) -> Mapped:
        """Payload plus every mapping and validation problem; raises only for a wrong stream."""
        if stream == self.dossier_stream:
            shape = self.header
        elif stream == self.step_stream:
            shape = self.step
        else:
            raise ValueError(f"stream {stream!r} is mapped by neither [dossier] nor [step]")
        source_ref = f"{stream}:{record.get(shape.key_column)}"
        dossier_ref, orphan = self._dossier_record(shape, record)
        valid = shape.fused(record)
        if valid is not None and orphan is None:
            return _verdict(shape, source_ref, valid, [], (), dossier_ref)
        # Something is wrong: the field-by-field path below finds every reason.
        payload, problems = shape.build(record)
        if shape.kind is Kind.HEADER:
            checked = validation.check_header(payload, self.catalogue)
        else:
            checked = validation.check_step(payload)
        mapped = _verdict(shape, source_ref, payload, problems, checked, dossier_ref)
        if orphan is None:
            return mapped
        return replace(mapped, problems=(*mapped.problems, orphan))

    def _dossier_record(self, shape: _Shape, record: SourceRecord) -> tuple[str, Problem | None]:
        """The source reference of a step's dossier record, when the mapping names its column.

        It lets the ingest tell a step of the record that owns a MaHoSo from a step of
        another local record carrying the same number (see `store.ingest`).
        """
        column = shape.dossier_column
        if not column:
            return "", None
        value = record.get(column)
        if value is None or value == "":
            reason = f"the step's dossier record is not known: column {column} is empty"
            return "", Problem(field="MaHoSo", reason=reason)
        return f"{self.dossier_stream}:{value}", None


def _verdict(
    shape: _Shape,
    source_ref: str,
    payload: Payload,
    problems: list[Problem],
    checked: tuple[Problem, ...],
    dossier_ref: str,
) -> Mapped:
    """The Mapped record; a field the mapping already faulted is not faulted twice."""
    if checked:
        seen = {p.field for p in problems}
        problems.extend(p for p in checked if p.field not in seen)
    dossier = payload.get("MaHoSo") or ""
    if shape.kind is Kind.HEADER:
        key, event_time = dossier or source_ref, payload.get("NgayTiepNhan") or ""
    else:
        event_time = payload.get("ThoiDiemXuLy") or ""
        status = payload.get("TrangThai") or ""
        key = (
            f"{dossier}|{event_time}|{status}" if dossier and event_time and status else source_ref
        )
    return Mapped(
        kind=shape.kind,
        key=str(key),
        dossier=str(dossier),
        source_ref=source_ref,
        payload=payload,
        problems=tuple(problems),
        event_time=str(event_time),
        dossier_ref=dossier_ref,
    )


# --- compiling -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Context:
    """What field compilation needs: where we are (for messages) and what names resolve to."""

    origin: str
    timezone: ZoneInfo
    codes: Mapping[str, Mapping[str, str]]
    crosswalks: Mapping[str, Mapping[str, str]]

    def fail(self, section: str, field: str, message: str) -> MappingError:
        return _fail(self.origin, section, field, message)


def _fail(origin: str, section: str, field: str, message: str) -> MappingError:
    """The one message shape: 'file: [section] field: what is wrong'."""
    where = f"[{section}] {field}" if field else f"[{section}]"
    return MappingError(f"{origin}: {where}: {message}")


def _first(extra: set[Any]) -> str:
    """The first unexpected key, for a message that names one place to fix."""
    return sorted(map(str, extra))[0]


def _table(ctx: _Context, doc: Mapping[str, Any], key: str, section: str) -> Mapping[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, Mapping):
        raise ctx.fail(section, key, "must be a table")
    return value


def _chain(column: str, chain: Sequence[Transform]) -> Getter:
    """One closure per field, specialised so the common short chains cost one call."""
    if not chain:
        return lambda record: record.get(column)
    if len(chain) == 1:
        only = chain[0]
        return lambda record: only(record.get(column))

    def get(record: SourceRecord) -> Any:
        value = record.get(column)
        for transform in chain:
            value = transform(value)
        return value

    return get


def _const(literal: str) -> Getter:
    return lambda record: literal


def _compile_field(
    ctx: _Context, section: str, name: str, spec: Any, known: frozenset[str]
) -> _Field:
    if name not in known:
        raise ctx.fail(section, name, "not a field the portal knows")
    if isinstance(spec, str):
        return _Field(name=name, column=spec, get=_chain(spec, ()), required=False)
    if not isinstance(spec, Mapping):
        raise ctx.fail(section, name, "must be a column name or a table")
    extra = set(spec) - _FIELD_KEYS
    if extra:
        raise ctx.fail(
            section,
            name,
            f"unknown keys {sorted(map(str, extra))} (use from, via, const, required)",
        )
    required = spec.get("required", False)
    if not isinstance(required, bool):
        raise ctx.fail(section, name, "required must be true or false")
    if "const" in spec:
        if "from" in spec or "via" in spec or not isinstance(spec["const"], str):
            raise ctx.fail(section, name, "const must be a string, without from or via")
        literal = spec["const"]
        return _Field(
            name=name,
            column="",
            get=_const(literal),
            required=required,
            literal=literal,
            blank_free=not literal or not literal.isspace(),
        )
    column = spec.get("from")
    if not isinstance(column, str) or not column:
        raise ctx.fail(section, name, 'needs from = "column" or const = "literal"')
    via = spec.get("via", [])
    chain = _compile_via(ctx, section, name, via)
    return _Field(
        name=name,
        column=column,
        get=_chain(column, chain),
        required=required,
        via=tuple(chain),
        makes_time=bool(via) and via[-1] in PORTAL_TIME,
        blank_free=bool(via) and _blank_free(ctx, via[-1]),
    )


def _blank_free(ctx: _Context, last: str) -> bool:
    """Whether transform `last` never yields blank text other than "": `strip`, the date
    transforms, a lookup whose table holds no blank code, a `default:` of non-blank text
    (each passes on only None, "", non-text or text with something in it)."""
    if last == "strip" or last in PORTAL_TIME:
        return True
    prefix, _, arg = last.partition(":")
    if prefix == "code":
        results: Iterable[str] = ctx.codes[arg].values()
    elif prefix == "crosswalk":
        results = ctx.crosswalks[arg].values()
    elif prefix == "default":
        results = (arg,)
    else:
        return False
    return not any(result and result.isspace() for result in results)


def _compile_via(ctx: _Context, section: str, name: str, via: Any) -> list[Transform]:
    if not isinstance(via, list) or not all(isinstance(step, str) for step in via):
        raise ctx.fail(section, name, "via must be a list of transform names")
    try:
        return [
            resolve(step, timezone=ctx.timezone, codes=ctx.codes, crosswalks=ctx.crosswalks)
            for step in via
        ]
    except UnknownTransform as exc:
        raise ctx.fail(section, name, str(exc)) from None


def _compile_fields(
    ctx: _Context, section: str, specs: Any, known: frozenset[str]
) -> tuple[_Field, ...]:
    if not isinstance(specs, Mapping) or not specs:
        raise ctx.fail(section, "", "must be a table with at least one field")
    return tuple(_compile_field(ctx, section, name, spec, known) for name, spec in specs.items())


def _compile_list(ctx: _Context, name: str, spec: Any, children: Mapping[str, Any] | None) -> _List:
    section = f"dossier.lists.{name}"
    if name not in validation.LIST_FIELDS:
        raise ctx.fail("dossier.lists", name, "not a list the portal knows")
    if not isinstance(spec, Mapping):
        raise ctx.fail("dossier.lists", name, "must be a table")
    source = spec.get("from")
    if not isinstance(source, str) or not source:
        raise ctx.fail(section, "from", "missing: name the child stream that fills this list")
    if children is not None and source not in children:
        raise ctx.fail(section, "from", f"no child stream {source!r} in [streams]")
    fields = _compile_fields(
        ctx, f"{section}.fields", spec.get("fields"), validation.LIST_FIELDS[name]
    )
    return _List(name=name, source=source, fields=fields)


def _stream(
    ctx: _Context, doc: Mapping[str, Any], section: str, streams: Mapping[str, Any]
) -> tuple[str, str, Mapping[str, Any]]:
    """The stream a section reads, its key column and its table in [streams]."""
    body = _table(ctx, doc, section, section)
    if not body:
        raise ctx.fail(section, "", "missing")
    name = body.get("stream")
    if not isinstance(name, str) or not name:
        raise ctx.fail(section, "stream", "missing: name the stream this section reads")
    table = streams.get(name)
    if not isinstance(table, Mapping):
        raise ctx.fail(section, "stream", f"no [streams.{name}] in the mapping")
    key = table.get("key")
    if not isinstance(key, str) or not key:
        raise ctx.fail(f"streams.{name}", "key", "missing: name the record's id column")
    return name, key, body


def _compile_header(ctx: _Context, doc: Mapping[str, Any], streams: Mapping[str, Any]) -> _Shape:
    stream, key, body = _stream(ctx, doc, "dossier", streams)
    extra = set(body) - {"stream", "fields", "lists"}
    if extra:
        raise ctx.fail("dossier", _first(extra), "unknown key (use stream, fields, lists)")
    fields = _compile_fields(ctx, "dossier.fields", body.get("fields"), validation.HEADER_FIELDS)
    children = streams[stream].get("children")
    known_children = children if isinstance(children, Mapping) else None
    lists = tuple(
        _compile_list(ctx, name, spec, known_children)
        for name, spec in _table(ctx, body, "lists", "dossier").items()
    )
    return _Shape(kind=Kind.HEADER, stream=stream, key_column=key, fields=fields, lists=lists)


def _compile_step(ctx: _Context, doc: Mapping[str, Any], streams: Mapping[str, Any]) -> _Shape:
    stream, key, body = _stream(ctx, doc, "step", streams)
    extra = set(body) - {"stream", "fields", "dossier_record"}
    if extra:
        raise ctx.fail("step", _first(extra), "unknown key (use stream, fields, dossier_record)")
    column = body.get("dossier_record", "")
    if not isinstance(column, str):
        raise ctx.fail("step", "dossier_record", "must be a column name")
    fields = _compile_fields(ctx, "step.fields", body.get("fields"), validation.STEP_FIELDS)
    return _Shape(
        kind=Kind.STEP, stream=stream, key_column=key, fields=fields, dossier_column=column
    )


def _codes(origin: str, doc: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    tables: dict[str, dict[str, str]] = {}
    for name, table in _table_plain(origin, doc, "codes").items():
        if not isinstance(table, Mapping):
            raise _fail(origin, "codes", name, 'must be a table of local value = "portal code"')
        for local, code in table.items():
            if not isinstance(code, str):
                raise _fail(origin, f"codes.{name}", local, "portal codes must be strings")
        tables[name] = dict(table)
    return tables


def _table_plain(origin: str, doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, Mapping):
        raise _fail(origin, key, "", "must be a table")
    return value


def _timezone(origin: str, mapping: Mapping[str, Any]) -> ZoneInfo:
    name = mapping.get("timezone", _DEFAULT_TIMEZONE)
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise _fail(origin, "mapping", "timezone", f"unknown time zone {name!r}") from None


def _catalogue(ctx: _Context, doc: Mapping[str, Any]) -> validation.Catalogue:
    body = _table(ctx, doc, "catalogue", "catalogue")
    extra = set(body) - {"procedures", "agencies"}
    if extra:
        raise ctx.fail("catalogue", _first(extra), "unknown key (use procedures, agencies)")
    found: dict[str, frozenset[str]] = {}
    for key, crosswalk in body.items():
        if not isinstance(crosswalk, str) or crosswalk not in ctx.crosswalks:
            raise ctx.fail("catalogue", key, f"unknown crosswalk {crosswalk!r}")
        found[key] = frozenset(ctx.crosswalks[crosswalk].values())
    return validation.Catalogue(**found)


def compile_mapping(
    doc: Mapping[str, Any],
    crosswalks: Mapping[str, Mapping[str, str]],
    *,
    origin: str = "<mapping>",
) -> CompiledMapping:
    """A CompiledMapping, or MappingError naming `origin`, the section and the field."""
    extra = set(doc) - _SECTIONS
    if extra:
        raise _fail(origin, _first(extra), "", "unknown section")
    mapping = _table_plain(origin, doc, "mapping")
    name = mapping.get("name")
    if not isinstance(name, str) or not name:
        raise _fail(origin, "mapping", "name", "missing")
    for declared in _table_plain(origin, doc, "crosswalks"):
        if declared not in crosswalks:
            raise _fail(origin, f"crosswalks.{declared}", "", "not loaded")
    ctx = _Context(
        origin=origin,
        timezone=_timezone(origin, mapping),
        codes=_codes(origin, doc),
        crosswalks=crosswalks,
    )
    streams = _table(ctx, doc, "streams", "streams")
    header = _compile_header(ctx, doc, streams)
    step = _compile_step(ctx, doc, streams)
    catalogue = _catalogue(ctx, doc)
    return CompiledMapping(
        name=name,
        streams=streams,
        dossier_stream=header.stream,
        step_stream=step.stream,
        catalogue=catalogue,
        header=replace(header, fused=_fuse(header, validation.header_plan(catalogue))),
        step=replace(step, fused=_fuse(step, validation.step_plan())),
        timezone=ctx.timezone.key,
    )


# --- fusing mapping and validation -----------------------------------------------------------
#
# Most records are valid, and for them mapping then validating walks every field twice and
# builds nothing worth keeping. So each shape also gets one plain function, generated once
# from its fields and the portal's rules, that maps and checks each field in a single pass
# and gives up (returns None) at the first thing that is not fine. `map` then takes the
# field-by-field path, which finds every reason exactly as before. For the demo mapping the
# first header field becomes:
#
#     value = record.get('dossier_no')
#     if type(value) is not str or not value or value.isspace() or rule2(...) is not None:
#         return None
#     payload['MaHoSo'] = value
#
# Blank text counts as missing on both paths (`is_blank`); the `value.isspace()` test is left
# out where the field's last transform never yields it (`_blank_free`: `strip`, dates, ...).
#
# `_fused_source` returns the whole text for a shape, for reading or debugging.


class _Writer:
    """The text of one fused function, and the objects (transforms, rules) it names."""

    def __init__(self, catalogue: validation.Catalogue) -> None:
        self.lines: list[str] = []
        self.names: dict[str, Any] = {"TransformProblem": TransformProblem, "catalogue": catalogue}

    def bind(self, kind: str, obj: Any) -> str:
        """A global name for `obj` in the generated function."""
        name = f"{kind}{len(self.names)}"
        self.names[name] = obj
        return name

    def line(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)


def _write_field(
    w: _Writer,
    field: _Field,
    rule: validation.Rule | None,
    needed: bool,
    depth: int,
    row: str,
    out: str,
) -> None:
    """Code putting the field's value from dict `row` into dict `out`, if it is a non-blank
    string passing `rule` (None: nothing to check); a missing value (None, `""` or blank
    text, as in `_fill`) is skipped unless `needed`. Whatever the mapping or the rule would
    fault (a transform problem, a non-string, a failing rule, a needed value missing)
    returns None.
    """
    if field.literal is not None:
        value = w.bind("const", field.literal)
    else:
        value = f"{row}.get({field.column!r})"
        for transform in field.via:
            value = f"{w.bind('via', transform)}({value})"
    fails = [] if rule is None else [f"{w.bind('rule', rule)}(value, catalogue) is not None"]
    w.line(depth, f"value = {value}")
    # Blank text is missing too, unless the field's transforms never yield it.
    blank = [] if field.blank_free else ["value.isspace()"]
    if needed:
        w.line(depth, f"if {' or '.join(['type(value) is not str', 'not value', *blank, *fails])}:")
        w.line(depth + 1, "return None")
        w.line(depth, f"{out}[{field.name!r}] = value")
        return
    w.line(depth, "if type(value) is not str:")
    w.line(depth + 1, "if value is not None:")
    w.line(depth + 2, "return None")
    w.line(depth, f"elif {' and not '.join(['value', *blank])}:")
    for check in fails:
        w.line(depth + 1, f"if {check}:")
        w.line(depth + 2, "return None")
    w.line(depth + 1, f"{out}[{field.name!r}] = value")


def _rule(
    field: _Field, rules: Mapping[str, validation.Rule], plan: validation.FieldPlan
) -> validation.Rule | None:
    """The field's rule, or None when its transforms already guarantee what the rule asks."""
    return None if field.makes_time and field.name in plan.times else rules[field.name]


def _write_list(w: _Writer, spec: _List, plan: validation.FieldPlan, depth: int) -> None:
    """Code building the list's items from its child rows; an unusual container or row (not
    a list, tuple or dict) returns None."""
    w.line(depth, f"children = record.get({spec.source!r})")
    w.line(depth, "if children:")
    w.line(depth + 1, "if type(children) is not list and type(children) is not tuple:")
    w.line(depth + 2, "return None")
    w.line(depth + 1, "items = []")
    w.line(depth + 1, "for child in children:")
    w.line(depth + 2, "if type(child) is not dict:")
    w.line(depth + 3, "return None")
    w.line(depth + 2, "item = {}")
    rules = plan.items[spec.name]
    for field in spec.fields:
        rule = _rule(field, rules, plan)
        _write_field(w, field, rule, field.required, depth + 2, "child", "item")
    w.line(depth + 2, "if item:")
    w.line(depth + 3, "items.append(item)")
    w.line(depth + 1, "if items:")
    w.line(depth + 2, f"payload[{spec.name!r}] = items")


def _fusable(shape: _Shape, plan: validation.FieldPlan) -> bool:
    """Whether every field and list has its rules and every required field a mapping; if not,
    no record can pass and every one takes the field-by-field path."""
    names = {field.name for field in shape.fields}
    lists_known = all(
        {field.name for field in spec.fields} <= plan.items.get(spec.name, {}).keys()
        for spec in shape.lists
    )
    return lists_known and names <= plan.rules.keys() and set(plan.required) <= names


def _fused_source(shape: _Shape, plan: validation.FieldPlan) -> tuple[str, dict[str, Any]]:
    """The text of the shape's fused function and the globals it runs with."""
    w = _Writer(plan.catalogue)
    w.line(0, "def fused(record):")
    w.line(1, "payload = {}")
    w.line(1, "try:")
    for field in shape.fields:
        needed = field.required or field.name in plan.required
        _write_field(w, field, _rule(field, plan.rules, plan), needed, 2, "record", "payload")
    for spec in shape.lists:
        _write_list(w, spec, plan, 2)
    w.line(1, "except TransformProblem:")
    w.line(2, "return None")
    if plan.across is not None:
        w.line(1, f"if {w.bind('across', plan.across)}(payload):")
        w.line(2, "return None")
    w.line(1, "return payload")
    return "\n".join(w.lines) + "\n", w.names


def _fuse(shape: _Shape, plan: validation.FieldPlan) -> _Fused:
    """The shape's fused function, compiled once from the text `_fused_source` writes."""
    if not _fusable(shape, plan):
        return _never_fused
    text, names = _fused_source(shape, plan)
    exec(compile(text, f"<fused {shape.kind} mapping of {shape.stream}>", "exec"), names)
    fused: _Fused = names["fused"]
    return fused
