"""SQLAlchemy Core statements for lists, counts and delete checks.

A list's statements depend on the *shape* of the request (which columns,
filters, operators, scopes, and the kind of caller) and not on its values,
which enter as named bind parameters. `ListPlans` builds the statements once
per shape and keeps them, so a request only collects its values: building
and cache-keying a 100-column select with nested visibility subqueries on
every request cost as much as running it.

A plan also keeps its statements compiled for the engine's driver
(`DriverStatement`): the SQL text, the order of its parameters and the type
conversions SQLAlchemy would apply. A page then runs on the DBAPI cursor
directly, which saves SQLAlchemy's per-execution work (a cache lookup, an
execution context, a result object) on the busiest path. Statements that need
per-request SQL keep the SQLAlchemy path.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import visitors

from .. import zero_dates
from . import keyset
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


def served_as_read(type_: sa.types.TypeEngine) -> bool:
    """Whether the driver's value is already the one served, so SQLAlchemy's result
    processor would only cost a call per cell: floats (PyMySQL and SQLite give floats;
    SQLAlchemy calls float() on each) and ENUMs (the stored text; SQLAlchemy looks
    each value up in the enum). A page of 100 data collections has 5,000 such cells."""
    if isinstance(type_, sa.Enum):
        return not type_.enum_class
    return isinstance(type_, sa.Float) and not type_.asdecimal


@dataclass(frozen=True)
class DriverStatement:
    """A statement compiled once for one driver: what SQLAlchemy would send, precomputed."""

    sql: str
    fixed: dict[str, Any]  # values of the statement's own (anonymous) bind parameters
    positions: tuple[str, ...] | None  # parameter order, for positional drivers (qmark)
    binds: tuple[tuple[str, Callable[[Any], Any]], ...]  # per-parameter type conversions
    results: tuple[tuple[int, Callable[[Any], Any]], ...]  # (column index, conversion)
    # Conversions of text values only (zero dates on MariaDB): applied to the rows holding
    # text in one of those columns, and rows without any are served as read.
    texts: tuple[tuple[int, Callable[[Any], Any]], ...] = ()

    @classmethod
    def compile(cls, stmt: sa.Select, dialect: sa.Dialect) -> DriverStatement | None:
        compiled = stmt.compile(dialect=dialect)
        if compiled.post_compile_params or compiled.literal_execute_params:
            return None  # its SQL depends on the values (expanding IN): SQLAlchemy's path
        binds, fixed = {}, {}
        for bind, name in compiled.bind_names.items():
            if bind.unique:
                fixed[name] = bind.effective_value
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                binds[name] = process  # once per name: a value may be used twice in the SQL
        results, texts = [], []
        for i, c in enumerate(stmt.selected_columns):
            if served_as_read(c.type):
                continue
            process = c.type.dialect_impl(dialect).result_processor(dialect, None)
            if process in zero_dates.TEXT_ONLY:
                texts.append((i, process))
            elif process is not None:
                results.append((i, process))
        return cls(
            sql=compiled.string,
            fixed=fixed,
            positions=tuple(compiled.positiontup) if compiled.positional else None,
            binds=tuple(binds.items()),
            results=tuple(results),
            texts=tuple(texts),
        )

    def execute(self, conn: sa.Connection, values: dict[str, Any]) -> Sequence[Sequence]:
        """Every row, on the connection's DBAPI cursor; errors as SQLAlchemy raises them."""
        batches = self.batches(conn, values, None)
        try:
            return next(batches, [])
        finally:
            batches.close()  # closes the cursor

    def batches(
        self, conn: sa.Connection, values: dict[str, Any], size: int | None
    ) -> Iterator[list]:
        """The rows in batches of `size` (None: all at once). With a size, MariaDB sends
        them from a server-side cursor as they are read: constant memory, any number."""
        params = {**self.fixed, **values}
        for name, process in self.binds:
            params[name] = process(params[name])
        args = params if self.positions is None else tuple(params[n] for n in self.positions)
        dbapi = conn.connection  # the pooled DBAPI connection this Connection holds
        cursor = dbapi.cursor(*_server_side(conn) if size else ())
        try:
            cursor.execute(self.sql, args)
            while rows := cursor.fetchmany(size) if size else cursor.fetchall():
                yield self._converted(rows)
                if not size:
                    return
        except conn.dialect.loaded_dbapi.Error as e:
            lost = conn.dialect.is_disconnect(e, dbapi.dbapi_connection, cursor)
            if lost:
                conn.invalidate(e)
            raise sa.exc.DBAPIError.instance(
                self.sql,
                args,
                e,
                conn.dialect.loaded_dbapi.Error,
                connection_invalidated=lost,
                dialect=conn.dialect,
            ) from e
        finally:
            cursor.close()

    def explain(self, conn: sa.Connection, values: dict[str, Any]) -> dict:
        """MariaDB's plan for this statement with these values (EXPLAIN FORMAT=JSON)."""
        explain = dataclasses.replace(
            self, sql="EXPLAIN FORMAT=JSON " + self.sql, results=(), texts=()
        )
        return json.loads(explain.execute(conn, values)[0][0])

    def _converted(self, rows: Sequence[Sequence]) -> Sequence[Sequence]:
        if self.texts:
            rows = self._texts_converted(rows)
        if not self.results:
            return rows
        converted = []
        for r in rows:
            r = list(r)
            for i, process in self.results:
                r[i] = process(r[i])  # SQLAlchemy's processors take None too
            converted.append(r)
        return converted

    def _texts_converted(self, rows: Sequence[Sequence]) -> Sequence[Sequence]:
        """The rows with text in a column of `texts` converted; the others as read.

        A page of 100 data collections has 200 date cells: testing their class costs a
        few microseconds, where calling a conversion on each and copying every row to
        store its result would cost ten times more.
        """
        changed = None
        for n, r in enumerate(rows):
            for i, _ in self.texts:
                if r[i].__class__ is str:
                    if changed is None:
                        changed = list(rows)
                    r = list(r)
                    for j, process in self.texts:
                        r[j] = process(r[j])
                    changed[n] = r
                    break
        return rows if changed is None else changed


