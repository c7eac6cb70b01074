"""The write path of every declared route: bodies checked, one transaction, read back.

`Creates` (POST on a collection) and `Changes` (PATCH, PUT, DELETE on an item)
validate bodies with the table's compiled schema, check foreign keys against
what the caller may see, keep the row inside what the caller may write to,
and turn what the database refuses into a 409 or a 422 (refusals.py).
"""

from __future__ import annotations

import functools
from typing import Any

import falcon
import sqlalchemy as sa

from .. import db, serialize
from ..auth.principal import SERVICE_ROLES, Principal, principal
from ..errors import ApiError, conflict, forbidden, not_found, unprocessable
from ..query import statements
from .bodies import MAX_ITEMS, read_json
from .conditional import etag_of, etag_of_text, matches
from .refusals import database_refusals


class Writes:
    """What creating and changing share: the body, its foreign keys, the write scope."""

    def check_body(self, body: Any, path_values: dict, *, partial: bool, where: str = "$"):
        """Validate + convert one object; the values the path (or the server: a row's
        author) sets may be repeated in it, not changed by it."""
        errors = []
        if isinstance(body, dict):
            for column, value in path_values.items():
                if column in body and body[column] != value:
                    errors.append({"path": f"{where}.{column}", "message": self.set_by(column)})
            body = (
                {**body, **path_values}
                if not partial
                else {k: v for k, v in body.items() if k not in path_values}
            )
        values, more = self.schema.check(body, partial=partial, path=where)
        return values, errors + more

    def set_by(self, column: str) -> str:
        if column == self.route.author:
            return "is set by the server: the row's author (on a new row, you)"
        return "is set by the URL path"

    def author(self, p: Principal) -> dict:
        """The author column of a new row: the caller, who needs a Person row to be one."""
        if not self.route.author:
            return {}
        if p.person_id is None:
            raise forbidden(
                f"Your login has no Person row, so it cannot be the author of a {self.route.table} row."
            )
        return {self.route.author: p.person_id}

    @functools.cached_property
    def row_references(self) -> tuple[tuple[str, str, str], ...]:
        """(column, table, key) of each column naming a row of another table: the schema's
        single-column foreign keys, and those the route declares without one (`refers`)."""
        found = [
            (fk["columns"][0], fk["references"]["table"], fk["references"]["columns"][0])
            for fk in self.schema.foreign_keys
            if len(fk["columns"]) == 1
        ]
        return tuple(found + [(v.column, v.table, v.parent_key) for v in self.route.refers])

    def check_foreign_keys(
        self, conn: sa.Connection, p: Principal, rows: list[tuple[str, dict]]
    ) -> list[dict]:
        """A key naming a row that does not exist or that the caller may not see is a 422."""
        errors = []
        for column, ref, ref_col in self.row_references:
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


class Creates(Writes):
    """`POST` one row or an array of rows (all or nothing)."""

    def on_post(self, req: falcon.Request, resp: falcon.Response, **path: str) -> None:
        p = principal(req)
        body = read_json(req, self.b.max_body_bytes)
        many = isinstance(body, list)
        items = body if many else [body]
        if many and not 1 <= len(items) <= MAX_ITEMS:
            raise unprocessable(
                f"An array body must hold 1 to {MAX_ITEMS} objects.",
                [{"path": "$", "message": f"{len(items)} objects"}],
            )
        with db.transaction(self.b.engine) as conn:
            path_values = {}
            if self.route.nested:
                path_values[self.route.nested.column] = self.parent_key(conn, p, path["id"])
            path_values.update(self.author(p))
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
        with database_refusals(self.schema, where):
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


