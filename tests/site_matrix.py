"""Drive a running server route by route, as a site's clients would, and judge every answer.

The site matrix (tests/test_site_databases.py) starts the server on the databases
real sites run (older releases, a drifted copy, a low-privilege user) and hands
it to `Drive`. What each answer must be follows from the route declarations
(`ispyb_falcon/resources/*.py`) and from the live database, read beside the server:

- a route whose table (or a table its visibility passes through) the database
  lacks is out: 404, or 503 with a JSON message naming the table;
- a request that names a column the database lacks (a filter, an order, a field)
  answers 4xx or 503 with a JSON message naming the column; `?search=` looks in
  the searched columns that remain (the start-up report names those left out);
- a list, a search, a page, an export or an item of what exists answers 200;
- nothing answers any other 5xx, and every error body is a JSON object.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from ispyb_falcon.app import hung_through
from ispyb_falcon.resources import MODULES
from ispyb_falcon.resources.declare import Route

from .servers import Answer, Client

DECLARED = [r for routes in MODULES.values() for r in routes]
SERVED = [r for r in DECLARED if r.path]
HANGS = {r.table: r.hangs for r in DECLARED}
PAGE = 3  # rows per list page: enough for items, a next page and sample values
NO_SUCH_ID = "4294967295"
TIME_TYPES = ("datetime", "timestamp", "date", "time")
NUMBER_TYPES = ("float", "double", "decimal", "real")


def tables_of(route: Route) -> list[str]:
    """The route's table and every table its visibility passes through."""
    return hung_through([route.table], HANGS)


def search_columns(route: Route) -> list[str]:
    """The columns a route's `?search=` reads (a computed search reports what it names)."""
    names: list[str] = []

    class Columns:
        def __getattr__(self, name: str) -> sa.ColumnClause:
            names.append(name)
            return sa.column(name)

    class Table:
        c = Columns()

    for entry in route.search:
        if isinstance(entry, str):
            names.append(entry)
        else:
            entry(Table)
    return list(dict.fromkeys(names))


def declared_columns(route: Route) -> list[str]:
    """The columns a declaration names: searched, hung by, referring."""
    hang = route.hangs if isinstance(route.hangs, tuple) else ()
    named = [*search_columns(route), *(v.column for v in hang), *(v.column for v in route.refers)]
    if route.nested:
        named += [route.nested.column, route.nested.key]
    return list(dict.fromkeys(named))


def live_columns(engine: sa.Engine, database: str) -> dict[str, set[str]]:
    """Every table of the database and its columns, as information_schema has them."""
    sql = sa.text(
        "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = :db"
    )
    live: dict[str, set[str]] = {}
    with engine.connect() as conn:
        for table, column in conn.execute(sql, {"db": database}):
            live.setdefault(table, set()).add(column)
    return live


def made_up(sql_type: str) -> str:
    """A value of this SQL type, for a filter on a column no row fills."""
    for prefix, text in (
        (("datetime", "timestamp"), "2020-01-01T00:00:00"),
        ("date", "2020-01-01"),
        ("time", "01:00:00"),
        (NUMBER_TYPES, "1.5"),
        (("tinyint", "smallint", "mediumint", "int", "bigint"), "1"),
        (("binary", "varbinary"), "00"),
    ):
        if sql_type.startswith(prefix):
            return text
    return "x"


def is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


@dataclasses.dataclass
class Request:
    """One request sent, with the answer the drive got and what it should have been."""

    caller: str
    method: str
    uri: str
    expected: str
    answer: Answer
    accept: str = ""

    @property
    def request_id(self) -> str:
        return self.answer.headers.get("X-Request-Id", "-")

    def line(self) -> str:
        body = " ".join(self.answer.text.split())[:300]
        accept = f" (Accept: {self.accept})" if self.accept else ""
        return (
            f"[{self.caller}] {self.method} {self.uri}{accept} -> {self.answer.status}"
            f" (expected {self.expected}; request {self.request_id}): {body}"
        )


@dataclasses.dataclass
class Caller:
    name: str  # admin, user
    client: Client
    rows: dict[str, list[dict]] = dataclasses.field(default_factory=dict)  # route path -> page