def _server_side(conn: sa.Connection) -> tuple:
    """The DBAPI cursor class that streams rows from the server (PyMySQL's SSCursor);
    SQLite's own cursor already reads rows as they are fetched."""
    if conn.dialect.driver == "pymysql":
        import pymysql.cursors

        return (pymysql.cursors.SSCursor,)
    return ()


@dataclass(frozen=True)
class Plan:
    """The statements of one request shape, and where a row's sort values are."""

    page: sa.Select
    count: sa.Select
    names: frozenset[str]  # every bind parameter a request must supply
    sort: tuple[int, ...]  # positions of the sort columns (for the page's `next` cursor)
    driver: tuple[DriverStatement, DriverStatement] | None = None  # (page, count) if compiled

    def rows(self, conn: sa.Connection, values: dict[str, Any]) -> Sequence[Sequence]:
        if self.driver is not None:
            return self.driver[0].execute(conn, values)
        return [tuple(r) for r in conn.execute(self.page, values)]

    def batches(self, conn: sa.Connection, values: dict[str, Any], size: int) -> Iterator[list]:
        """Every row of the page statement (an export's), streamed in batches."""
        if self.driver is not None:
            yield from self.driver[0].batches(conn, values, size)
            return
        streamed = conn.execution_options(stream_results=True, max_row_buffer=size)
        with streamed.execute(self.page, values) as result:
            for part in result.partitions(size):
                yield [tuple(r) for r in part]

    def total(self, conn: sa.Connection, values: dict[str, Any]) -> int:
        if self.driver is not None:
            return self.driver[1].execute(conn, values)[0][0]
        return conn.execute(self.count, values).scalar_one()

    def estimate(self, conn: sa.Connection, values: dict[str, Any]) -> int:
        """The optimizer's estimate of the total (MariaDB); the exact count elsewhere."""
        if self.driver is None or conn.dialect.name not in ("mysql", "mariadb"):
            return self.total(conn, values)
        return planned_rows(self.driver[1].explain(conn, values)["query_block"])


