"""SQLAlchemy Core statements for lists, counts, items and delete checks.

Pure builders: they take tables and predicates and return statements; the
resources execute them. Every statement receives the caller's visibility
predicate from the resource, so no statement here can forget it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import sqlalchemy as sa

from .operators import like_escape
from .params import ListQuery

Search = str | Callable[[sa.Table], sa.ColumnElement]  # a column name or an expression


def columns(table: sa.Table, names: Iterable[str]) -> list[sa.Column]:
    return [table.c[n] for n in names]


def conditions(table: sa.Table, q: ListQuery) -> list[sa.ColumnElement]:
    return [c.operator.build(table.c[c.column], c.value) for c in q.conditions]


def search(table: sa.Table, fields: Sequence[Search], text: str) -> sa.ColumnElement:
    """Substring match on the declared text columns (or expressions)."""
    pattern = f"%{like_escape(text)}%"
    exprs = [table.c[f] if isinstance(f, str) else f(table) for f in fields]
    # CAST: compare in the connection's character set, whatever the column's (latin1...).
    return sa.or_(
        *(sa.func.lower(sa.cast(e, sa.String)).like(pattern.lower(), escape="\\") for e in exprs)
    )


def order(table: sa.Table, q: ListQuery, key: Sequence[str]) -> list[sa.ColumnElement]:
    """The requested column, then the primary key, so pages are stable."""
    direction = sa.desc if q.descending else sa.asc
    first = [direction(table.c[q.order_by])] if q.order_by else []
    return first + [direction(table.c[k]) for k in key if k != q.order_by]


def page(
    table: sa.Table,
    cols: list[sa.Column],
    where: list[sa.ColumnElement],
    q: ListQuery,
    key: Sequence[str],
) -> sa.Select:
    stmt = sa.select(*cols).where(*where).order_by(*order(table, q, key))
    if q.limit is not None:
        stmt = stmt.limit(q.limit).offset(q.skip)
    return stmt


def count(table: sa.Table, where: list[sa.ColumnElement]) -> sa.Select:
    return sa.select(sa.func.count()).select_from(table).where(*where)


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
