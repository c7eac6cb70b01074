"""The generic collection/item pair that serves every declared route.

A `Route` (declare.py) says what differs between tables; these classes do the
rest the same way for all of them: parse the query, add the caller's
visibility predicate, validate bodies with the compiled schema, check foreign
keys against what the caller may see, write in one transaction, read back.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import falcon
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from .. import db, serialize
from ..auth.principal import SERVICE_ROLES, Principal
from ..catalog.store import Catalog
from ..errors import (
    ApiError,
    bad_request,
    conflict,
    forbidden,
    is_connection_error,
    not_found,
    unprocessable,
)
from ..query import statements
from ..query.params import ListQuery, parse_list_query
from ..query.visibility import (
    AllOf,
    NotApplicable,
    ProposalRoot,
    Resolver,
    Root,
    SessionRoot,
    Via,
    VisibleRoot,
)
from . import ids
from .declare import Route
from .ids import SCOPES, integer

ANY = frozenset({"*"})  # any signed-in caller
EXPORTS = {"text/csv": serialize.csv_stream, "application/x-ndjson": serialize.ndjson_stream}
MAX_BULK = 1000


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

    def read_root(self, p: Principal) -> VisibleRoot:
        return VisibleRoot(p, self.members_see_all_sessions)

    def write_root(self, p: Principal, route: Route) -> VisibleRoot:
        """Users write only in open proposals; admins and services where they can see."""
        service = bool(p.roles & SERVICE_ROLES & route.writers)
        return VisibleRoot(p, self.members_see_all_sessions, writable=not (p.is_admin or service))


def principal(req: falcon.Request) -> Principal:
    return req.context.principal


def read_json(req: falcon.Request, limit: int) -> Any:
    """The body as JSON: 415 if it is not JSON, 413 if too large, 400 if malformed."""
    ctype = (req.content_type or "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise ApiError(falcon.HTTP_415, "The request body must be application/json.")
    if req.content_length is not None and req.content_length > limit:
        raise ApiError(falcon.HTTP_413, f"The request body exceeds {limit} bytes.")
    raw = req.bounded_stream.read(limit + 1)
    if len(raw) > limit:
        raise ApiError(falcon.HTTP_413, f"The request body exceeds {limit} bytes.")
    try:
        # NaN/Infinity (and 1e999) become floats here and a 422 with their path at validation.
        return json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}") from None


def etag_of_text(text: str) -> str:
    """The entity tag of a JSON body, from the text that is sent (serialized once)."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def etag_of(data: Any) -> str:
    return etag_of_text(serialize.dumps(data))


def matches(tags: list | None, etag: str) -> bool:
    """Whether an If-Match / If-None-Match list names this entity tag (or is `*`)."""
    return any(str(t) in ("*", etag) for t in tags or ())


@contextlib.contextmanager
def database_refusals() -> Iterator[None]:
    """Around a write: what the database refuses becomes a 409 or a 422, never a 500."""
    try:
        yield
    except (sa_exc.IntegrityError, sa_exc.DataError) as exc:
        raise integrity_error(exc) from None
    except sa_exc.OperationalError as exc:
        if is_connection_error(exc) or _code(exc) not in REFUSALS:
            raise
        raise integrity_error(exc) from None


# MariaDB errors that refuse a value rather than signal an outage: CHECK constraint
# (e.g. json_valid on `extra` columns), out of range, truncated, bad string for the charset.
REFUSALS = {4025, 3819, 1264, 1265, 1292, 1366, 1406}


def _code(exc: sa_exc.DBAPIError) -> int | None:
    orig = getattr(exc, "orig", None)
    return (
        orig.args[0] if orig is not None and orig.args and isinstance(orig.args[0], int) else None
    )


