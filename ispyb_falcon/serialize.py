"""Rows -> JSON values (API.md section 1), and CSV / NDJSON streams for exports."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any


def value(v: Any) -> Any:
    """One column value as the API serves it."""
    if v is None or isinstance(v, (int, str, float)):
        return v
    if isinstance(v, dt.datetime):
        return v.isoformat(timespec="seconds")
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, (dt.time, dt.timedelta)):
        return time_text(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, decimal.Decimal):
        return float(v)
    return str(v)


_TIME_TEXT = re.compile(r"^(-?)(\d+):(\d{2}):(\d{2})(?:\.\d*)?$")


def time_text(v: dt.time | dt.timedelta | str) -> str:
    """A MySQL TIME as `[-]HH:MM:SS`: a time of day, or a signed duration up to 838 hours.

    PyMySQL reads TIME as a timedelta (negative, or past 24 hours, as stored); SQLite's
    demo tables keep the text; the demo generator writes `datetime.time`.
    """
    if isinstance(v, dt.time):
        return f"{v.hour:02d}:{v.minute:02d}:{v.second:02d}"
    if isinstance(v, dt.timedelta):
        seconds = int(v.total_seconds())
        sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
        return f"{sign}{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    m = _TIME_TEXT.match(v)
    return f"{m[1]}{int(m[2]):02d}:{m[3]}:{m[4]}" if m else v


def row(mapping: Any, keys: Sequence[str]) -> dict[str, Any]:
    """The row's columns; `dumps` formats what JSON has no type for (dates, bytes, ...)."""
    return {k: mapping[k] for k in keys}


# One encoder for the whole process (it keeps no state between calls); `default` runs
# only for values json cannot write itself, so most columns cost nothing.
_encoder = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=value
)


def dumps(obj: Any) -> str:
    return _encoder.encode(obj)


Batches = Iterable[Sequence[Sequence[Any]]]  # rows in batches, each row positional
NEEDS_FORMATTING = (dt.datetime, dt.date, dt.time, dt.timedelta, decimal.Decimal, bytes)


def formatters(types: Sequence[Any]) -> list[int]:
    """The columns (of these SQLAlchemy types) whose values need `value` before CSV:
    a CSV cell of an int, a float, a text or NULL is written as the value itself."""
    found = []
    for i, t in enumerate(types):
        try:
            python = t.python_type
        except NotImplementedError:
            python = object  # unknown: format it, to be safe
        if python is object or issubclass(python, NEEDS_FORMATTING):
            found.append(i)
    return found


def ndjson_stream(batches: Batches, keys: Sequence[str]) -> Iterator[bytes]:
    """One JSON object per line, a chunk per batch of rows as they arrive."""
    for rows in batches:
        yield "".join([dumps(dict(zip(keys, r, strict=False))) + "\n" for r in rows]).encode()


def csv_stream(batches: Batches, keys: Sequence[str], formatted: Sequence[int]) -> Iterator[bytes]:
    """A header line, then one line per row, a chunk per batch of rows as they arrive."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(keys)
    width = len(keys)
    for rows in batches:
        if formatted:
            rows = [_formatted(r, formatted) for r in rows]
        writer.writerows(r[:width] for r in rows)
        yield out.getvalue().encode()
        out.seek(0)
        out.truncate()
    if out.tell():
        yield out.getvalue().encode()


def _formatted(r: Sequence[Any], columns: Sequence[int]) -> list[Any]:
    r = list(r)
    for i in columns:
        r[i] = value(r[i])
    return r
