"""The generic collection/item pair that serves every declared route.

A `Route` (declare.py) says what differs between tables; these classes do the
rest the same way for all of them. `Resource` holds what reading and writing
share (the table, its scopes, finding a row the caller may see); the read
path lives in `reads.py`, the write path in `writes.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from .. import serialize
from ..auth.principal import SERVICE_ROLES, Principal
from ..catalog.store import Catalog
from ..errors import not_found
from ..query import statements
from ..query.visibility import (
    NotApplicable,
    ProposalRoot,
    Resolver,
    Root,
    SessionRoot,
    Via,
    VisibleRoot,
)
from . import embeds
from .declare import Route
from .ids import SCOPES, integer
from .reads import ItemReads, ListReads
from .writes import Changes, Creates

ANY = frozenset({"*"})  # any signed-in caller


@dataclass
class Backend:
    """The collaborators every resource shares, wired once by the app factory."""

    engine: sa.Engine
    tables: Mapping[str, sa.Table]
    catalog: Catalog
    resolver: Resolver
    present: frozenset[str]
    prefix: str
    default_limit: int
    max_limit: int
    max_body_bytes: int
    members_see_all_sessions: bool
    beamline_groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def read_root(self, p: Principal, per_row: bool = True) -> VisibleRoot:
        """What the caller may read (`per_row`: see VisibleRoot; False for lists that name
        no visit, proposal or parent)."""
        return VisibleRoot(p, self.members_see_all_sessions, per_row=per_row)

    def write_root(self, p: Principal, route: Route) -> VisibleRoot:
        """Users write only in open proposals; admins and services where they can see;
        everyone writes authored rows (comments) where they can see."""
        if route.author:
            return self.read_root(p)
        service = bool(p.roles & SERVICE_ROLES & route.writers)
        return VisibleRoot(p, self.members_see_all_sessions, writable=not (p.is_admin or service))


class Resource:
    """What the collection and item classes of one route share."""

    def __init__(self, backend: Backend, route: Route, parent: Route | None = None) -> None:
        self.b = backend
        self.route = route
        self.parent = parent
        self.table = backend.tables[route.table]
        self.schema = backend.catalog[route.table]
        self.key = self.schema.primary_key
        self.columns = [
            c.name
            for c in self.table.columns
            if c.name in self.schema.columns and c.name not in self.schema.blobs
        ]
        roles = set(route.writers) | {"admin"}
        if "user" in roles:
            roles.add("manager")
        self.write_roles = frozenset(roles)
        self.scopes = self._scopes()
        self.plans = statements.ListPlans(self.table, self.key, backend.engine.dialect)
        self.embeds = embeds.serving(route, backend.tables, backend.catalog)
        # What `?embed=` may name, with each parent's columns (None: a count).
        self.embed_names = {n: (None if s.is_count else s.columns) for n, s in self.embeds.items()}
        self.hang_columns = {
            v.column
            for v in (route.hangs if isinstance(route.hangs, tuple) else ())
            if isinstance(v, Via)
        }

    def _scopes(self) -> tuple[str, ...]:
        """The convenience filters this table can honour (?proposal=, ?session=)."""
        found = []
        for name in SCOPES:
            try:
                self.b.resolver.predicate(
                    self.route.table, self.scope_root(name, ("id", {"id": 0}))
                )
            except NotApplicable:
                continue
            found.append(name)
        return tuple(found)

    def scope_root(self, name: str, parsed) -> Root:
        """The root that reaches the rows below one proposal or session (values as binds)."""
        where = SCOPES[name][1]
        shape = (name, parsed[0])
        if name == "proposal":
            return ProposalRoot(lambda _t: where(self.b.tables, parsed, "scope_proposal"), shape)
        return SessionRoot(lambda _t: where(self.b.tables, parsed, "scope_session"), shape)

    def visible(self, p: Principal, root: Root | None = None) -> list[sa.ColumnElement]:
        pred = self.b.resolver.predicate(self.route.table, root or self.b.read_root(p))
        return [] if pred is None else [pred]

    def parent_key(self, conn: sa.Connection, p: Principal, text: str) -> Any:
        """The parent row's key for a nested route, if the caller may see the parent."""
        parent_table = self.b.tables[self.parent.table]
        key = parent_table.c[self.b.catalog[self.parent.table].primary_key[0]]
        if self.parent.match:
            where = self.parent.match(self.b.tables, text)
        else:  # a parent known by its integer key alone (a data collection)
            value = integer(text)
            where = None if value is None else key == value
        if where is None:
            raise not_found()
        pred = self.b.resolver.predicate(self.parent.table, self.b.read_root(p))
        stmt = sa.select(key).where(where, *([] if pred is None else [pred]))
        row = conn.execute(stmt).first()
        if row is None:
            raise not_found()
        return row[0]

    def row_where(self, conn: sa.Connection, p: Principal, path: dict) -> list[sa.ColumnElement]:
        """The item named by the path (id, name or nested key), or 404."""
        text = path["id"]
        if self.route.nested:
            n = self.route.nested
            value = integer(path["key"])
            if value is None:
                raise not_found()
            parent = self.parent_key(conn, p, text)
            return [self.table.c[n.column] == parent, self.table.c[n.key] == value]
        if self.route.match:
            where = self.route.match(self.b.tables, text)
        else:
            value = integer(text)
            where = None if value is None else self.table.c[self.key[0]] == value
        if where is None:
            raise not_found()
        return [where]

    def fetch(
        self, conn: sa.Connection, where: list, p: Principal | None, *, lock: bool = False
    ) -> dict | None:
        """The row, if `p` may see it (any row with None).

        `lock`: the row as it is now rather than as the transaction first saw it,
        locked until the transaction ends (`FOR UPDATE`; SQLite's write
        transactions hold the whole database already).
        """
        stmt = sa.select(*statements.columns(self.table, self.columns)).where(*where)
        if p is not None:
            stmt = stmt.where(*self.visible(p))
        if lock:
            stmt = stmt.with_for_update()
        row = conn.execute(stmt).mappings().first()
        return None if row is None else serialize.row(row, self.columns)

    def location(self, row: dict, path: dict) -> str:
        if self.route.nested:
            base = self.route.path.replace("{id}", path["id"])
            return f"{self.b.prefix}{base}/{row[self.route.nested.key]}"
        return f"{self.b.prefix}{self.route.path}/{row[self.key[0]]}"

    def key_where(self, row: dict) -> list[sa.ColumnElement]:
        return [self.table.c[k] == row[k] for k in self.key]


class Collection(ListReads, Creates, Resource):
    """`GET` a filtered page (or an export), `POST` one row or an array of rows."""

    @property
    def needs(self) -> dict[str, frozenset[str]]:
        # Authored rows (comments): whoever may see the parent adds them (a 404 otherwise).
        return {"GET": ANY, "POST": ANY if self.route.author else self.write_roles}


class Item(ItemReads, Changes, Resource):
    """`GET`, `PATCH`, `PUT`, `DELETE` one row the caller may see (else 404)."""

    @property
    def needs(self) -> dict[str, frozenset[str]]:
        # Roles are checked after the row is found, so an invisible row is a 404, not a 403.
        return {"GET": ANY, "PATCH": ANY, "PUT": ANY, "DELETE": ANY}