def integrity_error(exc: sa_exc.DBAPIError) -> ApiError:
    """What the database refused, said in the API's terms (never a 500)."""
    orig = getattr(exc, "orig", None)
    code = _code(exc)
    text = str(orig) if orig is not None else str(exc)
    if code == 1062 or "UNIQUE constraint failed" in text:
        return conflict("A row with the same unique key already exists.", detail=_short(text))
    if code in (1451,) or ("FOREIGN KEY" in text and "delete" in text.lower()):
        return conflict("Other rows refer to this row.", detail=_short(text))
    return unprocessable(
        "The database refused the values.", [{"path": "$", "message": _short(text)}]
    )


def _short(text: str) -> str:
    return text.split("\n")[0][:300]


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
        self.hang_columns = {
            v.column
            for v in (route.hangs if isinstance(route.hangs, tuple) else ())
            if isinstance(v, Via)
        }

    # --- reading ---------------------------------------------------------------

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
        where = self.parent.match(self.b.tables, text) if self.parent.match else None
        if where is None:
            raise not_found()
        key = parent_table.c[self.b.catalog[self.parent.table].primary_key[0]]
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

    def fetch(self, conn: sa.Connection, where: list, p: Principal) -> dict | None:
        stmt = sa.select(*statements.columns(self.table, self.columns)).where(
            *where, *self.visible(p)
        )
        row = conn.execute(stmt).mappings().first()
        return None if row is None else serialize.row(row, self.columns)

    def location(self, row: dict, path: dict) -> str:
        if self.route.nested:
            base = self.route.path.replace("{id}", path["id"])
            return f"{self.b.prefix}{base}/{row[self.route.nested.key]}"
        return f"{self.b.prefix}{self.route.path}/{row[self.key[0]]}"

    # --- writing ---------------------------------------------------------------

    def check_body(self, body: Any, path_values: dict, *, partial: bool, where: str = "$"):
        """Validate + convert one object; the path's own keys may not be changed by it."""
        errors = []
        if isinstance(body, dict):
            for column, value in path_values.items():
                if column in body and body[column] != value:
                    errors.append(
                        {"path": f"{where}.{column}", "message": "is set by the URL path"}
                    )
            body = (
                {**body, **path_values}
                if not partial
                else {k: v for k, v in body.items() if k not in path_values}
            )
        values, more = self.schema.check(body, partial=partial, path=where)
        return values, errors + more

    def check_foreign_keys(
        self, conn: sa.Connection, p: Principal, rows: list[tuple[str, dict]]
    ) -> list[dict]:
        """A key naming a row that does not exist or that the caller may not see is a 422."""
        errors = []
        for fk in self.schema.foreign_keys:
            if len(fk["columns"]) != 1:
                continue
            column, ref, ref_col = (
                fk["columns"][0],
                fk["references"]["table"],
                fk["references"]["columns"][0],
            )
            wanted = {values[column] for _, values in rows if values.get(column) is not None}
            if not wanted:
                continue
            found = self._existing(conn, p, column, ref, ref_col, wanted)
            for where, values in rows:
                if values.get(column) is not None and values[column] not in found:
                    errors.append(
                        {
                            "path": f"{where}.{column}",
                            "message": f"no {ref} with {ref_col} = {values[column]!r} that you may use",
                        }
                    )
        return errors

    def _existing(self, conn, p, column, ref, ref_col, wanted) -> set:
        if ref in self.b.tables and ref in self.b.resolver.hangs:
            table = self.b.tables[ref]
            root = (
                self.b.write_root(p, self.route)
                if column in self.hang_columns
                else self.b.read_root(p)
            )
            pred = self.b.resolver.predicate(ref, root)
        elif ref not in self.b.present:
            return set()
        elif p.sees_all or p.roles & SERVICE_ROLES & self.route.writers:
            table, pred = sa.table(ref, sa.column(ref_col)), None
        else:
            # A table that hangs from nothing (a diffraction plan, a motor position): a user
            # may name only rows that rows they can see already name, never another's.
            table, ref_col = self.table, column
            pred = self.b.resolver.predicate(self.route.table, self.b.read_root(p))
        stmt = sa.select(table.c[ref_col]).where(table.c[ref_col].in_(sorted(wanted)))
        if pred is not None:
            stmt = stmt.where(pred)
        return {r[0] for r in conn.execute(stmt)}

    def in_write_scope(self, conn: sa.Connection, p: Principal, where: list) -> bool:
        pred = self.b.resolver.predicate(self.route.table, self.b.write_root(p, self.route))
        stmt = sa.select(sa.literal(1)).select_from(self.table).where(*where)
        if pred is not None:
            stmt = stmt.where(pred)
        return conn.execute(stmt).first() is not None

    def scope_hint(self) -> str:
        if self.hang_columns:
            return "set a parent you may write to: " + ", ".join(sorted(self.hang_columns))
        return "this row would be outside the proposals and sessions you may write to"

    def key_where(self, row: dict) -> list[sa.ColumnElement]:
        return [self.table.c[k] == row[k] for k in self.key]


