"""Reading mapping files: the I/O edge in front of `connector.core.mapping`.

A mapping is a TOML file plus the crosswalk CSVs it names (paths relative to the TOML
file, so a mapping folder can be moved as a whole). Everything wrong with them is reported
as `MappingError` naming the file, the section and the key, at start, before any record is
read. `check_mapping` is the same reading for `connector mapping check`: it reports instead
of raising, and adds warnings about crosswalk targets that do not look like portal codes.
"""

from __future__ import annotations

import csv
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connector.core.catalogue_check import CrosswalkCodes, CrosswalkRow, catalogue_crosswalks
from connector.core.mapping import CompiledMapping, compile_mapping
from connector.core.validation import is_agency_code, is_procedure_code
from connector.errors import MappingError
from connector.sources.streams import SELECTION_PARAMS, StreamSpec, compile_streams


@dataclass(frozen=True, slots=True, kw_only=True)
class _Crosswalk:
    """One loaded crosswalk, with the CSV line of each target for warnings."""

    name: str
    file: Path
    table: dict[str, str]
    lines: dict[str, int]


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise MappingError(f"{path}: cannot read the mapping file: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise MappingError(f"{path}: not valid TOML: {exc}") from None


def _spec(path: Path, name: str, spec: Any) -> tuple[Path, str, str]:
    """The CSV file and its from/to columns, as declared in [crosswalks.NAME]."""
    where = f"{path}: [crosswalks.{name}]"
    if not isinstance(spec, Mapping):
        raise MappingError(f"{where}: must be a table with file, from and to")
    for key in ("file", "from", "to"):
        if not isinstance(spec.get(key), str) or not spec[key]:
            raise MappingError(f"{where} {key}: missing")
    return path.parent / spec["file"], spec["from"], spec["to"]


def _read_crosswalk(path: Path, name: str, spec: Any) -> _Crosswalk:
    file, source, target = _spec(path, name, spec)
    where = f"{path}: [crosswalks.{name}] file {file}"
    try:
        with file.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in (source, target) if c not in (reader.fieldnames or ())]
            if missing:
                raise MappingError(f"{where}: no column {missing[0]!r}")
            return _rows(where, name, file, reader, source, target)
    except OSError as exc:
        raise MappingError(f"{where}: cannot read: {exc.strerror}") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise MappingError(f"{where}: not a readable UTF-8 CSV: {exc}") from None


def _rows(
    where: str, name: str, file: Path, reader: csv.DictReader[str], source: str, target: str
) -> _Crosswalk:
    """Local code → target; one local code mapped to two targets is an error."""
    table: dict[str, str] = {}
    lines: dict[str, int] = {}
    for row in reader:
        local, code = (row.get(source) or "").strip(), (row.get(target) or "").strip()
        if not local:
            continue
        if local in table and table[local] != code:
            raise MappingError(
                f"{where}: line {reader.line_num}: local code {local!r} maps to "
                f"{code!r} but line {lines[local]} maps it to {table[local]!r}"
            )
        table[local], lines[local] = code, reader.line_num
    return _Crosswalk(name=name, file=file, table=table, lines=lines)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Loaded:
    """A mapping file as read: compiled, as parsed, its crosswalks and its streams' SQL."""

    compiled: CompiledMapping
    doc: dict[str, Any]
    crosswalks: list[_Crosswalk]
    streams: dict[str, StreamSpec]


def _load(path: Path) -> _Loaded:
    doc = _read_toml(path)
    declared = doc.get("crosswalks", {})
    if not isinstance(declared, Mapping):
        raise MappingError(f"{path}: [crosswalks]: must be a table")
    crosswalks = [_read_crosswalk(path, name, spec) for name, spec in declared.items()]
    tables = {crosswalk.name: crosswalk.table for crosswalk in crosswalks}
    compiled = compile_mapping(doc, tables, origin=str(path))
    try:
        streams = compile_streams(compiled.streams)
    except MappingError as exc:
        raise MappingError(f"{path}: {exc}") from None
    return _Loaded(compiled=compiled, doc=doc, crosswalks=crosswalks, streams=streams)


