"""Schemathesis hooks that steer contract fuzzing toward rows that exist.

Left to itself, schemathesis names rows with random text and random numbers:
nearly every item request is then a 404 and nearly every body a 422 for a
foreign key that does not exist, so the code behind them (reads, updates,
deletes, inserts, read-backs) is barely reached. These hooks keep part of the
generated values as they are and replace the others with keys of rows that
exist in the fuzzed database (the newest rows of each table: the demo data,
which on MariaDB comes after the official data and its large ids), proposal names
(`mx1001`) and visits (`mx1001-2`). They change values only, never which
parameters are sent, so positive cases stay valid and negative ones invalid.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from hypothesis import strategies as st

from ispyb_falcon.catalog.store import Catalog
from ispyb_falcon.resources import MODULES

ROWS_PER_TABLE = 8
DEMO_NAMES = ("mx1001", "mx1002", "cm2001", "in2002", "mx1001-1", "mx1001-2", "cm2001-1")


def existing_keys(engine: sa.Engine, catalog: Catalog) -> dict[str, list[int]]:
    """Key column name (`proposalId`) -> the newest keys of its table in this database."""
    found: dict[str, list[int]] = {}
    with engine.connect() as conn:
        declared = {r.table for routes in MODULES.values() for r in routes}
        for name in sorted(declared & catalog.tables.keys()):  # lookups have no schema
            key = catalog[name].primary_key
            if len(key) != 1:
                continue
            column = sa.column(key[0])
            stmt = sa.select(column).select_from(sa.table(name)).order_by(column.desc())
            found[key[0]] = list(conn.execute(stmt.limit(ROWS_PER_TABLE)).scalars())
    return found


def _path_columns(catalog: Catalog) -> dict[tuple[str, str], str]:
    """(operation path, path parameter) -> the key column it names."""
    routes = [r for declared in MODULES.values() for r in declared if r.path and r.item]
    by_path = {r.path: r for declared in MODULES.values() for r in declared if r.path}
    columns = {}
    for r in routes:
        if r.nested:
            parent = by_path[r.nested.parent]
            item = f"{r.path}/{{key}}"
            columns[(r.path, "id")] = catalog[parent.table].primary_key[0]
            columns[(item, "id")] = catalog[parent.table].primary_key[0]
            columns[(item, "key")] = r.nested.key
        else:
            columns[(f"{r.path}/{{id}}", "id")] = catalog[r.table].primary_key[0]
    return columns


def install(schema, engine: sa.Engine, catalog: Catalog) -> None:
    """Register the hooks on this schema only (not globally)."""
    keys = existing_keys(engine, catalog)
    path_columns = _path_columns(catalog)

    def steer(column: str | None, value: Any) -> st.SearchStrategy:
        """A key of a row that exists (of the same JSON type) or `value` itself, as often.

        Existing keys come first, so failures shrink toward rows that exist.
        """
        known = keys.get(column or "")
        if isinstance(value, bool) or not known:
            return st.just(value)
        if isinstance(value, int):
            return st.one_of(st.sampled_from(known), st.just(value))
        if isinstance(value, str):
            names = st.sampled_from(DEMO_NAMES)
            return st.one_of(st.sampled_from([str(k) for k in known]), st.just(value), names)
        return st.just(value)

    @schema.hook
    def flatmap_path_parameters(context, path_parameters: dict[str, Any]) -> st.SearchStrategy:
        if not path_parameters:
            return st.just(path_parameters)
        path = context.operation.path
        return st.fixed_dictionaries(
            {k: steer(path_columns.get((path, k)), v) for k, v in path_parameters.items()}
        )

    @schema.hook
    def flatmap_body(context, body: Any) -> st.SearchStrategy:
        """Foreign keys of one object, or of each object of an array."""

        def one(item: Any) -> st.SearchStrategy:
            if not isinstance(item, dict):
                return st.just(item)
            return st.fixed_dictionaries({k: steer(k, v) for k, v in item.items()})

        if isinstance(body, list):
            return st.tuples(*(one(item) for item in body)).map(list)
        return one(body)