def planned_rows(block: dict) -> int:
    """Rows a MariaDB query block is expected to produce: the product, over the tables
    it joins, of the rows each is expected to read times the share its conditions keep."""
    tables = [step["table"] for step in block.get("nested_loop", []) if "table" in step]
    if "table" in block:
        tables.append(block["table"])
    estimate = 1.0
    for t in tables:
        estimate *= t.get("rows", 1) * t.get("filtered", 100) / 100
    return round(estimate) if tables else 0


def ordering_not_by_index(table: sa.Table, column: str) -> str:
    """A MariaDB hint: find the rows by the filters' indexes, then sort them, rather than
    read the sort column's index in order and test each row against the filters.

    For a page of a few rows of a big table (the images of one collection sorted by
    imageNumber), MariaDB's estimate of the ordered scan assumes the collection's rows
    are spread evenly through the index; numbered from 1 in every collection, they are
    not, and the scan reads the whole index. The indexes starting with the sort
    column are still used to filter.
    """
    names = sorted(
        ix.name for ix in table.indexes if ix.name and next(iter(ix.columns)).name == column
    )
    return f"IGNORE INDEX FOR ORDER BY ({', '.join(names)})" if names else ""


def named_binds(*statements: sa.Select) -> frozenset[str]:
    """The named (non-anonymous) bind parameters: the values a request supplies."""
    return frozenset(
        b.key
        for stmt in statements
        for b in visitors.iterate(stmt)
        if isinstance(b, sa.BindParameter) and not b.unique
    )