class Drive:
    """Every list, item and search route of one server, as each caller, judged as it goes."""

    def __init__(self, base: str, live: Mapping[str, set[str]]) -> None:
        self.public = Client(base)
        self.live = live
        self.sent: list[Request] = []
        self.problems: list[str] = []
        self.document: dict = {}
        self.schemas: dict[str, dict] = {}

    # -- sending and judging ------------------------------------------------------

    def send(
        self,
        caller: Caller | None,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        expected: str,
        names: Iterable[str] = (),
        method: str = "GET",
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """Send one request; record a problem unless the answer is what `expected` says.

        expected: "200", "200/404", "404", "4xx", "<500", "201/4xx/503", "refused" (4xx
        or 503), "out" (404, or 503). With `names`, an answer other than a success must
        name one of them (the table or column the database lacks).
        """
        client = caller.client if caller else self.public
        query = urllib.parse.urlencode(params or {})
        uri = path + (f"?{query}" if query else "")
        answer = client.call(method, uri, body, headers)
        who = caller.name if caller else "public"
        accept = (headers or {}).get("Accept", "")
        request = Request(who, method, uri, expected, answer, accept)
        self.sent.append(request)
        status, names = answer.status, tuple(names)
        # A refusal of something the database lacks says what: one of `names`.
        # (A route taken out may answer Falcon's plain 404.)
        named = (
            status < 300
            or (expected == "out" and status == 404)
            or not names
            or any(n in answer.text for n in names)
        )
        good = (
            named
            and {
                "200": status == 200,
                "201/4xx/503": status == 201 or 400 <= status < 500 or status == 503,
                "200/404": status in (200, 404),
                "404": status == 404,
                "4xx": 400 <= status < 500,
                "<500": status < 500,
                "refused": 400 <= status < 500 or status == 503,
                "out": status in (404, 503),
            }[expected]
        )
        if status >= 400 and not is_json_object(answer.text):
            self.problems.append("error body is not a JSON object: " + request.line())
        elif not good:
            why = f" (should name {' or '.join(names)})" if names and not named else ""
            self.problems.append("unexpected answer" + why + ": " + request.line())
        return answer

    def page(self, answer: Answer) -> dict:
        """The list body of a 200, or an empty page (the problem is already recorded)."""
        if answer.status != 200:
            return {"results": [], "next": None}
        try:
            body = answer.json
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("results"), list):
            self.problems.append(f"a 200 list that is not a page: {self.sent[-1].line()}")
            return {"results": [], "next": None}
        return body

    # -- what the server says it serves ----------------------------------------------

    def discover(self) -> None:
        """/openapi.json and /schemas/{Table}: the routes and columns the server serves."""
        answer = self.send(None, "/openapi.json", expected="200")
        self.document = answer.json if answer.status == 200 else {"paths": {}}
        answer = self.send(None, "/schemas", expected="200")
        listed = answer.json.get("schemas", []) if answer.status == 200 else []
        for entry in listed:
            answer = self.send(None, f"/schemas/{entry['name']}", expected="200")
            if answer.status == 200:
                self.schemas[entry["name"]] = answer.json

    def documented(self, path: str) -> dict | None:
        return self.document.get("paths", {}).get(path)  # relative to "servers"

    def parameter(self, p: dict) -> dict:
        """A parameter of /openapi.json, its `$ref` (shared parameters) followed."""
        if "$ref" not in p:
            return p
        return self.document["components"]["parameters"][p["$ref"].rsplit("/", 1)[-1]]

    def server_columns(self, route: Route) -> list[str]:
        """The columns the server lets a list name (`order_by`'s values in /openapi.json)."""
        operation = (self.documented(route.path) or {}).get("get", {})
        for p in map(self.parameter, operation.get("parameters", [])):
            if p.get("name") == "order_by":
                return list(p["schema"].get("enum", []))
        return list(self.schemas.get(route.table, {}).get("properties", {}))

    def sql_type(self, table: str, column: str) -> str:
        prop = self.schemas.get(table, {}).get("properties", {}).get(column, {})
        return str(prop.get("x-ispyb", {}).get("sqlType", "")).lower()

    def key(self, route: Route) -> str | None:
        if route.nested:
            return route.nested.key
        keys = self.schemas.get(route.table, {}).get("x-ispyb", {}).get("primaryKey") or []
        return keys[0] if keys else None

    # -- the drive ------------------------------------------------------------------

    def run(self, callers: list[Caller]) -> None:
        """Every route as every caller: top-level routes first (nested ones need a parent),
        then the views for web pages, which read rows the routes listed."""
        for caller in callers:
            for route in sorted(SERVED, key=lambda r: r.nested is not None):
                self.route(caller, route, callers[0])
            self.views(caller)

    def views(self, caller: Caller) -> None:
        """The timeline, processing at a glance and the visit filters, where documented."""
        sessions = [r["sessionId"] for r in caller.rows.get("/sessions", [])][:1]
        if self.documented("/events"):
            self.send(caller, "/events", {"limit": PAGE}, expected="200")
            for session in sessions:
                self.send(caller, "/events", {"session": session, "limit": PAGE}, expected="200")
                self.send(
                    caller, "/events", {"session": session, "status": "failed"}, expected="200"
                )
        collections = [r["dataCollectionId"] for r in caller.rows.get("/datacollections", [])]
        if self.documented("/datacollections/processing") and collections:
            ids = ",".join(str(i) for i in collections[:PAGE])
            self.send(
                caller, "/datacollections/processing", {"dataCollectionId": ids}, expected="200"
            )
        if self.documented("/sessions"):
            for when in ("current", "upcoming", "previous"):
                self.send(caller, "/sessions", {"when": when, "limit": PAGE}, expected="200")
            self.send(caller, "/sessions", {"mine": "true", "limit": PAGE}, expected="200")

    def route(self, caller: Caller, route: Route, admin: Caller) -> None:
        missing = [t for t in tables_of(route) if t not in self.live]
        path = self.concrete(caller, route)
        if path is None:
            return
        if missing:
            answer = self.send(caller, path, {"limit": PAGE}, expected="out", names=missing)
            if answer.status == 404 and self.documented(route.path):
                self.problems.append(
                    f"{route.path} is in /openapi.json but answers 404 (table(s) missing:"
                    f" {', '.join(missing)})"
                )
            return
        if not self.documented(route.path):
            self.problems.append(f"{route.path} ({route.table}) is missing from /openapi.json")
        live = self.live[route.table]
        columns = self.server_columns(route)
        gone = [c for c in columns if c not in live]
        first = self.page(self.send(caller, path, {"limit": PAGE}, expected="200"))
        rows = caller.rows[route.path] = first["results"]
        self.search(caller, route, path, live)
        for column in self.columns_to_try(route, columns, gone):
            self.column(caller, route, path, column, rows, gone)
        self.pages(caller, route, path, first, columns, gone)
        if route.item:
            self.items(caller, route, path, rows, admin)

    def concrete(self, caller: Caller, route: Route) -> str | None:
        """The route's path, a nested one with a parent row this caller sees."""
        if not route.nested:
            return route.path
        parents = caller.rows.get(route.nested.parent) or []
        key = route.nested.column
        ids = [r[key] for r in parents if r.get(key) is not None]
        if not ids:
            self.problems.append(
                f"[{caller.name}] {route.path}: no {route.nested.parent} row to drive it with"
            )
            return None
        return route.path.replace("{id}", str(ids[0]))

    def search(self, caller: Caller, route: Route, path: str, live: set[str]) -> None:
        if not route.search:
            self.send(caller, path, {"search": "x"}, expected="4xx")
            return
        # A searched column the database lacks is left out of the search (the start-up
        # report says so); with none left, the route has nothing to search: a 4xx.
        searched = search_columns(route)
        if searched and all(c not in live for c in searched):
            self.send(caller, path, {"search": "x"}, expected="4xx")
        else:
            self.send(caller, path, {"search": "x", "limit": PAGE}, expected="200")

    def columns_to_try(self, route: Route, columns: list[str], gone: list[str]) -> list[str]:
        """Every column the database lacks, then a few: the key, the declared ones, a
        time, a number, an enum."""
        types = {c: self.sql_type(route.table, c) for c in columns}
        key = self.key(route)
        picks = [*gone, *([key] if key else []), *declared_columns(route)]
        for kinds in (TIME_TYPES, NUMBER_TYPES, ("enum",)):
            picks += [c for c in columns if types[c].startswith(kinds)][:1]
        present = [c for c in dict.fromkeys(picks) if c in columns and c not in gone]
        return gone + present[:6]

    def column(
        self, caller: Caller, route: Route, path: str, column: str, rows: list, gone: list[str]
    ) -> None:
        """Order by the column, filter on it by a value it holds, by NULL, by range or text."""
        if column in gone:
            expect: dict = {"expected": "refused", "names": [column]}
        else:
            expect = {"expected": "200"}
        self.send(caller, path, {"order_by": column, "order": "desc", "limit": PAGE}, **expect)
        if column not in gone:
            expect = {"expected": "<500"}  # a value read back may still be refused (400)
        sql_type = self.sql_type(route.table, column)
        value = next((r[column] for r in rows if r.get(column) is not None), None)
        self.send(caller, path, {f"{column}[null]": "true", "limit": PAGE}, **expect)
        text = str(value) if value is not None else made_up(sql_type)
        self.send(caller, path, {column: text, "limit": PAGE}, **expect)
        if sql_type.startswith(TIME_TYPES + NUMBER_TYPES) or "int" in sql_type:
            self.send(caller, path, {f"{column}[gte]": text, "limit": PAGE}, **expect)
        else:
            self.send(caller, path, {f"{column}[like]": text[:3], "limit": PAGE}, **expect)

    def pages(
        self,
        caller: Caller,
        route: Route,
        path: str,
        first: dict,
        columns: list[str],
        gone: list[str],
    ) -> None:
        """The next page by cursor and by skip, counts, fields, exports, scopes."""
        if first.get("next"):
            self.send(caller, path, {"limit": PAGE, "after": first["next"]}, expected="200")
        self.send(caller, path, {"limit": PAGE, "skip": PAGE}, expected="200")
        for count in ("planned", "none"):
            self.send(caller, path, {"limit": PAGE, "count": count}, expected="200")
        kept = [c for c in columns if c not in gone][:2]
        if kept:
            self.send(caller, path, {"fields": ",".join(kept), "limit": PAGE}, expected="200")
        if gone:
            wanted = ",".join([*kept, gone[0]])
            self.send(caller, path, {"fields": wanted}, expected="refused", names=gone[:1])
        operation = (self.documented(route.path) or {}).get("get", {})
        for p in operation.get("parameters", []):
            p = self.parameter(p)
            if p["name"] == "embed":  # every related row the route embeds, in one request
                names = ",".join(p["schema"]["items"]["enum"])
                self.send(caller, path, {"embed": names, "limit": PAGE}, expected="200")
        for kind in ("text/csv", "application/x-ndjson"):
            answer = self.send(
                caller, path, {"limit": PAGE}, expected="200", headers={"Accept": kind}
            )
            sent = answer.headers.get("Content-Type", "")
            if answer.status == 200 and not sent.startswith(kind):
                self.problems.append(f"export as {kind} came as {sent}: {self.sent[-1].line()}")
        scopes = {self.parameter(p)["name"] for p in operation.get("parameters", [])}
        scopes &= {"proposal", "session"}
        for scope, parent, key in (
            ("proposal", "/proposals", "proposalId"),
            ("session", "/sessions", "sessionId"),
        ):
            seen = [r[key] for r in caller.rows.get(parent, []) if r.get(key) is not None]
            if scope in scopes and seen:
                self.send(caller, path, {scope: seen[0], "limit": PAGE}, expected="200")

    def items(
        self, caller: Caller, route: Route, path: str, rows: list[dict], admin: Caller
    ) -> None:
        """The caller's own rows (200), the admin's (200 or 404), and one that is not there."""
        key = self.key(route)
        if key is None:
            self.problems.append(f"{route.table}: no primary key in /schemas/{route.table}")
            return
        own = [r[key] for r in rows[:2] if r.get(key) is not None]
        for value in own:
            self.send(caller, f"{path}/{value}", expected="200")
        if own:
            self.send(caller, f"{path}/{own[0]}", {"fields": key}, expected="200")
        if caller is not admin:
            theirs = admin.rows.get(route.path, [])
            for value in [r[key] for r in theirs[:2] if r.get(key) is not None]:
                self.send(caller, f"{path}/{value}", expected="200/404")
        self.send(caller, f"{path}/{NO_SUCH_ID}", expected="404")
        for name in self.names(caller, route, rows):
            self.send(caller, f"{path}/{name}", expected="200")

    @staticmethod
    def names(caller: Caller, route: Route, rows: list[dict]) -> list[str]:
        """A proposal by its name (`mx12345`), a session by its visit (`mx12345-3`)."""
        proposals = {
            p["proposalId"]: f"{p.get('proposalCode') or ''}{p.get('proposalNumber') or ''}"
            for p in caller.rows.get("/proposals", [])
        }
        named = {n for n in proposals.values() if n.isalnum() and not n.isdigit()}
        if route.table == "Proposal":
            return sorted(named)[:1]
        if route.table == "BLSession":
            for r in rows:
                name = proposals.get(r.get("proposalId"))
                if name in named and r.get("visit_number") is not None:
                    return [f"{name}-{r['visit_number']}"]
        return []


def tracebacks(log: str, request_ids: Iterable[str]) -> dict[str, str]:
    """For each request id, the traceback the server logged: its last frame in the
    package (file, line and code) and the exception."""
    found: dict[str, str] = {}
    text = log.splitlines()
    for rid in request_ids:
        at = next((i for i, line in enumerate(text) if f"request {rid}" in line), None)
        if at is None:
            continue
        block: list[str] = []
        for line in text[at + 1 :]:
            if line[:4].isdigit() and line[4:5] == "-":  # the next record's timestamp
                break
            block.append(line)
        frames = [i for i, line in enumerate(block) if "/ispyb_falcon/" in line]
        ours = block[frames[-1] : frames[-1] + 2] if frames else []
        found[rid] = "\n".join([*ours, *block[-1:]])
    return found
