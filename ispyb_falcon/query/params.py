"""Query string -> a typed list query (API.md section 5). Anything unknown is a 400."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import zero_dates
from ..catalog.store import (
    INT64,
    TableSchema,
    base_type,
    parse_date,
    parse_datetime,
    parse_time,
)
from ..errors import bad_request
from . import keyset
from .operators import NEVER, OPERATORS, Operator

_PARAM = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[([a-z]+)\])?$")
COUNTS = ("exact", "planned", "none")


@dataclass(frozen=True)
class Condition:
    column: str
    operator: Operator
    value: Any

    @property
    def shape(self) -> tuple:
        """What the SQL's form depends on: a list binds as IN, a flag chooses the SQL."""
        op = self.operator
        if op.boolean:
            return (self.column, op.key, self.value)
        return (self.column, op.key, len(self.value) if op.many else 1)

    def bound(self) -> Any:
        """The value to bind (None for flags, which are part of the shape)."""
        op = self.operator
        if op.boolean:
            return None
        if op.many:
            return self.value if len(self.value) > 1 else self.value[0]
        return op.prepare(self.value)

    def binds(self, name: str) -> dict[str, Any]:
        """The bind values, by parameter name (a list binds one parameter per value)."""
        value = self.bound()
        if self.operator.boolean:
            return {}
        if self.operator.many and len(self.value) > 1:
            return {f"{name}_{j}": v for j, v in enumerate(value)}
        return {name: value}


@dataclass
class ListQuery:
    skip: int = 0
    limit: int = 25
    order_by: str | None = None
    descending: bool = False
    conditions: list[Condition] = field(default_factory=list)
    fields: list[str] | None = None
    search: str | None = None
    scopes: dict[str, str] = field(default_factory=dict)  # convenience filters: proposal=, session=
    chosen: dict[str, Any] = field(default_factory=dict)  # a route's named filters: when=, mine=...
    after: tuple | None = None  # keyset: the sort values of the row the page starts after
    count: str = "exact"  # exact | planned | none
    embed: tuple[str, ...] = ()  # ?embed=: the declared embeddings asked for, in order
    embed_fields: dict[str, list[str]] = field(default_factory=dict)  # fields=sample.name
    params: Mapping[str, Any] = field(default_factory=dict)  # the query string, as given
    table: str = ""

    def digest(self) -> str:
        """What identifies the rows and order of this query, for its pages' cursors."""
        return keyset.digest(self.table, self.params)

    @property
    def shape(self) -> tuple:
        return (
            tuple(self.fields or ()),
            self.order_by,
            self.descending,
            self.limit is not None,
            tuple(c.shape for c in self.conditions),
            self.search is not None,
            None if self.after is None else tuple(v is None for v in self.after),
            tuple((name, c.shape) for name, c in sorted(self.chosen.items())),
            *(  # with embed=, fields may name no column of the row's own ([], not None)
                (
                    self.embed,
                    tuple((k, tuple(v)) for k, v in self.embed_fields.items()),
                    self.fields is None,
                )
                if self.embed
                else ()
            ),
        )


# Longest text a [like] filter or a search may match: a substring longer than any
# column holds finds nothing, and SQLite refuses LIKE patterns past 50,000 bytes.
MAX_MATCH_TEXT = 1000


def _int(text: str) -> int:
    n = int(text.strip())
    if n not in INT64:
        raise ValueError("beyond a 64-bit integer")
    return n


def _match_text(name: str, raw: str) -> str:
    if len(raw) > MAX_MATCH_TEXT:
        raise bad_request(f"{name} may hold at most {MAX_MATCH_TEXT} characters", name)
    return raw


def _float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise ValueError("not a finite number")
    return v


def _datetime(text: str):
    """A datetime (a date alone is its midnight), or the text of a zero or partial date."""
    return parse_datetime(text) if len(text) > 10 else parse_datetime(text + "T00:00")


def _timestamp(text: str):
    """As `_datetime`; of the dates with a zero part, a TIMESTAMP holds only the zero one."""
    return zero_dates.timestamp_text(_datetime(text))


