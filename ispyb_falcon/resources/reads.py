"""The read path of every declared route: a filtered page, an export, one row.

A list request flows one way: parse the query string (`query.params`), get the
plan for its shape (`query.statements`), run it, serialize the rows.
"""

from __future__ import annotations

from urllib.parse import quote

import falcon
import sqlalchemy as sa

from .. import serialize
from ..auth.principal import Principal, principal
from ..errors import bad_request, not_acceptable, not_found
from ..query import keyset, statements
from ..query.filters import Context
from ..query.params import ListQuery, parse_list_query
from ..query.visibility import AllOf, Root
from . import embeds, ids
from .conditional import etag_of_text, matches
from .ids import SCOPES

EXPORTS = ("text/csv", "application/x-ndjson")
EXPORT_BATCH = 1000  # rows per chunk of an export
FORMATS = {"json": None, "csv": "text/csv", "ndjson": "application/x-ndjson"}  # ?format=
SUFFIX = {"text/csv": "csv", "application/x-ndjson": "ndjson"}


def representation(req: falcon.Request, exports: tuple[str, ...] = EXPORTS) -> str | None:
    """The export type asked for (`?format=`, else the Accept header), or None for JSON.

    `?format=csv` lets a browser link download what `Accept: text/csv` gives a script.
    An Accept header that allows neither JSON nor an export is a 406.
    """
    fmt = req.params.get("format")
    if fmt is not None:
        if not isinstance(fmt, str) or fmt not in FORMATS or FORMATS[fmt] not in (None, *exports):
            known = ", ".join(f for f, kind in FORMATS.items() if kind in (None, *exports))
            raise bad_request(f"format: expected one of {known}", "format")
        return FORMATS[fmt]
    accept = req.accept  # '*/*' when the request sent none
    if accept == "*/*":
        return None
    for kind in exports:
        if kind in accept:
            return kind
    if "application/json" in accept or req.client_accepts_json:  # or */*, application/*
        return None
    raise not_acceptable(("application/json", *exports))


