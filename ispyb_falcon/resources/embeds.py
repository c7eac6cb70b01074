"""`?embed=`: related rows in the same statement as the rows (API.md section 8).

A route declares what it can embed (`Parent`, `Count` in declare.py); this module
turns the names a request asks for into SQL added to the row's own statement:

- a parent is LEFT JOINed by its primary key, hop by hop, with the caller's
  visibility predicate for the parent's table in the last join's condition: a
  parent the caller may not see joins nothing, and is served as `null`;
- a count is a correlated subquery over the child rows the caller may see
  (the child table's own visibility predicate, unless the path to the row makes
  it the row's own, which the caller sees), so a count never reveals rows.

The row's table is aliased (`row`) in such a statement, and so is every table the
joins and counts name: the visibility predicates' subqueries name the base tables,
which must not correlate with the statement's own FROM. A list still chooses its
page by its keys first (statements.ListPlans): the joins and counts run for the
page's rows only. Without `embed=` nothing here runs, and the SQL is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from .. import serialize
from ..catalog.store import Catalog
from ..query.visibility import Resolver, Root
from .declare import Count, Embed, Parent, Route

# What the caller may see, for the parents and children: the caller's proposals and
# sessions as one set (visibility.VisibleRoot with per_row False), not correlated EXISTS
# tests. Those, turned into semi-joins in a LEFT JOIN's condition, make MariaDB 10.11
# lose parents the caller may see (a data collection's group, an image's collection).
PER_ROW = False


@dataclass(frozen=True)
class Served:
    """An embedding as this site serves it: the parent's columns (none for a count)."""

    decl: Embed
    columns: tuple[str, ...] = ()
    key: str = ""

    @property
    def name(self) -> str:
        return self.decl.name

    @property
    def is_count(self) -> bool:
        return isinstance(self.decl, Count)


def _tables_of(e: Embed) -> list[str]:
    hops = [v.table for v in e.path]
    return hops + [e.table] if isinstance(e, Count) else hops


def fitted(route: Route, tables: Mapping[str, sa.Table], served: Iterable[str]) -> Route:
    """The route with the embeddings this site can serve: every table on the way
    reflected, every column there, and the embedded (or counted) table served."""
    served = set(served)
    keep = []
    for e in route.embeds:
        names = _tables_of(e)
        if not all(n in tables for n in names) or e.table not in served:
            continue
        here = route.table if isinstance(e, Parent) else e.table
        ok = True
        for via in e.path:
            if via.column not in tables[here].c or via.parent_key not in tables[via.table].c:
                ok = False
                break
            here = via.table
        if ok:
            keep.append(e)
    return replace(route, embeds=tuple(keep))


def serving(route: Route, tables: Mapping[str, sa.Table], catalog: Catalog) -> dict[str, Served]:
    """The route's embeddings by name, with the columns each parent is served with
    (as its own route serves them: the schema's columns, blobs left out)."""
    found = {}
    for e in route.embeds:
        if isinstance(e, Count):
            found[e.name] = Served(e)
            continue
        schema = catalog[e.table]
        cols = tuple(
            c.name
            for c in tables[e.table].columns
            if c.name in schema.columns and c.name not in schema.blobs
        )
        found[e.name] = Served(e, cols, schema.primary_key[0])
    return found


@dataclass(frozen=True)
class Layout:
    """Where each embedding's values are in a row: after the row's own columns
    (`offset`), a parent as its key (null: no row, or one the caller may not see)
    then its columns, a count as one value."""

    parts: tuple[tuple[str, tuple[str, ...] | None], ...]  # (name, columns; None: a count)
    offset: int

    def nest(self, cols: Sequence[str], r: Sequence[Any]) -> dict[str, Any]:
        out = dict(zip(cols, r, strict=False))
        i = self.offset
        for name, columns in self.parts:
            if columns is None:
                out[name] = r[i]
                i += 1
                continue
            out[name] = None if r[i] is None else dict(zip(columns, r[i + 1 :], strict=False))
            i += 1 + len(columns)
        return out

    def flat_keys(self, cols: Sequence[str]) -> list[str]:
        keys = list(cols)
        for name, columns in self.parts:
            keys += [name] if columns is None else [f"{name}.{c}" for c in columns]
        return keys

    def flat(self, cols: Sequence[str], r: Sequence[Any]) -> list[Any]:
        values = list(r[: len(cols)])
        i = self.offset
        for _, columns in self.parts:
            if columns is None:
                values.append(r[i])
                i += 1
            else:
                values += r[i + 1 : i + 1 + len(columns)]
                i += 1 + len(columns)
        return values

    def flat_positions(self, cols: Sequence[str]) -> list[int]:
        """The statement's column position of each value of `flat`."""
        positions = list(range(len(cols)))
        i = self.offset
        for _, columns in self.parts:
            if columns is None:
                positions.append(i)
                i += 1
            else:
                positions += range(i + 1, i + 1 + len(columns))
                i += 1 + len(columns)
        return positions


