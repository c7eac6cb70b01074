"""Keyset paging (API.md section 5): `next` cursors and `?after=`.

A page of a list ends with a row; the cursor holds that row's values of the
sort columns (the `order_by` column, then the primary key) and a digest of the
query it came from. `?after=<cursor>` then selects the rows strictly after
those values in the same order, a predicate the database answers from its
index like a first page, however deep the page is.

The cursor is opaque to clients but not secret: it only positions a page
inside what the caller may see anyway (visibility and filters still apply),
so it is not signed. The digest makes a cursor from another query (other
filters, another order, another table) a 400 rather than a wrong page.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from ..catalog.store import INT64

# Parameters that choose which page or how it is shown, not which rows are listed:
# a cursor stays valid across them.
NOT_IN_DIGEST = frozenset({"after", "skip", "limit", "count", "fields", "format", "embed"})


def sort_columns(order_by: str | None, key: Sequence[str]) -> list[str]:
    """The order rows are listed in: the requested column, then the primary key."""
    return ([order_by] if order_by else []) + [k for k in key if k != order_by]


def digest(table: str, params: Mapping[str, Any]) -> str:
    """What identifies a query's rows and order (not its page)."""
    kept = sorted((k, str(v)) for k, v in params.items() if k not in NOT_IN_DIGEST)
    text = json.dumps([table, kept], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _tagged(v: Any) -> Any:
    """A sort value as JSON that reads back as the same Python value."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, dt.datetime):
        return {"dt": v.isoformat()}
    if isinstance(v, dt.date):
        return {"d": v.isoformat()}
    if isinstance(v, decimal.Decimal):
        return {"n": str(v)}
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"b": bytes(v).hex()}
    if isinstance(v, dt.timedelta):
        return {"td": v.total_seconds()}
    return str(v)


def _untagged(v: Any) -> Any:
    if not isinstance(v, dict):
        return v
    (tag, text), *rest = v.items()
    if rest:
        raise ValueError("bad value")
    readers = {
        "dt": dt.datetime.fromisoformat,
        "d": dt.date.fromisoformat,
        "n": decimal.Decimal,
        "b": bytes.fromhex,
        "td": lambda s: dt.timedelta(seconds=float(s)),
    }
    return readers[tag](text)


def encode(query_digest: str, values: Sequence[Any]) -> str:
    text = json.dumps({"q": query_digest, "v": [_tagged(v) for v in values]}, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _bindable(v: Any) -> Any:
    """A sort value a row can hold; a crafted one no driver binds (a list, an integer past
    64 bits, NaN) is refused here rather than failing in the database (a 500)."""
    if isinstance(v, list | dict) or (isinstance(v, int) and v not in INT64):
        raise ValueError("bad value")
    if isinstance(v, float | decimal.Decimal) and not math.isfinite(v):
        raise ValueError("bad value")
    return v


def decode(cursor: str, query_digest: str, width: int) -> tuple[Any, ...]:
    """The sort values a cursor holds; ValueError if it is not one of this query's."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        values = tuple(_bindable(_untagged(v)) for v in data["v"])
        mine = data["q"] == query_digest
    except (
        ValueError,
        KeyError,
        TypeError,
        OverflowError,
        binascii.Error,
        decimal.InvalidOperation,
    ):
        raise ValueError("not a cursor of this API") from None
    if not mine or len(values) != width:
        raise ValueError("a cursor of another query (other filters, order or table)")
    return values


def after(
    table: sa.Table, columns: Sequence[str], descending: bool, nulls: Sequence[bool]
) -> sa.ColumnElement:
    """Rows strictly after the bound values `after_0, after_1, ...` in this order.

    MariaDB and SQLite sort NULL first in ascending order and last in descending
    order; which bound values are NULL is part of the statement's shape.
    """
    ors = []
    for i, name in enumerate(columns):
        later = _later(table.c[name], sa.bindparam(f"after_{i}"), descending, nulls[i])
        if later is None:
            continue
        equal = [
            table.c[c].is_(None) if nulls[j] else table.c[c] == sa.bindparam(f"after_{j}")
            for j, c in enumerate(columns[:i])
        ]
        ors.append(sa.and_(*equal, later))
    return sa.or_(*ors) if ors else sa.false()


def _later(column, bind, descending: bool, null: bool) -> sa.ColumnElement | None:
    """`column` comes after the bound value (None: nothing does)."""
    if not descending:
        return column.is_not(None) if null else column > bind
    if null:
        return None
    return sa.or_(column < bind, column.is_(None)) if column.nullable else column < bind


def values(after_values: Sequence[Any]) -> dict[str, Any]:
    """The bind values of a cursor (its NULLs are in the statement's shape instead)."""
    return {f"after_{i}": v for i, v in enumerate(after_values) if v is not None}