def value_parser(table: TableSchema, column: str) -> Callable[[str], Any]:
    """How a query-string value becomes a value of this column."""
    base = base_type(table.sql_type(column))
    if base in ("tinyint", "smallint", "mediumint", "int", "integer", "bigint"):
        return _int
    if base in ("float", "double", "decimal", "real"):
        return _float
    if base == "datetime":
        return _datetime
    if base == "timestamp":
        return _timestamp
    if base == "date":
        return parse_date
    if base == "time":
        return parse_time
    if base in ("binary", "varbinary"):
        return bytes.fromhex
    return str


def _single(name: str, raw: Any) -> str:
    if isinstance(raw, list):
        raise bad_request(f"query parameter {name!r} is given more than once", name)
    return raw


def _bounded(name: str, raw: str, lo: int, hi: int) -> int:
    try:
        n = int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer, got {raw!r}", name) from None
    if not lo <= n <= hi:
        raise bad_request(f"{name} must be from {lo} to {hi}, got {n}", name)
    return n


def parse_list_query(
    params: Mapping[str, Any],
    table: TableSchema,
    *,
    default_limit: int,
    max_limit: int,
    scopes: Iterable[str] = (),
    paged: bool = True,
    embeds: Mapping[str, Sequence[str] | None] | None = None,
    filters: Mapping[str, Callable[[str], Any]] | None = None,
) -> ListQuery:
    """Read every parameter; a name that is neither a known parameter nor a column is a 400.

    `embeds`: what `?embed=` may name, each with its columns (None for a count).
    `filters`: the route's named filters (query/filters.py), each a reader of its text
    (bound to the caller) giving a `Chosen`; the first one that implies an order gives
    the list's order when no `order_by` is given (`order=` still chooses the direction).
    """
    filters = filters or {}
    q = ListQuery(limit=default_limit)
    embeds = embeds or {}
    columns = [c for c in table.columns if c not in table.blobs]
    scopes = tuple(scopes)
    for name, raw in params.items():
        if name == "embed" and isinstance(raw, list):
            raw = ",".join(raw)  # embed=a&embed=b, as some clients send a list: embed=a,b
        raw = _single(name, raw)
        if name == "skip":
            q.skip = _bounded("skip", raw, 0, 2**31)
        elif name == "limit":
            q.limit = _bounded("limit", raw, 1, max_limit)
        elif name == "order_by":
            if raw not in columns:
                raise bad_request(f"order_by: {raw!r} is not a column of {table.name}", name)
            q.order_by = raw
        elif name == "order":
            if raw not in ("asc", "desc"):
                raise bad_request(f"order must be asc or desc, got {raw!r}", name)
            q.descending = raw == "desc"
        elif name == "fields":
            wanted = [f.strip() for f in raw.split(",") if f.strip()]
            dotted = [f for f in wanted if "." in f]
            own = [f for f in wanted if "." not in f]
            unknown = [f for f in own if f not in columns]
            if unknown or not wanted:
                raise bad_request(
                    f"fields: unknown column(s) of {table.name}: {', '.join(unknown) or '(none)'}",
                    name,
                )
            q.fields = list(dict.fromkeys(own))
            for f in dotted:
                q.embed_fields.setdefault(f.split(".", 1)[0], []).append(f)
        elif name == "embed":
            q.embed = _embed_names(raw, table.name, embeds)
        elif name == "search":
            q.search = _match_text(name, raw)
        elif name == "count":
            if raw not in COUNTS:
                raise bad_request(f"count must be one of {', '.join(COUNTS)}, got {raw!r}", name)
            q.count = raw
        elif name == "after":
            pass  # read below, once the order is known
        elif name == "format":
            pass  # the representation, read by the resource (resources/reads.py)
        elif name in scopes:
            if not raw:
                raise bad_request(f"{name} needs a value", name)
            q.scopes[name] = raw
        elif name in filters:
            q.chosen[name] = filters[name](raw)
        else:
            q.conditions.append(_condition(name, raw, table, columns))
    q.params, q.table = params, table.name
    q.embed_fields = _embedded_fields(q, embeds)
    implied = [c.order for c in q.chosen.values() if c.order is not None]
    if q.order_by is None and implied:
        q.order_by = implied[0][0]
        if "order" not in params:
            q.descending = implied[0][1]
    if "after" in params:
        if "skip" in params:
            raise bad_request("give either skip or after, not both", "after")
        width = len(keyset.sort_columns(q.order_by, table.primary_key))
        try:
            q.after = keyset.decode(_single("after", params["after"]), q.digest(), width)
        except ValueError as exc:
            raise bad_request(f"after: {exc}", "after") from None
    if not paged:
        q.skip, q.limit = 0, None  # exports stream every matching row
    return q