class ListReads:
    """`GET` a filtered page of the collection, or stream every matching row."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, **path: str) -> None:
        p = principal(req)
        export = representation(req)
        paged = export is None or "limit" in req.params or "skip" in req.params
        q = parse_list_query(
            req.params,
            self.schema,
            default_limit=self.b.default_limit,
            max_limit=self.b.max_limit,
            scopes=self.scopes,
            paged=paged,
            embeds=self.embed_names,
            filters=self.filter_readers(p),
        )
        if q.search is not None and not self.route.search:
            raise bad_request(f"{self.route.path} has no text columns to search", "search")
        cols = self.columns if q.fields is None else q.fields
        scopes = {name: self.parse_scope(name, text) for name, text in q.scopes.items()}
        named = bool(scopes) or self.route.nested is not None  # a visit, proposal or parent
        root = self.b.read_root(p, per_row=named)
        window, narrowed = self.page_shape(q, root, named)
        kinds = tuple((name, parsed[0]) for name, parsed in scopes.items())
        shape = (q.shape, window, narrowed, root.shape, kinds)
        shape_of = self.embedded(q, cols)
        plan = self.plans.get(
            shape,
            lambda: (
                cols,
                self.where(q, root, scopes),
                q,
                window,
                narrowed,
                *((self.embedder(q, p),) if q.embed else ()),
            ),
        )
        with self.b.engine.connect() as conn:
            values = statements.bind_values(plan, self.values(conn, p, q, root, scopes, path))
            if export:
                if q.limit is not None:
                    values["limit"] = q.limit  # a page asks one more row (is there a next?)
                return self.export(resp, plan, values, cols, export, shape_of)
            rows = plan.rows(conn, values)
            if window and rows:
                total = rows[0][-1]  # COUNT(*) OVER () of the page statement
            else:
                total = self.total(conn, plan, values, q.count)
        more = len(rows) > q.limit  # the page asked for one row more than it shows
        rows = rows[: q.limit]
        cursor = keyset.encode(q.digest(), [rows[-1][i] for i in plan.sort]) if more else None
        req.context.rows = len(rows)
        send_page(
            req,
            resp,
            q,
            total,
            cursor,
            [dict(zip(cols, r, strict=False)) for r in rows]  # then sort values
            if shape_of is None
            else [shape_of.nest(cols, r) for r in rows],
        )

    def filter_readers(self, p: Principal) -> dict:
        """The route's named filters (query/filters.py), each reading its text for `p`."""
        if not self.route.filters:
            return {}
        context = Context(p, self.b.beamline_groups)
        return {f.name: lambda raw, f=f: f.choose(raw, context) for f in self.route.filters}

    def embedder(self, q: ListQuery, p: Principal) -> embeds.Embedder:
        """The SQL of the embeddings `q` asks for (what the caller may see: embeds.PER_ROW)."""
        return embeds.Embedder(
            self.b.tables,
            self.b.resolver,
            [self.embeds[n] for n in q.embed],
            q.embed_fields,
            self.b.read_root(p, per_row=embeds.PER_ROW),
            self.route.table,
        )

    def embedded(self, q: ListQuery, cols: list[str]) -> embeds.Layout | None:
        """Where the embeddings' values are in the page's rows (None: no `embed=`)."""
        if not q.embed:
            return None
        sort = keyset.sort_columns(q.order_by, self.key)
        offset = len(cols) + len([c for c in sort if c not in cols])
        return embeds.layout([self.embeds[n] for n in q.embed], q.embed_fields, offset)

    @staticmethod
    def page_shape(q: ListQuery, root: Root, named: bool) -> tuple[bool, bool]:
        """(window, narrowed) for a page whose statement names its rows (`named`) or not.

        A request that picks a small part of the table (a visit, a parent, what a
        restricted caller sees, a named filter such as `?mine=true`) counts its
        rows in the page statement (a window count: one pass for both), except on
        a keyset page, which sees only the rows after its cursor; every row of a
        table keeps a plain count, since a window would sort them all where the
        page reads the first keys and stops.
        Such a request, or one filtering a column by value, is `narrowed`: its rows
        are found first, then sorted (statements.ordering_not_by_index).
        """
        few = named or not root.unrestricted or any(c.narrows for c in q.chosen.values())
        window = few and q.count == "exact" and q.after is None and q.limit is not None
        narrowed = few or any(c.operator.key == "eq" for c in q.conditions)
        return window, narrowed

    @staticmethod
    def total(conn, plan: statements.Plan, values: dict, count: str) -> int | None:
        if count == "none":
            return None
        if count == "planned":
            return plan.estimate(conn, values)
        return plan.total(conn, values)

    @staticmethod
    def page_uri(req: falcon.Request, page: dict) -> str:
        """This list's URI with another page: the same filters, order and fields."""
        kept = [
            part
            for part in req.query_string.split("&")
            if part and part.split("=", 1)[0] not in ("skip", "after")
        ]
        kept += [f"{k}={quote(str(v), safe='')}" for k, v in page.items() if v]
        return req.path + ("?" + "&".join(kept) if kept else "")

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
            names = list(c.binds(f"f{i}"))
            bind = (
                c.value
                if c.operator.boolean
                else [sa.bindparam(n) for n in names]
                if len(names) > 1
                else sa.bindparam(names[0])
            )
            where.append(c.operator.build(self.table.c[c.column], bind))
        for f in self.route.filters:
            if f.name in q.chosen:
                pred = f.build(self.table, self.b.tables, q.chosen[f.name].shape)
                where += [] if pred is None else [pred]
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
        for i, c in enumerate(q.conditions):
            values.update(c.binds(f"f{i}"))
        for chosen in q.chosen.values():
            values.update(chosen.values)
        if self.route.nested:
            values["parent"] = self.parent_key(conn, p, path["id"])
        for name, parsed in scopes.items():
            values.update(ids.params(parsed, f"scope_{name}"))
        if q.search is not None:
            values["search"] = statements.search_pattern(q.search)
        if q.after is not None:
            values.update(keyset.values(q.after))
        if q.limit is not None:
            values.update(limit=q.limit + 1, offset=q.skip)  # one more: is there a next page?
        return values

    def export(
        self,
        resp,
        plan: statements.Plan,
        values: dict,
        cols: list,
        kind: str,
        shape_of: embeds.Layout | None = None,
    ) -> None:
        """Stream every row from a server-side cursor: constant memory, any size.

        The first chunk is produced here, inside the responder, so a failure at the
        start is still a JSON error rather than a cut-off 200.
        """
        conn = self.b.engine.connect()
        try:
            batches = plan.batches(conn, values, EXPORT_BATCH)
            types = [c.type for c in plan.page.selected_columns]
            if shape_of is None:
                if kind == "text/csv":
                    chunks = serialize.csv_stream(
                        batches, cols, serialize.formatters(types[: len(cols)])
                    )
                else:
                    chunks = serialize.ndjson_stream(batches, cols)
            elif kind == "text/csv":  # an embedded parent's columns as `sample.name`
                flat = [types[i] for i in shape_of.flat_positions(cols)]
                chunks = serialize.csv_stream(
                    embeds.flat_batches(batches, cols, shape_of),
                    shape_of.flat_keys(cols),
                    serialize.formatters(flat),
                )
            else:
                chunks = embeds.ndjson_stream(batches, cols, shape_of)
            first = next(chunks, b"")
        except Exception:
            conn.close()
            raise

        def stream():
            try:
                yield first
                yield from chunks
            finally:
                chunks.close()  # closes the cursor before the connection goes back
                conn.close()

        resp.content_type = kind + ("; charset=utf-8" if kind == "text/csv" else "")
        name = self.route.path.rstrip("/").rsplit("/", 1)[-1]
        resp.set_header("Content-Disposition", f'attachment; filename="{name}.{SUFFIX[kind]}"')
        resp.stream = stream()