class Changes(Writes):
    """`PATCH`, `PUT`, `DELETE` one row the caller may see (else 404)."""

    def on_patch(self, req: falcon.Request, resp: falcon.Response, **path: str) -> None:
        self.update(req, resp, path, partial=True)

    def on_put(self, req: falcon.Request, resp: falcon.Response, **path: str) -> None:
        self.update(req, resp, path, partial=False)

    def found(self, conn, req, p: Principal, path: dict) -> tuple[list, dict]:
        """The row (404 if invisible), whether the caller may change it (403), then its
        If-Match precondition (412): a 412 tells a caller who may write to read again.

        The precondition is tested on the row locked for this write, as it is
        now: of two writers sending the same ETag, the second waits for the
        first to commit and then sees the new row (412), so neither write is lost.
        """
        seen = self.fetch(conn, self.row_where(conn, p, path), p)
        if seen is None:
            raise not_found()
        row = self.fetch(conn, self.key_where(seen), None, lock=True)
        if row is None:
            raise not_found()  # deleted while this request waited for the lock
        if self.route.author:
            if not (
                p.is_admin or (p.person_id is not None and row[self.route.author] == p.person_id)
            ):
                raise forbidden(
                    f"Only its author or an admin may {req.method} this {self.route.table} row."
                )
        elif not p.roles & ({"admin"} if req.method == "DELETE" else self.write_roles):
            raise forbidden(f"Your roles may not {req.method} {self.route.table} rows.")
        where = self.key_where(row)
        if not self.in_write_scope(conn, p, where):
            raise forbidden("This row belongs to a proposal or session you may not change.")
        if req.if_match and not matches(req.if_match, etag_of(row)):
            raise ApiError(falcon.HTTP_412, "The row changed since you read it (If-Match).")
        return where, row

    def update(self, req, resp, path: dict, *, partial: bool) -> None:
        p = principal(req)
        body = read_json(req, self.b.max_body_bytes)
        with db.transaction(self.b.engine) as conn:
            where, row = self.found(conn, req, p, path)
            fixed = {}
            if self.route.nested:
                n = self.route.nested  # its key may be the row's own (read-only) key
                fixed = {c: row[c] for c in (n.column, n.key) if c not in self.schema.read_only}
            if self.route.author:
                fixed[self.route.author] = row[self.route.author]
            values, errors = self.check_body(body, fixed, partial=partial)
            if errors:
                raise unprocessable(
                    f"The request body does not match schema {self.route.table}.", errors
                )
            # What the row holds already is taken back as it is (a row read and sent back
            # unchanged is a 200): its keys are not checked again, since the caller reads
            # them with the row and the official data holds some whose row is gone
            # (DataCollection.detectorId 78), and its zero dates are not written again.
            changed = {k: v for k, v in values.items() if k not in row or row[k] != v}
            errors = self.check_foreign_keys(conn, p, [("$", changed)])
            if errors:
                raise unprocessable("The request body names rows that cannot be used.", errors)
            values = {
                k: v
                for k, v in values.items()
                if k not in fixed and not self.holds_already(row, k, v)
            }
            if values:
                with database_refusals(self.schema):
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

    def holds_already(self, row: dict, column: str, value: Any) -> bool:
        """Whether the value is a zero or partial date the row holds already. It is not
        written again: a server whose sql_mode refuses to write them (NO_ZERO_DATE,
        NO_ZERO_IN_DATE) still takes back a row as it was served, and refuses only a new
        one (a 422)."""
        return isinstance(value, str) and column in self.schema.dates and row.get(column) == value

    def on_delete(self, req: falcon.Request, resp: falcon.Response, **path: str) -> None:
        p = principal(req)
        with db.transaction(self.b.engine) as conn:
            where, row = self.found(conn, req, p, path)
            full = conn.execute(sa.select(self.table).where(*where).with_for_update())
            used = self.referring(conn, dict(full.mappings().one()))
            if used:
                raise conflict(
                    f"Other rows refer to this {self.route.table}; delete them first.",
                    references=used,
                )
            with database_refusals(self.schema, deleting=True):
                conn.execute(sa.delete(self.table).where(*where))
        resp.status = falcon.HTTP_204

    def referring(self, conn: sa.Connection, row: dict) -> list[dict]:
        """The tables whose rows refer to `row`, and how many, read with share locks.

        A locking read counts the rows committed while this delete waited for its
        lock, which the transaction's first view would miss (MariaDB), and keeps
        new ones out until the delete commits: the database would otherwise
        cascade the delete to a row another request was told it had created.
        """
        used = []
        for ref, stmt in statements.references(self.schema.referenced_by, self.b.present, row):
            if n := conn.execute(stmt.with_for_update(read=True)).scalar():
                used.append({"table": ref["table"], "columns": ref["columns"], "count": n})
        return used
