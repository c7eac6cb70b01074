"""The schema artefact at run time: load `schemas_json/`, compile validators once, convert values.

One `TableSchema` per table holds what the server needs to accept a body:
the compiled Draft 2020-12 validators (full for POST/PUT, nothing required
for PATCH), the read-only and blob columns, and one converter per column that
turns a valid JSON value into what the column stores (dates, hex -> bytes),
refusing what the column cannot hold (impossible dates, text outside its
character set).
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import math
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from .. import zero_dates
from .drift import load_schema_dir

SCHEMAS_ENV_HINT = "set [database] schemas_dir"


def default_schemas_dir() -> Path:
    """schemas_json/ of a checkout, else the copy a wheel installs under <prefix>/share."""
    here = Path(__file__).resolve().parents[2] / "schemas_json"
    if here.is_dir() and any(here.glob("*.json")):
        return here
    installed = Path(sys.prefix) / "share" / "ispyb-falcon" / "schemas_json"
    if installed.is_dir():
        return installed
    raise FileNotFoundError(f"no schemas_json directory found ({SCHEMAS_ENV_HINT})")


# --- value conversion: JSON value -> column value --------------------------------

_DATETIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?$")
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_TIME = re.compile(r"^(-?)(\d{1,3}):(\d{2})(?::(\d{2}))?$")
TIME_MAX_SECONDS = 838 * 3600 + 59 * 60 + 59  # MySQL TIME: -838:59:59 .. 838:59:59
# The integers every database here binds: SQLite's driver cannot bind more than
# 64 bits (OverflowError), where MariaDB would compare the value as a decimal.
INT64 = range(-(2**63), 2**63)
DATE_TYPES = ("date", "datetime", "timestamp")


def parse_datetime(text: str) -> dt.datetime | str:
    """A DATETIME or TIMESTAMP value: a datetime, or the text of a zero or partial date
    (`0000-00-00T00:00:00`, `2020-05-00T00:00:00`: see zero_dates)."""
    m = _DATETIME.match(text)
    if not m:
        raise ValueError("expected YYYY-MM-DDTHH:MM[:SS]")
    y, mo, d, h, mi, s = (int(x) if x else 0 for x in m.groups())
    if mo == 0 or d == 0:
        return zero_dates.datetime_text(y, mo, d, h, mi, s)
    return dt.datetime(y, mo, d, h, mi, s)


def parse_date(text: str) -> dt.date | str:
    """A DATE value: a date, or the text of a zero or partial date (`2020-05-00`)."""
    m = _DATE.match(text)
    if not m:
        raise ValueError("expected YYYY-MM-DD")
    y, mo, d = (int(x) for x in m.groups())
    if mo == 0 or d == 0:
        return zero_dates.date_text(y, mo, d)
    return dt.date(y, mo, d)


def parse_time(text: str) -> str:
    """A TIME value (a time of day, or a signed duration) as `[-]HH:MM:SS` text."""
    m = _TIME.match(text)
    if not m:
        raise ValueError("expected [-]HH:MM[:SS]")
    sign, (h, mi, s) = m[1], (int(x) if x else 0 for x in m.groups()[1:])
    if mi > 59 or s > 59:
        raise ValueError("minutes and seconds must be below 60")
    if h * 3600 + mi * 60 + s > TIME_MAX_SECONDS:
        raise ValueError("a TIME holds at most 838:59:59 (either sign)")
    return f"{sign}{h:02d}:{mi:02d}:{s:02d}"


def _checked_datetime(lo: int, hi: int, *, timestamp: bool = False) -> Callable[[Any], Any]:
    """A DATETIME (`timestamp`: a TIMESTAMP) whose year is from `lo` to `hi`, or a zero or
    partial date as the column holds them (a TIMESTAMP: only the zero one)."""

    def convert(value: str) -> dt.datetime | str:
        parsed = parse_datetime(value)
        if isinstance(parsed, str):
            return zero_dates.timestamp_text(parsed) if timestamp else parsed
        if not lo <= parsed.year <= hi:
            raise ValueError(f"year must be from {lo} to {hi}")
        return parsed

    return convert


# MariaDB's latin1 is Windows-1252 plus the five bytes that code page leaves undefined,
# which it maps to the C1 controls of the same number (checked as any storable character).
_LATIN1_EXTRA = dict.fromkeys((0x81, 0x8D, 0x8F, 0x90, 0x9D), ord("?"))


def _charset(name: str | None) -> Callable[[Any], Any]:
    def latin1(value: str) -> str:
        try:
            value.translate(_LATIN1_EXTRA).encode("cp1252")
        except UnicodeEncodeError as exc:
            bad = value[exc.start]
            raise ValueError(
                f"character {bad!r} (U+{ord(bad):04X}) cannot be stored in this {name} column"
            ) from None
        return value

    def utf8mb3(value: str) -> str:
        for ch in unicode_text(value):
            if ord(ch) > 0xFFFF:
                raise ValueError(
                    f"character U+{ord(ch):04X} cannot be stored in this utf8mb3 column"
                )
        return value

    if name in ("latin1",):
        return latin1
    if name in ("utf8", "utf8mb3"):
        return utf8mb3
    return unicode_text


def unicode_text(value: str) -> str:
    """JSON may escape a lone surrogate (`"\\ud800"`): no character set can store it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"U+{ord(value[exc.start]):04X} is half of a surrogate pair, not a character"
        ) from None
    return value