def send_page(
    req: falcon.Request,
    resp: falcon.Response,
    q: ListQuery,
    total: int | None,
    cursor: str | None,
    results: list,
) -> None:
    """A page in the list envelope (API.md section 5), its `Link` header (first, next,
    and prev for a page reached by skip) and its ETag (a 304 if the client has it)."""
    text = serialize.dumps(
        {"total": total, "skip": q.skip, "limit": q.limit, "next": cursor, "results": results}
    )
    links = {"first": {}, "next": cursor and {"after": cursor}}
    if q.skip and q.after is None:
        links["prev"] = {"skip": max(0, q.skip - q.limit)}
    resp.set_header(
        "Link",
        ", ".join(
            f'<{ListReads.page_uri(req, page)}>; rel="{rel}"'
            for rel, page in links.items()
            if page is not None
        ),
    )
    resp.etag = tag = etag_of_text(text)
    if matches(req.if_none_match, tag):
        resp.status = falcon.HTTP_304
        return
    resp.text = text


class ItemReads:
    """`GET` one row the caller may see (else 404)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, **path: str) -> None:
        p = principal(req)
        representation(req, exports=())
        for name in req.params:
            if name not in ("fields", "format", "embed"):
                raise bad_request(f"unknown query parameter {name!r}", name)
        q = parse_list_query(
            {k: req.params[k] for k in ("fields", "embed") if k in req.params},
            self.schema,
            default_limit=1,
            max_limit=1,
            embeds=self.embed_names,
        )
        with self.b.engine.connect() as conn:
            where = self.row_where(conn, p, path)
            row = self.fetch_embedded(conn, where, p, q) if q.embed else self.fetch(conn, where, p)
        if row is None:
            raise not_found()
        # Of the whole row (with its embeddings, whatever `fields`), as If-Match compares
        # without `embed=`: a cached row is fresh only while what it embeds is unchanged.
        text = serialize.dumps(row)
        resp.etag = tag = etag_of_text(text)
        if matches(req.if_none_match, tag):
            resp.status = falcon.HTTP_304
            return
        if q.fields is not None:
            kept = {k: row[k] for k in q.fields}
            for name in q.embed:
                narrowed = q.embed_fields.get(name)
                value = row[name]
                kept[name] = (
                    {c: value[c] for c in narrowed} if narrowed and value is not None else value
                )
            text = serialize.dumps(kept)
        resp.text = text

    def fetch_embedded(self, conn, where: list, p: Principal, q: ListQuery) -> dict | None:
        """The row the caller may see, with its embeddings (one statement)."""
        chosen = [self.embeds[n] for n in q.embed]
        embedder = embeds.Embedder(
            self.b.tables,
            self.b.resolver,
            chosen,
            {},
            self.b.read_root(p, per_row=embeds.PER_ROW),
            self.route.table,
        )
        stmt = embedder.item(self.table, self.key, self.columns, [*where, *self.visible(p)])
        r = conn.execute(stmt).first()
        if r is None:
            return None
        return embeds.layout(chosen, {}, len(self.columns)).nest(self.columns, tuple(r))