class Collection(Resource):
    """`GET` a filtered page (or an export), `POST` one row or an array of rows."""

    @property
    def needs(self) -> dict[str, frozenset[str]]:
        return {"GET": ANY, "POST": self.write_roles}

    def on_get(self, req: falcon.Request, resp: falcon.Response, **path: str) -> None:
        p = principal(req)
        export = next((kind for kind in EXPORTS if kind in (req.accept or "")), None)
        paged = export is None or "limit" in req.params or "skip" in req.params
        q = parse_list_query(
            req.params,
            self.schema,
            default_limit=self.b.default_limit,
            max_limit=self.b.max_limit,
            scopes=self.scopes,
            paged=paged,
        )
        if q.search is not None and not self.route.search:
            raise bad_request(f"{self.route.path} has no text columns to search", "search")
        cols = q.fields or self.columns
        root = self.b.read_root(p)
        scopes = {name: self.parse_scope(name, text) for name, text in q.scopes.items()}
        shape = (q.shape, root.shape, tuple((n, parsed[0]) for n, parsed in scopes.items()))
        plan = self.plans.get(shape, lambda: (cols, self.where(q, root, scopes), q))
        with self.b.engine.connect() as conn:
            values = statements.bind_values(plan, self.values(conn, p, q, root, scopes, path))
            if export:
                return self.export(req, resp, plan.page, values, cols, export)
            rows = plan.rows(conn, values)
            total = plan.total(conn, values)
        req.context.rows = len(rows)
        text = serialize.dumps(
            {
                "total": total,
                "skip": q.skip,
                "limit": q.limit,
                "results": [dict(zip(cols, r, strict=True)) for r in rows],
            }
        )
        resp.etag = tag = etag_of_text(text)
        if matches(req.if_none_match, tag):
            resp.status = falcon.HTTP_304
            return
        resp.text = text

    def parse_scope(self, name: str, text: str):
        parsed = SCOPES[name][0](text)
        if parsed is None:
            raise bad_request(f"{name}: {text!r} is not a {name} id or name", name)
        return parsed

    def where(self, q: ListQuery, root: Root, scopes: dict) -> list[sa.ColumnElement]:
        """The list's predicates for this shape, every value a named bind parameter."""
        if scopes:  # what the caller may see and below the ?proposal= / ?session= given
            scoped = [self.scope_root(name, parsed) for name, parsed in scopes.items()]
            root = AllOf((root, *scoped))
        where = self.visible(None, root)
        for i, c in enumerate(q.conditions):
            op = c.operator
            bind = (
                c.value
                if op.boolean
                else sa.bindparam(f"f{i}", c.bound(), expanding=c.shape[2] is True and op.many)
            )
            where.append(op.build(self.table.c[c.column], bind))
        if self.route.nested:
            where.append(self.table.c[self.route.nested.column] == sa.bindparam("parent"))
        if q.search is not None:
            where.append(statements.search(self.table, self.route.search, sa.bindparam("search")))
        return where

    def values(
        self, conn, p: Principal, q: ListQuery, root: Root, scopes: dict, path: dict
    ) -> dict:
        """This request's values for the plan's bind parameters."""
        values = dict(root.params())
        values.update(
            (f"f{i}", c.bound()) for i, c in enumerate(q.conditions) if not c.operator.boolean
        )
        if self.route.nested:
            values["parent"] = self.parent_key(conn, p, path["id"])
        for name, parsed in scopes.items():
            values.update(ids.params(parsed, f"scope_{name}"))
        if q.search is not None:
            values["search"] = statements.search_pattern(q.search)
        if q.limit is not None:
            values.update(limit=q.limit, offset=q.skip)
        return values

    def export(self, req, resp, stmt, values, cols, kind) -> None:
        """Stream every row from a server-side cursor: constant memory, any size.

        The first chunk is produced here, inside the responder, so a failure at the
        start is still a JSON error rather than a cut-off 200.
        """
        conn = self.b.engine.connect()
        try:
            result = (
                conn.execution_options(stream_results=True, max_row_buffer=1000)
                .execute(stmt, values)
                .mappings()
            )
            chunks = EXPORTS[kind](result, cols)
            first = next(chunks, b"")
        except Exception:
            conn.close()
            raise

        def stream():
            try:
                yield first
                yield from chunks
            finally:
                result.close()
                conn.close()

        resp.content_type = kind + ("; charset=utf-8" if kind == "text/csv" else "")
        resp.stream = stream()

    def on_post(self, req: falcon.Request, resp: falcon.Response, **path: str) -> None:
        p = principal(req)
        body = read_json(req, self.b.max_body_bytes)
        many = isinstance(body, list)
        items = body if many else [body]
        if many and not 1 <= len(items) <= MAX_BULK:
            raise unprocessable(
                "An array body must hold 1 to 1000 objects.",
                [{"path": "$", "message": f"{len(items)} objects"}],
            )
        with db.transaction(self.b.engine) as conn:
            path_values = {}
            if self.route.nested:
                path_values[self.route.nested.column] = self.parent_key(conn, p, path["id"])
            rows, errors = [], []
            for i, item in enumerate(items):
                where = f"$[{i}]" if many else "$"
                values, errs = self.check_body(item, path_values, partial=False, where=where)
                rows.append((where, values))
                errors += errs
            if errors:
                raise unprocessable(
                    f"The request body does not match schema {self.route.table}.", errors
                )
            errors = self.check_foreign_keys(conn, p, rows)
            if errors:
                raise unprocessable("The request body names rows that cannot be used.", errors)
            created = [self.insert(conn, p, values, where) for where, values in rows]
            text = serialize.dumps(created if many else created[0])  # before the commit
        req.context.rows = len(created)
        resp.status = falcon.HTTP_201
        if not many and self.route.item:
            resp.location = self.location(created[0], path)
        resp.text = text

    def insert(self, conn: sa.Connection, p: Principal, values: dict, where: str) -> dict:
        with database_refusals():
            result = conn.execute(sa.insert(self.table).values(values))
        ids = dict(zip(self.key, result.inserted_primary_key or (), strict=False))
        key = {k: values.get(k, ids.get(k)) for k in self.key}
        if not self.in_write_scope(conn, p, self.key_where(key)):
            raise unprocessable(
                "The new row would not belong to anything you may write to.",
                [{"path": where, "message": self.scope_hint()}],
            )
        stmt = sa.select(*statements.columns(self.table, self.columns)).where(*self.key_where(key))
        return serialize.row(conn.execute(stmt).mappings().one(), self.columns)