def _selection_warnings(streams: Mapping[str, StreamSpec]) -> list[str]:
    """Selection parameters a stream's `select` does not use: a resync asking for them is
    refused at run time; better to learn it here. And a stream without `select_dossier`,
    whose every look at one dossier reads the whole `select`."""
    found: list[str] = []
    for name, spec in streams.items():
        if spec.select is None:
            can = (
                "can be resynced only by dossier"
                if spec.select_dossier is not None
                else "cannot be resynced"
            )
            found.append(f"warning: streams.{name}: no 'select', so this stream {can}")
            continue
        unbound = spec.unbound(set(SELECTION_PARAMS))
        if unbound:
            names = ", ".join(f":{param}" for param in unbound)
            found.append(
                f"warning: streams.{name}.select does not use {names}: a resync selecting "
                "by them is refused (see mappings/README.md)"
            )
        if spec.select_dossier is None:
            found.append(
                f"warning: streams.{name}: no 'select_dossier', so a retry, a trace, a "
                "resync of one dossier and the pull's re-reads run 'select' for one "
                "dossier, which reads the whole table (see mappings/README.md)"
            )
    return found


def load_mapping(path: Path) -> CompiledMapping:
    """The compiled mapping, or MappingError naming the file, the section and the key."""
    return _load(path).compiled


def _target_checks(doc: Mapping[str, Any]) -> dict[str, tuple[str, Callable[[str], bool]]]:
    """Which crosswalks feed a catalogue, so their targets must look like portal codes."""
    catalogue = doc.get("catalogue", {})
    checks: dict[str, tuple[str, Callable[[str], bool]]] = {}
    if isinstance(catalogue, Mapping):
        if isinstance(catalogue.get("procedures"), str):
            checks[catalogue["procedures"]] = ("national procedure code", is_procedure_code)
        if isinstance(catalogue.get("agencies"), str):
            checks[catalogue["agencies"]] = ("QCVN 102 agency code", is_agency_code)
    return checks


def _warnings(doc: Mapping[str, Any], crosswalks: list[_Crosswalk]) -> list[str]:
    checks = _target_checks(doc)
    found: list[str] = []
    for crosswalk in crosswalks:
        kind, is_code = checks.get(crosswalk.name, ("code", bool))
        for local, code in crosswalk.table.items():
            if not is_code(code):
                found.append(
                    f"warning: {crosswalk.file}:{crosswalk.lines[local]}: crosswalk "
                    f"{crosswalk.name} maps {local!r} to {code!r}, not a well-formed {kind}"
                )
    return found


def check_mapping(path: Path) -> list[str]:
    """Findings for `connector mapping check`: errors, then warnings; [] when all is well."""
    try:
        loaded = _load(path)
    except MappingError as exc:
        return [str(exc)]
    return [
        *_warnings(loaded.doc, loaded.crosswalks),
        *_selection_warnings(loaded.streams),
        *_step_record_warning(loaded.compiled),
    ]


def _step_record_warning(compiled: CompiledMapping) -> list[str]:
    """Without `[step] dossier_record`, a step's dossier is known only by its number."""
    if compiled.step.dossier_column:
        return []
    return [
        "warning: [step] names no dossier_record: a step of a second local record reusing a "
        "dossier number cannot be told from the first record's, and is sent to its dossier "
        "(see mappings/README.md)"
    ]


def catalogue_codes(path: Path) -> list[CrosswalkCodes]:
    """The rows of every crosswalk that feeds a portal catalogue (`[catalogue]`, `MaTTHC`,
    `MaLinhVuc`), in file order; MappingError when the mapping cannot be loaded."""
    loaded = _load(path)
    by_name = {crosswalk.name: crosswalk for crosswalk in loaded.crosswalks}
    found: list[CrosswalkCodes] = []
    for name, kinds in catalogue_crosswalks(loaded.doc).items():
        crosswalk = by_name.get(name)
        if crosswalk is None:  # not reached: compile_mapping refuses unknown crosswalks
            continue
        rows = tuple(
            sorted(
                (
                    CrosswalkRow(line=crosswalk.lines[local], local=local, code=code)
                    for local, code in crosswalk.table.items()
                ),
                key=lambda row: row.line,
            )
        )
        found.extend(
            CrosswalkCodes(crosswalk=name, file=str(crosswalk.file), kind=kind, rows=rows)
            for kind in kinds
        )
    return found