class ListPlans:
    """Page and count statements of one table, built once per request shape.

    A page is chosen by its keys first: an inner statement orders and limits
    only the primary key (on the narrow index path the filters and visibility
    drive), and the wide rows are joined back for that page alone. Sorting
    every row of a 20,000-collection visit at full width would cost MariaDB a
    filesort of 103 columns; sorting their keys costs a few milliseconds.
    With `window`, the inner statement also counts the rows it sorted
    (`COUNT(*) OVER ()`, the last column of every row), so a first page and its
    total are one pass over the index: the caller decides where that pays (a
    visit's or a proposal's rows, rows only some may see), and where a plain
    count is cheaper (every row of a table: the window would sort them all,
    where the page alone reads the first keys of the index and stops).
    Exports (no limit) stream every row in order and need no inner statement.

    With `embed` (resources/embeds.py: a request's `?embed=`), the outer statement
    reads the row's table under an alias, `row`, joins the page's keys (all the
    keys, for an export) and then the embedded parents, and selects the counts:
    each of them for the page's rows only. The embeddings' columns follow the row's
    own (and its sort columns), before the window count.
    """

    def __init__(
        self,
        table: sa.Table,
        key: Sequence[str],
        dialect: sa.Dialect | None = None,
        size: int = 512,
    ) -> None:
        self.table = table
        self.key = tuple(key)
        self.dialect = dialect  # compile plans for this driver (None: SQLAlchemy executes)
        self.size = size
        self._plans: OrderedDict[tuple, Plan] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self,
        shape: tuple,
        build: Callable[[], tuple],
    ) -> Plan:
        plan = self._plans.get(shape)  # one C-level dict operation: no lock needed to read
        if plan is not None:
            with contextlib.suppress(KeyError):  # evicted meanwhile by another thread: fine
                self._plans.move_to_end(shape)
            return plan
        plan = self._build(*build())
        with self._lock:
            self._plans[shape] = plan
            if len(self._plans) > self.size:
                self._plans.popitem(last=False)
        return plan

    def _build(
        self,
        cols: list[str],
        where: list[sa.ColumnElement],
        q: ListQuery,
        window: bool,
        narrowed: bool,
        embed: Callable[[sa.Table], tuple[list, Callable]] | None = None,
    ) -> Plan:
        t = self.table
        sort = keyset.sort_columns(q.order_by, self.key)
        selected = list(cols) + [c for c in sort if c not in cols]
        ordering = order(t, q, self.key)
        chosen = list(where)
        if q.after is not None:
            chosen.append(keyset.after(t, sort, q.descending, [v is None for v in q.after]))
        if embed is not None:
            page = self._embedded(selected, chosen, ordering, q, window, narrowed, embed)
        elif q.limit is None:
            page = sa.select(*columns(t, selected)).where(*chosen).order_by(*ordering)
        else:
            counted = [sa.func.count().over().label("total")] if window else []
            keys = sa.select(*columns(t, self.key), *counted)
            hint = ordering_not_by_index(t, q.order_by) if narrowed and q.order_by else ""
            if hint:
                keys = keys.with_hint(t, hint, "mysql")
            keys = (
                keys.where(*chosen)
                .order_by(*ordering)
                .limit(sa.bindparam("limit", type_=sa.Integer))
                .offset(sa.bindparam("offset", type_=sa.Integer))
                .subquery("page")
            )
            on = sa.and_(*(t.c[k] == keys.c[k] for k in self.key))
            total = [keys.c.total] if counted else []
            page = (
                sa.select(*columns(t, selected), *total).join_from(t, keys, on).order_by(*ordering)
            )
        count = sa.select(sa.func.count()).select_from(t).where(*where)
        driver = None
        if self.dialect is not None:
            compiled = (
                DriverStatement.compile(page, self.dialect),
                DriverStatement.compile(count, self.dialect),
            )
            driver = compiled if None not in compiled else None
        return Plan(
            page,
            count,
            named_binds(page, count),
            tuple(selected.index(c) for c in sort),
            driver,
        )

    def _embedded(
        self,
        selected: list[str],
        chosen: list[sa.ColumnElement],
        ordering: list[sa.ColumnElement],
        q: ListQuery,
        window: bool,
        narrowed: bool,
        embed: Callable[[sa.Table], tuple[list, Callable]],
    ) -> sa.Select:
        """The page statement with `?embed=` (see the class): keys first, then joins."""
        t = self.table
        keys = sa.select(*columns(t, self.key)).where(*chosen)
        total = []
        if q.limit is not None:
            if window:
                keys = keys.add_columns(sa.func.count().over().label("total"))
            hint = ordering_not_by_index(t, q.order_by) if narrowed and q.order_by else ""
            if hint:
                keys = keys.with_hint(t, hint, "mysql")
            keys = (
                keys.order_by(*ordering)
                .limit(sa.bindparam("limit", type_=sa.Integer))
                .offset(sa.bindparam("offset", type_=sa.Integer))
            )
        else:
            keys = keys.limit(EVERY_ROW)  # its own statement: see EVERY_ROW
        keys = keys.subquery("page")
        if q.limit is not None and window:
            total = [keys.c.total]
        row = t.alias("row")
        extra, join = embed(row)
        on = sa.and_(*(row.c[k] == keys.c[k] for k in self.key))
        return (
            sa.select(*columns(row, selected), *extra, *total)
            .select_from(join(sa.join(row, keys, on)))
            .order_by(*order(row, q, self.key))
        )


# The limit of the keys of an export with `?embed=`: every row, and a derived table MariaDB
# reads on its own rather than merging it into the statement around it. Merged, the
# visibility tests of the rows (EXISTS, which MariaDB turns into semi-joins) and those of
# a parent in its LEFT JOIN's condition meet in one statement, where MariaDB 10.11 loses
# the parents the caller may see (tests/test_embed.py).
EVERY_ROW = 2**62


def bind_values(plan: Plan, values: dict[str, Any]) -> dict[str, Any]:
    """The values for a cached plan; a missing one would run with another request's value."""
    missing = plan.names - values.keys()
    if missing:
        raise RuntimeError(f"unbound parameters {sorted(missing)}")
    return values


def references(
    referenced_by: Sequence[dict], present: set[str], row: dict
) -> list[tuple[dict, sa.Select]]:
    """For every table that refers to this row, a statement counting how many rows do.

    One statement per table, so that a delete can read each with a share lock
    (MariaDB takes no lock inside a scalar subquery).
    """
    found = []
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
        found.append((ref, sa.select(sa.func.count()).select_from(ref_table).where(match)))
    return found