def layout(chosen: Sequence[Served], fields: Mapping[str, Sequence[str]], offset: int) -> Layout:
    parts = tuple(
        (s.name, None if s.is_count else tuple(fields.get(s.name) or s.columns)) for s in chosen
    )
    return Layout(parts, offset)


class Embedder:
    """The SQL of the embeddings one request shape asks for, against the row alias."""

    def __init__(
        self,
        tables: Mapping[str, sa.Table],
        resolver: Resolver,
        chosen: Sequence[Served],
        fields: Mapping[str, Sequence[str]],
        root: Root,
        row_table: str,
    ) -> None:
        # An OR of each path's lookups where a table hangs by several (a sample), not the
        # UNION a list is driven from: here the rows are known, and only tested.
        self.resolver = Resolver(resolver.tables, resolver.hangs)
        self.tables = tables
        self.chosen = chosen
        self.fields = fields
        self.root = root
        self.row_table = row_table

    def __call__(self, row: sa.Table) -> tuple[list[sa.ColumnElement], Callable]:
        """(the columns to select after the row's own, a function adding the joins)."""
        selected: list[sa.ColumnElement] = []
        joins: list[tuple[sa.Table, sa.ColumnElement]] = []
        for n, s in enumerate(self.chosen):
            if s.is_count:
                selected.append(self._count(n, s.decl, row))
                continue
            here = row
            path = s.decl.path
            for i, via in enumerate(path):
                alias = self.tables[via.table].alias(f"embed{n}_{i}")
                on = alias.c[via.parent_key] == here.c[via.column]
                if i == len(path) - 1:
                    pred = self.resolver.predicate(via.table, self.root, alias)
                    if pred is not None:
                        on = sa.and_(on, pred)
                joins.append((alias, on))
                here = alias
            cols = self.fields.get(s.name) or s.columns
            selected.append(here.c[s.key].label(f"embed{n}_key"))
            selected += [here.c[c].label(f"embed{n}_{c}") for c in cols]

        def join(frm):
            for alias, on in joins:
                frm = frm.outerjoin(alias, on)
            return frm

        return selected, join

    def _count(self, n: int, decl: Count, row: sa.Table) -> sa.ColumnElement:
        child = self.tables[decl.table].alias(f"count{n}")
        stmt = sa.select(sa.func.count()).select_from(child)
        here = child
        for i, via in enumerate(decl.path):
            if i == len(decl.path) - 1:
                stmt = stmt.where(here.c[via.column] == row.c[via.parent_key])
            else:
                hop = self.tables[via.table].alias(f"count{n}_{i}")
                stmt = stmt.join(hop, hop.c[via.parent_key] == here.c[via.column])
                here = hop
        if not self._own_rows(decl):
            pred = self.resolver.predicate(decl.table, self.root, child)
            if pred is not None:
                stmt = stmt.where(pred)
        return stmt.correlate(row).scalar_subquery().label(f"count{n}")

    def _own_rows(self, decl: Count) -> bool:
        """Whether every counted row hangs only by this path from the row: then the
        caller sees them all, since the statement serves only rows the caller sees."""
        here = decl.table
        for via in decl.path:
            if self.resolver.hangs.get(here) != (via,):
                return False
            here = via.table
        return here == self.row_table

    def item(self, table: sa.Table, key: Sequence[str], cols: Sequence[str], where: list):
        """One row's statement: its key found by `where` (with visibility), then the
        row and its embeddings joined to it."""
        # LIMIT: a derived table of its own (statements.EVERY_ROW says why); one row anyway.
        keys = sa.select(*(table.c[k] for k in key)).where(*where).limit(1).subquery("page")
        row = table.alias("row")
        extra, join = self(row)
        on = sa.and_(*(row.c[k] == keys.c[k] for k in key))
        return sa.select(*(row.c[c] for c in cols), *extra).select_from(
            join(sa.join(row, keys, on))
        )


def ndjson_stream(batches, cols: Sequence[str], shape: Layout) -> Iterator[bytes]:
    """One JSON object per line, the embeddings nested as in a page."""
    for rows in batches:
        yield "".join(serialize.dumps(shape.nest(cols, r)) + "\n" for r in rows).encode()


def flat_batches(batches, cols: Sequence[str], shape: Layout) -> Iterator[list]:
    """CSV's rows: an embedded parent's columns flattened (`sample.name`), a count as one."""
    for rows in batches:
        yield [shape.flat(cols, r) for r in rows]
