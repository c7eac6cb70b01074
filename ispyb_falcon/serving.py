"""Which declared routes a site's database can serve, and the start-up report.

A route is served when its table can be read and it still hangs from a
proposal or a session (API.md section 6) through tables and columns the
database has. What a declaration names and the database lacks is dropped
where the route can live without it (a `?search=` column, one of several
ways a row hangs, a column that names another table's row) and takes the
route out where it cannot (its table, its key, every way it hangs). Each is
one line of the start-up report; a route taken out answers 404 like any
other unknown path, and the rest of the API serves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from .catalog.site import MISSING, Site
from .query.visibility import Me, Via
from .resources.declare import Route


@dataclass
class Fit:
    """What this site serves: routes as adjusted to its database, and what was left out."""

    routes: list[Route]
    hangs: dict[str, object] = field(default_factory=dict)  # every table's ways that still work
    out: dict[str, str] = field(default_factory=dict)  # path -> why it is not served
    notes: list[str] = field(default_factory=list)  # what a served route does without


def fit_routes(
    routes: list[Route], hangs: Mapping[str, object], schemas: Mapping[str, dict], site: Site
) -> Fit:
    """`schemas`: the schemas the server validates with (only the tables it can read)."""
    fit = Fit(routes=[])
    columns = {name: set(s.get("properties", {})) for name, s in schemas.items()}
    reach: dict[str, str | None] = {}

    def why_not(table: str) -> str | None:
        """None when rows of `table` can be served and reached from their proposal or session."""
        if table in reach:
            return reach[table]
        reach[table] = f"{table} hangs from itself"  # a cycle never reaches a root
        reach[table] = _why_not(table)
        return reach[table]

    def _why_not(table: str) -> str | None:
        if table not in schemas:
            reason = site.absent.get(table, MISSING if table not in site.live else None)
            return f"table {table}: {reason}" if reason else f"no JSON Schema for table {table}"
        schema = schemas[table]
        key = schema.get("x-ispyb", {}).get("primaryKey", [])
        if not key or any(k not in columns[table] for k in key):
            return f"table {table} has no primary key the server can use"
        hang = hangs.get(table)
        if not isinstance(hang, tuple):
            return None
        paths = [_link_problem(table, link) for link in hang]
        if all(paths):
            return "; ".join(paths)
        return None

    def _link_problem(table: str, link: Via | Me) -> str | None:
        if link.column not in columns[table]:
            return f"column {table}.{link.column} (how its rows hang) is not in the database"
        if isinstance(link, Me):
            return None
        if (parent := why_not(link.table)) is not None:
            return parent
        if link.parent_key not in columns[link.table]:
            return f"column {link.table}.{link.parent_key} is not in the database"
        return None

    for table, hang in hangs.items():
        if isinstance(hang, tuple) and table in schemas and why_not(table) is None:
            hang = tuple(link for link in hang if _link_problem(table, link) is None)
        fit.hangs[table] = hang
    for route in routes:
        if not route.path:
            continue
        reason = why_not(route.table)
        if reason is None and route.nested:
            n = route.nested
            parent = next((r for r in routes if r.path == n.parent), None)
            lacking = [c for c in (n.column, n.key) if c not in columns[route.table]]
            if lacking:
                reason = f"column {route.table}.{lacking[0]} is not in the database"
            elif parent is None or (reason := why_not(parent.table)) is not None:
                reason = reason or f"its parent route {n.parent} is not served"
        if reason is None and route.author and route.author not in columns[route.table]:
            reason = (
                f"column {route.table}.{route.author} (its rows' author) is not in the database"
            )
        if reason is not None:
            fit.out[route.path] = reason
            continue
        fit.routes.append(_adjusted(route, hangs, fit.hangs, columns[route.table], fit.notes))
    return fit


def _adjusted(route: Route, declared, working, have: set[str], notes: list[str]) -> Route:
    """The declaration without what the database lacks (each left-out part noted)."""
    search = tuple(s for s in route.search if not isinstance(s, str) or s in have)
    for s in route.search:
        if s not in search:
            notes.append(f"{route.path}: ?search= does not look in {route.table}.{s}")
    refers = tuple(v for v in route.refers if v.column in have)
    filters = tuple(f for f in route.filters if set(f.columns) <= have)
    for f in route.filters:
        if f not in filters:
            lacking = next(c for c in f.columns if c not in have)
            notes.append(f"{route.path}: ?{f.name}= (no column {route.table}.{lacking})")
    hang = declared.get(route.table)
    if isinstance(hang, tuple):
        for link in hang:
            if link not in working[route.table]:
                notes.append(
                    f"{route.path}: rows reached only through {route.table}.{link.column}"
                    " are not visible to users"
                )
    return dataclasses.replace(route, search=search, refers=refers, filters=filters)


def report(site: Site, fit: Fit, differences: list[str], tables: int) -> list[str]:
    """The operator's view at start-up: version, what is served, each difference."""
    version = site.version or "not recorded (no AdminVar.schemaVersion)"
    lines = [
        f"database schema version {version}: {tables} tables read,"
        f" {len(fit.routes)} routes served, {len(fit.out)} not served"
    ]
    lines += [f"not served: {path} ({why})" for path, why in sorted(fit.out.items())]
    lines += [f"served without: {note}" for note in fit.notes]
    if differences:
        lines.append(f"{len(differences)} difference(s) between the database and the JSON Schemas:")
        lines += [f"  {d}" for d in differences]
    return lines
