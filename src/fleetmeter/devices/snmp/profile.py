"""SNMP data profiles: which objects the driver reads, loaded from TOML files in ``profiles/``.

OIDs, enumerations and vendor numbers are data (as in Prometheus' snmp_exporter), so that a
new object or vendor is a profile edit, not a code change. The parser refers to objects by
their MIB names only. A profile is validated when it is loaded: a typo fails at import time
of the first read, with the file and the key in the message, not as a silent miss.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Literal, cast

__all__ = [
    "Column",
    "Profile",
    "ProfileError",
    "ReportPart",
    "Scalar",
    "Syntax",
    "Table",
    "load_profile",
]

Syntax = Literal["integer", "counter", "string", "octets", "oid"]
ReportPart = Literal["identify", "health", "usage"]

_SYNTAXES: frozenset[str] = frozenset({"integer", "counter", "string", "octets", "oid"})
_PARTS: frozenset[str] = frozenset({"identify", "health", "usage"})
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]{0,9}))+$")


class ProfileError(ValueError):
    """A profile file is not valid (a programming error in the shipped data, not a device's)."""


@dataclass(frozen=True)
class Scalar:
    name: str
    oid: str
    syntax: Syntax
    ref: str


@dataclass(frozen=True)
class Column:
    name: str
    column: int
    syntax: Syntax
    ref: str
    enum: str | None = None
    bits: str | None = None


@dataclass(frozen=True)
class Table:
    """A conceptual table, walked as one subtree (its ``…Entry`` OID)."""

    name: str
    oid: str
    index: tuple[str, ...]
    ref: str
    reports: frozenset[ReportPart]
    columns: Mapping[str, Column]

    def column_by_number(self) -> dict[int, Column]:
        return {c.column: c for c in self.columns.values()}


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    scalars: Mapping[str, Scalar]
    tables: Mapping[str, Table]
    enums: Mapping[str, Mapping[int, str]]
    bits: Mapping[str, Mapping[int, str]]
    enterprises: Mapping[int, str]
    vendor_words: Mapping[str, str]

    def tables_for(self, part: ReportPart) -> list[Table]:
        return [t for t in self.tables.values() if part in t.reports]

    def column(self, name: str) -> Column:
        """A table column by its MIB name (names are unique across the profile's tables)."""
        for table in self.tables.values():
            if name in table.columns:
                return table.columns[name]
        raise KeyError(f"profile {self.name!r} has no column {name!r}")

    def enum_name(self, enum: str, value: int) -> str | None:
        return self.enums.get(enum, {}).get(value)


def _str(data: Mapping[str, object], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ProfileError(f"{where}: {key!r} must be a non-empty string")
    return value


def _oid(data: Mapping[str, object], key: str, where: str) -> str:
    value = _str(data, key, where)
    if not _OID.match(value):
        raise ProfileError(f"{where}: {key!r} is not a dotted OID: {value!r}")
    return value


def _syntax(data: Mapping[str, object], where: str) -> Syntax:
    value = _str(data, "syntax", where)
    if value not in _SYNTAXES:
        raise ProfileError(f"{where}: syntax {value!r} is not one of {sorted(_SYNTAXES)}")
    return cast(Syntax, value)


def _table(name: str, data: Mapping[str, object], where: str) -> Table:
    columns_data = data.get("columns")
    if not isinstance(columns_data, dict) or not columns_data:
        raise ProfileError(f"{where}: a table needs columns")
    columns: dict[str, Column] = {}
    for col_name, col in columns_data.items():
        col_where = f"{where}.columns.{col_name}"
        if not isinstance(col, dict):
            raise ProfileError(f"{col_where}: must be a table")
        number = col.get("column")
        if not isinstance(number, int) or isinstance(number, bool) or number < 1:
            raise ProfileError(f"{col_where}: 'column' must be a positive integer")
        enum, bits = col.get("enum"), col.get("bits")
        columns[col_name] = Column(
            name=col_name,
            column=number,
            syntax=_syntax(col, col_where),
            ref=_str(col, "ref", col_where),
            enum=enum if isinstance(enum, str) else None,
            bits=bits if isinstance(bits, str) else None,
        )
    if len({c.column for c in columns.values()}) != len(columns):
        raise ProfileError(f"{where}: two columns share a column number")
    index = data.get("index")
    reports = data.get("reports")
    if not isinstance(index, list) or not all(isinstance(i, str) for i in index) or not index:
        raise ProfileError(f"{where}: 'index' must be a list of index object names")
    if not isinstance(reports, list) or not set(reports) <= _PARTS or not reports:
        raise ProfileError(f"{where}: 'reports' must list some of {sorted(_PARTS)}")
    return Table(
        name=name,
        oid=_oid(data, "oid", where),
        index=tuple(index),
        ref=_str(data, "ref", where),
        reports=frozenset(cast(list[ReportPart], reports)),
        columns=columns,
    )


def _int_keyed(data: object, where: str) -> dict[int, str]:
    if not isinstance(data, dict):
        raise ProfileError(f"{where}: must be a table")
    out: dict[int, str] = {}
    for key, value in data.items():
        if not key.isdigit() or not isinstance(value, str):
            raise ProfileError(f'{where}: entries must be <number> = "name" ({key!r})')
        out[int(key)] = value
    return out


def parse_profile(data: Mapping[str, object], *, source: str = "profile") -> Profile:
    """Validate a decoded profile document. Raises ``ProfileError``."""
    header = data.get("profile")
    if not isinstance(header, dict):
        raise ProfileError(f"{source}: missing [profile]")
    scalars: dict[str, Scalar] = {}
    for name, body in cast(dict[str, object], data.get("scalars", {})).items():
        where = f"{source}: scalars.{name}"
        if not isinstance(body, dict):
            raise ProfileError(f"{where}: must be a table")
        scalars[name] = Scalar(
            name=name,
            oid=_oid(body, "oid", where),
            syntax=_syntax(body, where),
            ref=_str(body, "ref", where),
        )
    tables: dict[str, Table] = {}
    for name, body in cast(dict[str, object], data.get("tables", {})).items():
        if not isinstance(body, dict):
            raise ProfileError(f"{source}: tables.{name}: must be a table")
        tables[name] = _table(name, body, f"{source}: tables.{name}")
    seen: set[str] = set()
    for table in tables.values():
        clash = seen & set(table.columns)
        if clash:
            raise ProfileError(f"{source}: column {sorted(clash)[0]!r} is in two tables")
        seen |= set(table.columns)
    enums = {
        name: _int_keyed(body, f"{source}: enums.{name}")
        for name, body in cast(dict[str, object], data.get("enums", {})).items()
    }
    bits = {
        name: _int_keyed(body, f"{source}: bits.{name}")
        for name, body in cast(dict[str, object], data.get("bits", {})).items()
    }
    for table in tables.values():
        for col in table.columns.values():
            if col.enum is not None and col.enum not in enums:
                raise ProfileError(f"{source}: {table.name}.{col.name}: no enum {col.enum!r}")
            if col.bits is not None and col.bits not in bits:
                raise ProfileError(f"{source}: {table.name}.{col.name}: no bits {col.bits!r}")
    vendors = data.get("vendors", {})
    if not isinstance(vendors, dict):
        raise ProfileError(f"{source}: [vendors] must be a table")
    words = vendors.get("words", {})
    if not isinstance(words, dict) or not all(isinstance(v, str) for v in words.values()):
        raise ProfileError(f"{source}: vendors.words must map words to names")
    return Profile(
        name=_str(header, "name", f"{source}: profile"),
        description=_str(header, "description", f"{source}: profile"),
        scalars=scalars,
        tables=tables,
        enums=enums,
        bits=bits,
        enterprises=_int_keyed(vendors.get("enterprises", {}), f"{source}: vendors.enterprises"),
        vendor_words={k.lower(): v for k, v in words.items()},
    )


@functools.cache
def load_profile(name: str = "printer_mib") -> Profile:
    """The profile ``profiles/<name>.toml`` shipped with the package (cached)."""
    resource = resources.files("fleetmeter.devices.snmp") / "profiles" / f"{name}.toml"
    try:
        text = resource.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ProfileError(f"no SNMP profile named {name!r}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{name}.toml: {exc}") from exc
    return parse_profile(data, source=f"{name}.toml")