def _finite(value: float) -> float:
    """NaN, Infinity and numbers past a DOUBLE (1e999) are not values a column holds."""
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _json_text(charset: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A JSON column (CHECK json_valid) holds a JSON document, as text."""

    def convert(value: str) -> str:
        try:
            json.loads(value)
        except ValueError:
            raise ValueError("not a JSON document (this column holds JSON text)") from None
        return charset(value)

    return convert


def _hex(value: str) -> bytes:
    return bytes.fromhex(value)


def _fixed_hex(size: int) -> Callable[[str], bytes]:
    """BINARY(n) pads a shorter value with zero bytes: it would be served changed."""

    def convert(value: str) -> bytes:
        data = bytes.fromhex(value)
        if len(data) != size:
            raise ValueError(f"a BINARY({size}) holds exactly {size} bytes ({2 * size} hex digits)")
        return data

    return convert


def base_type(sql_type: str) -> str:
    """`int(10) unsigned` -> `int`."""
    return sql_type.lower().split("(")[0].split(" ")[0]


def converter_for(column: dict) -> Callable[[Any], Any] | None:
    """The function that turns a JSON value into the column's value, or None (as is)."""
    info = column.get("x-ispyb", {})
    sql = info.get("sqlType", "").lower()
    base = base_type(sql)
    if base == "datetime":
        return _checked_datetime(1000, 9999)
    if base == "timestamp":
        return _checked_datetime(1970, 2037, timestamp=True)
    if base == "date":
        return parse_date
    if base == "time":
        return parse_time
    if base == "binary" and (size := re.search(r"\((\d+)\)", sql)):
        return _fixed_hex(int(size[1]))
    if base in ("binary", "varbinary"):
        return _hex
    if base in ("tinyint", "smallint", "mediumint", "int", "integer", "bigint"):
        return int
    if base in ("float", "double", "real", "decimal"):
        return _finite
    if info.get("json"):
        return _json_text(_charset(info.get("charset")))
    if base in ("char", "varchar", "text", "tinytext", "mediumtext", "longtext", "enum"):
        return _charset(info.get("charset"))
    return None


@dataclass
class TableSchema:
    """One table's schema with what is derived from it once, at start-up."""

    name: str
    schema: dict
    full: Draft202012Validator = field(init=False)
    partial: Draft202012Validator = field(init=False)
    columns: dict[str, dict] = field(init=False)
    read_only: frozenset[str] = field(init=False)
    blobs: frozenset[str] = field(init=False)
    dates: frozenset[str] = field(init=False)  # DATE, DATETIME and TIMESTAMP columns
    converters: dict[str, Callable[[Any], Any]] = field(init=False)
    etag: str = field(init=False)
    text: str = field(init=False)

    def __post_init__(self) -> None:
        self.columns = self.schema["properties"]
        self.read_only = frozenset(c for c, s in self.columns.items() if s.get("readOnly"))
        self.blobs = frozenset(
            c for c, s in self.columns.items() if s.get("x-ispyb", {}).get("blob")
        )
        self.dates = frozenset(c for c in self.columns if base_type(self.sql_type(c)) in DATE_TYPES)
        self.full = Draft202012Validator(self.schema)
        partial = copy.deepcopy(self.schema)
        partial.pop("required", None)
        self.partial = Draft202012Validator(partial)
        self.converters = {c: f for c, s in self.columns.items() if (f := converter_for(s))}
        self.text = json.dumps(self.schema, indent=2, ensure_ascii=False) + "\n"
        self.etag = hashlib.sha256(self.text.encode()).hexdigest()[:32]

    @property
    def x(self) -> dict:
        return self.schema.get("x-ispyb", {})

    @property
    def primary_key(self) -> list[str]:
        return self.x.get("primaryKey", [])

    @property
    def foreign_keys(self) -> list[dict]:
        return self.x.get("foreignKeys", [])

    @property
    def referenced_by(self) -> list[dict]:
        return self.x.get("referencedBy", [])

    def sql_type(self, column: str) -> str:
        return self.columns[column].get("x-ispyb", {}).get("sqlType", "")

    def storable(self, column: str, value: Any) -> bool:
        """Whether the column can hold this value (e.g. text within its character set)."""
        convert = self.converters.get(column)
        if convert is None or not isinstance(value, str):
            return True
        try:
            convert(value)
        except (ValueError, OverflowError):
            return False
        return True

    def check(self, body: Any, *, partial: bool, path: str = "$") -> tuple[dict, list[dict]]:
        """Validate one object and convert it: (values for the database, errors)."""
        if not isinstance(body, dict):
            return {}, [{"path": path, "message": "expected a JSON object"}]
        validator = self.partial if partial else self.full
        errors = []
        bad_fields = set()
        for err in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path)):
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
            if err.validator == "additionalProperties":
                for name in sorted(set(body) - set(self.columns)):
                    errors.append({"path": f"{path}.{name}", "message": f"unknown field {name!r}"})
                    bad_fields.add(name)
                continue
            if err.absolute_path:
                bad_fields.add(err.absolute_path[0])
            errors.append({"path": path + where, "message": _message(err)})
        for name in sorted(self.read_only.intersection(body)):
            errors.append({"path": f"{path}.{name}", "message": f"{name!r} is read-only"})
            bad_fields.add(name)
        values = {}
        for name, value in body.items():
            if name in bad_fields or name not in self.columns:
                continue
            convert = self.converters.get(name)
            if value is None or convert is None:
                values[name] = value
                continue
            try:
                values[name] = convert(value)
            except (ValueError, OverflowError) as exc:
                errors.append({"path": f"{path}.{name}", "message": f"{value!r}: {exc}"})
        return values, errors


def _message(err) -> str:
    text = err.message
    if len(text) > 300:
        text = text[:297] + "..."
    return text


class Catalog:
    """Every table schema in use, by table name."""

    def __init__(self, schemas: dict[str, dict]) -> None:
        self.schemas = schemas
        self.tables = {name: TableSchema(name, s) for name, s in schemas.items()}

    @classmethod
    def from_dir(cls, path: Path | None = None) -> Catalog:
        return cls(load_schema_dir(path or default_schemas_dir()))

    def __getitem__(self, name: str) -> TableSchema:
        return self.tables[name]

    def __contains__(self, name: str) -> bool:
        return name in self.tables

    def subset(self, names: Iterable[str]) -> Catalog:
        return Catalog({n: self.schemas[n] for n in names if n in self.schemas})