def named(param: str, raw: str, known: Iterable[str], what: str, offered: str) -> tuple[str, ...]:
    """`a,b` -> ('a', 'b'): the names of a comma list, each once, every one `known`; else
    a 400 naming the parameter, the unknown `what` and what is `offered`."""
    known = tuple(known)
    wanted = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in known]
    if unknown or not wanted:
        raise bad_request(
            f"{param}: unknown {what} {', '.join(unknown) or '(none)'}; {offered}", param
        )
    return tuple(dict.fromkeys(wanted))


def _embed_names(raw: str, table: str, embeds: Mapping[str, Any]) -> tuple[str, ...]:
    if not embeds:
        raise bad_request(f"embed: {table} rows have nothing to embed", "embed")
    return named("embed", raw, embeds, "name(s)", f"{table} rows can embed {', '.join(embeds)}")


def _embedded_fields(q: ListQuery, embeds: Mapping[str, Any]) -> dict[str, list[str]]:
    """`fields=sample.name,sample.code`: the columns of each embedded parent to serve."""
    found: dict[str, list[str]] = {}
    for name, dotted in q.embed_fields.items():
        for f in dotted:
            column = f.split(".", 1)[1]
            if name not in q.embed:
                raise bad_request(
                    f"fields: {f} names {name!r}, which embed= does not ask for", "fields"
                )
            if embeds[name] is None or column not in embeds[name]:
                raise bad_request(f"fields: {f}: {column!r} is not a column of {name}", "fields")
            if column not in found.setdefault(name, []):
                found[name].append(column)
    return found


def _condition(name: str, raw: str, table: TableSchema, columns: list[str]) -> Condition:
    m = _PARAM.match(name)
    if not m or m.group(1) not in columns:
        raise bad_request(f"unknown query parameter {name!r}", name)
    column, op_key = m.group(1), m.group(2) or "eq"
    op = OPERATORS.get(op_key)
    if op is None:
        raise bad_request(
            f"unknown operator [{op_key}] in {name!r}; known: {', '.join(OPERATORS)}", name
        )
    if op.boolean:
        if raw not in ("true", "false"):
            raise bad_request(f"{name} must be true or false, got {raw!r}", name)
        return Condition(column, op, raw == "true")
    if op.text:
        raw = _match_text(name, raw)
        if base_type(table.sql_type(column)) in ("datetime", "timestamp"):
            raw = raw.replace("T", " ")  # served with a T, stored (and cast to text) with a space
        return Condition(column, op, raw)
    parse = value_parser(table, column)
    parts = raw.split(",") if op.many else [raw]
    try:
        values = [parse(p) for p in parts]
    except (ValueError, OverflowError) as exc:
        raise bad_request(
            f"{name}: cannot read {raw!r} as a {table.sql_type(column)} ({exc})", name
        ) from None
    return _storable(Condition(column, op, values if op.many else values[0]), table, name)


def _storable(cond: Condition, table: TableSchema, name: str) -> Condition:
    """Text the column's character set cannot hold matches no stored value.

    Said in SQL as such, because MariaDB refuses to compare a latin1 column
    with such text ("illegal mix of collations").
    """
    values = cond.value if cond.operator.many else [cond.value]
    kept = [v for v in values if table.storable(cond.column, v)]
    if len(kept) == len(values):
        return cond
    if cond.operator.many:
        return (
            Condition(cond.column, cond.operator, kept)
            if kept
            else Condition(cond.column, NEVER, True)
        )
    if cond.operator.key == "ne":
        return Condition(cond.column, OPERATORS["null"], False)
    raise bad_request(f"{name}: {cond.value!r} cannot be compared with this column's text", name)
