"""SQLAlchemy Core statements for lists, counts and delete checks.

A list's statements depend on the *shape* of the request (which columns,
filters, operators, scopes, and the kind of caller) and not on its values,
which enter as named bind parameters. `ListPlans` builds the statements once
per shape and keeps them, so a request only collects its values: building
and cache-keying a 100-column select with nested visibility subqueries on
every request cost as much as running it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import visitors

from .operators import like_escape
from .params import ListQuery

Search = str | Callable[[sa.Table], sa.ColumnElement]  # a column name or an expression


def columns(table: sa.Table, names: Iterable[str]) -> list[sa.Column]:
    return [table.c[n] for n in names]


def search(table: sa.Table, fields: Sequence[Search], bind: sa.BindParameter) -> sa.ColumnElement:
    """Substring match on the declared text columns (or expressions), case-insensitive."""
    exprs = [table.c[f] if isinstance(f, str) else f(table) for f in fields]
    # CAST: compare in the connection's character set, whatever the column's (latin1...).
    return sa.or_(*(sa.func.lower(sa.cast(e, sa.String)).like(bind, escape="\\") for e in exprs))


def search_pattern(text: str) -> str:
    return f"%{like_escape(text)}%".lower()


def order(table: sa.Table, q: ListQuery, key: Sequence[str]) -> list[sa.ColumnElement]:
    """The requested column, then the primary key, so pages are stable."""
    direction = sa.desc if q.descending else sa.asc
    first = [direction(table.c[q.order_by])] if q.order_by else []
    return first + [direction(table.c[k]) for k in key if k != q.order_by]


@dataclass(frozen=True)
class Plan:
    page: sa.Select
    count: sa.Select
    names: frozenset[str]  # every bind parameter a request must supply


def named_binds(*statements: sa.Select) -> frozenset[str]:
    """The named (non-anonymous) bind parameters: the values a request supplies."""
    return frozenset(
        b.key
        for stmt in statements
        for b in visitors.iterate(stmt)
        if isinstance(b, sa.BindParameter) and not b.unique
    )


class ListPlans:
    """Page and count statements of one table, built once per request shape."""

    def __init__(self, table: sa.Table, key: Sequence[str], size: int = 512) -> None:
        self.table = table
        self.key = tuple(key)
        self.size = size
        self._plans: OrderedDict[tuple, Plan] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self, shape: tuple, build: Callable[[], tuple[list[str], list[sa.ColumnElement], ListQuery]]
    ) -> Plan:
        with self._lock:
            plan = self._plans.get(shape)
            if plan is not None:
                self._plans.move_to_end(shape)
                return plan
        cols, where, q = build()
        page = (
            sa.select(*columns(self.table, cols))
            .where(*where)
            .order_by(*order(self.table, q, self.key))
        )
        if q.limit is not None:
            page = page.limit(sa.bindparam("limit", type_=sa.Integer)).offset(
                sa.bindparam("offset", type_=sa.Integer)
            )
        count = sa.select(sa.func.count()).select_from(self.table).where(*where)
        plan = Plan(page, count, named_binds(page, count))
        with self._lock:
            self._plans[shape] = plan
            if len(self._plans) > self.size:
                self._plans.popitem(last=False)
        return plan


def bind_values(plan: Plan, values: dict[str, Any]) -> dict[str, Any]:
    """The values for a cached plan; a missing one would run with another request's value."""
    missing = plan.names - values.keys()
    if missing:
        raise RuntimeError(f"unbound parameters {sorted(missing)}")
    return values


def references(
    referenced_by: Sequence[dict], present: set[str], row: dict
) -> tuple[list[dict], sa.Select | None]:
    """One statement counting, for every table that refers to this row, how many rows do."""
    found, counts = [], []
    for ref in referenced_by:
        if ref["table"] not in present:
            continue
        ref_table = sa.table(ref["table"], *(sa.column(c) for c in ref["columns"]))
        match = sa.and_(
            *(
                ref_table.c[c] == row[k]
                for c, k in zip(ref["columns"], ref["references"], strict=True)
            )
        )
        label = f"r{len(counts)}"
        counts.append(
            sa.select(sa.func.count())
            .select_from(ref_table)
            .where(match)
            .scalar_subquery()
            .label(label)
        )
        found.append(ref)
    if not counts:
        return [], None
    return found, sa.select(*counts)