class Item(Resource):
    """`GET`, `PATCH`, `PUT`, `DELETE` one row the caller may see (else 404)."""

    @property
    def needs(self) -> dict[str, frozenset[str]]:
        # Roles are checked after the row is found, so an invisible row is a 404, not a 403.
        return {"GET": ANY, "PATCH": ANY, "PUT": ANY, "DELETE": ANY}

    def on_get(self, req: falcon.Request, resp: falcon.Response, **path: str) -> None:
        p = principal(req)
        for name in req.params:
            if name != "fields":
                raise bad_request(f"unknown query parameter {name!r}", name)
        with self.b.engine.connect() as conn:
            row = self.fetch(conn, self.row_where(conn, p, path), p)
        if row is None:
            raise not_found()
        text = serialize.dumps(row)
        resp.etag = tag = etag_of_text(text)  # of the whole row, as If-Match compares
        if matches(req.if_none_match, tag):
            resp.status = falcon.HTTP_304
            return
        if "fields" in req.params:
            q = parse_list_query(
                {"fields": req.params["fields"]}, self.schema, default_limit=1, max_limit=1
            )
            text = serialize.dumps({k: row[k] for k in q.fields})
        resp.text = text

    def on_patch(self, req: falcon.Request, resp: falcon.Response, **path: str) -> None:
        self.update(req, resp, path, partial=True)

    def on_put(self, req: falcon.Request, resp: falcon.Response, **path: str) -> None:
        self.update(req, resp, path, partial=False)

    def found(self, conn, req, p: Principal, path: dict) -> tuple[list, dict]:
        """The row (404 if invisible), its If-Match precondition (412), then the role (403)."""
        where = self.row_where(conn, p, path)
        row = self.fetch(conn, where, p)
        if row is None:
            raise not_found()
        if req.if_match and not matches(req.if_match, etag_of(row)):
            raise ApiError(falcon.HTTP_412, "The row changed since you read it (If-Match).")
        needed = {"admin"} if req.method == "DELETE" else self.write_roles
        if not p.roles & needed:
            raise forbidden(f"Your roles may not {req.method} {self.route.table} rows.")
        return self.key_where(row), row

    def update(self, req, resp, path: dict, *, partial: bool) -> None:
        p = principal(req)
        body = read_json(req, self.b.max_body_bytes)
        with db.transaction(self.b.engine) as conn:
            where, row = self.found(conn, req, p, path)
            if not self.in_write_scope(conn, p, where):
                raise forbidden("This row belongs to a proposal or session you may not change.")
            fixed = {}
            if self.route.nested:
                fixed = {c: row[c] for c in (self.route.nested.column, self.route.nested.key)}
            values, errors = self.check_body(body, fixed, partial=partial)
            if errors:
                raise unprocessable(
                    f"The request body does not match schema {self.route.table}.", errors
                )
            errors = self.check_foreign_keys(conn, p, [("$", values)])
            if errors:
                raise unprocessable("The request body names rows that cannot be used.", errors)
            values = {k: v for k, v in values.items() if k not in fixed}
            if values:
                with database_refusals():
                    conn.execute(sa.update(self.table).where(*where).values(values))
                if not self.in_write_scope(conn, p, where):
                    raise unprocessable(
                        "The change would move the row out of what you may write to.",
                        [{"path": "$", "message": "keep a parent you may write to"}],
                    )
            stmt = sa.select(*statements.columns(self.table, self.columns)).where(*where)
            new = serialize.row(conn.execute(stmt).mappings().one(), self.columns)
            text = serialize.dumps(new)  # before the commit
        resp.etag = etag_of_text(text)
        resp.text = text

    def on_delete(self, req: falcon.Request, resp: falcon.Response, **path: str) -> None:
        p = principal(req)
        with db.transaction(self.b.engine) as conn:
            where, row = self.found(conn, req, p, path)
            full = conn.execute(sa.select(self.table).where(*where)).mappings().one()
            refs, stmt = statements.references(
                self.schema.referenced_by, self.b.present, dict(full)
            )
            if stmt is not None:
                counts = conn.execute(stmt).one()
                used = [
                    {"table": r["table"], "columns": r["columns"], "count": n}
                    for r, n in zip(refs, counts, strict=True)
                    if n
                ]
                if used:
                    raise conflict(
                        f"Other rows refer to this {self.route.table}; delete them first.",
                        references=used,
                    )
            with database_refusals():
                conn.execute(sa.delete(self.table).where(*where))
        resp.status = falcon.HTTP_204
