"""The hand-written baseline for `bin/bench`: Falcon, PyJWT, PyMySQL and SQL written by hand.

It answers the bench's requests the way one would without ispyb-falcon, applying the same
rules (API.md section 4) to the same callers:

- the bearer JWT is decoded (HS256, same secret, audience, issuer and required claims);
- the caller's personId and ISPyB permissions are read by login (Person -> UserGroup_has_Person
  -> UserGroup_has_Permission -> Permission.type, cached for 30 s like the real server); the
  permissions give the staff beamlines through the same beamline groups the bench gives
  ispyb-falcon; roles admin and manager and permissions super_admin and all_proposals see
  everything;
- a session is visible if the caller is in its Session_has_Person, is staff for its
  beamLineName, or is PI (Proposal.personId) or ProposalHasPerson member of its proposal;
  a proposal if the caller is its PI or member, is on one of its sessions, or is staff for the
  beamline of one of them. Every membership is an EXISTS test.

Routes (no prefix):

- `GET /datacollections?session=mx1001-2&skip=&limit=`: a visit's collections in id order;
- `GET /proposals?skip=&limit=`: the proposals the caller may see, in id order;
- `GET /images?dataCollectionId=N` with `Accept: text/csv` or `application/x-ndjson`: every
  image of a collection the caller may see, streamed from a server-side cursor (SSCursor).

A page is the fastest honest statement by hand: an inner statement selects only the ids,
ordered and limited on the index, with `COUNT(*) OVER ()` for the total, and the wide rows
(every column ispyb-falcon serves, read from information_schema) are joined back for that page.
An empty page (skip past the end) counts separately. Each waitress thread keeps its own
PyMySQL connection, opened with the timeouts `bin/bench` passes (those ispyb-falcon's
`[database]` settings give PyMySQL); the SQL text is built once per caller shape.
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence

import falcon
import jwt
import pymysql
import pymysql.cursors

from ispyb_falcon.serialize import value

VISIT = re.compile(r"^([A-Za-z]+)(\d+)-(\d+)$")
PERSON_TTL = 30.0
SEE_ALL_ROLES = {"admin", "manager"}
SEE_ALL_PERMISSIONS = {"super_admin", "all_proposals"}
BLOB_TYPES = ("tinyblob", "blob", "mediumblob", "longblob")
FORMATTED_TYPES = {"datetime", "timestamp", "date", "time", "decimal", "binary", "varbinary"}
EXPORT_BATCH = 1000

_encode = json.JSONEncoder(
    ensure_ascii=False,
    separators=(",", ":"),
    allow_nan=False,
    default=value,  # the same value formatting as the API (section 1)
).encode


class Caller:
    """Who is calling: personId, what they see everything of, their staff beamlines."""

    def __init__(self, person_id: int | None, sees_all: bool, beamlines: tuple[str, ...]):
        self.me = -1 if person_id is None else person_id
        self.sees_all = sees_all
        self.beamlines = beamlines

    @property
    def shape(self) -> tuple:
        """What the SQL text depends on (the values are parameters)."""
        return (self.sees_all, len(self.beamlines))

    def params(self) -> dict:
        values = {"me": self.me}
        values.update((f"b{i}", b) for i, b in enumerate(self.beamlines))
        return values


def staff_test(caller: Caller, s: str) -> list[str]:
    """`s.beamLineName IN (...)` for staff; nothing for others."""
    if not caller.beamlines:
        return []
    names = ", ".join(f"%(b{i})s" for i in range(len(caller.beamlines)))
    return [f"{s}.beamLineName IN ({names})"]


def session_visible(caller: Caller, s: str = "s", p: str = "p") -> str:
    """The caller may see session `s` (of proposal `p`); empty for those who see all."""
    if caller.sees_all:
        return ""
    tests = [
        f"EXISTS (SELECT 1 FROM Session_has_Person shp"
        f" WHERE shp.sessionId = {s}.sessionId AND shp.personId = %(me)s)",
        *staff_test(caller, s),
        f"{p}.personId = %(me)s",
        f"EXISTS (SELECT 1 FROM ProposalHasPerson php"
        f" WHERE php.proposalId = {s}.proposalId AND php.personId = %(me)s)",
    ]
    return "(" + "\n        OR ".join(tests) + ")"


def proposal_visible(caller: Caller, p: str = "p") -> str:
    """The caller may see proposal `p`; empty for those who see all."""
    if caller.sees_all:
        return ""
    staff = staff_test(caller, "vs")
    tests = [
        f"{p}.personId = %(me)s",
        f"EXISTS (SELECT 1 FROM ProposalHasPerson php"
        f" WHERE php.proposalId = {p}.proposalId AND php.personId = %(me)s)",
        f"EXISTS (SELECT 1 FROM BLSession vs JOIN Session_has_Person shp"
        f" ON shp.sessionId = vs.sessionId"
        f" WHERE vs.proposalId = {p}.proposalId AND shp.personId = %(me)s)",
    ]
    if staff:
        tests.append(
            f"EXISTS (SELECT 1 FROM BLSession vs WHERE vs.proposalId = {p}.proposalId"
            f" AND {staff[0]})"
        )
    return "(" + "\n        OR ".join(tests) + ")"


def where(*tests: str) -> str:
    kept = [t for t in tests if t]
    return "\n WHERE " + "\n   AND ".join(kept) if kept else ""


class Base:
    """A route over one table: the columns it serves, its SQL per shape of caller."""

    table = ""

    def __init__(self, shared: Shared) -> None:
        self.shared = shared
        self.columns, self.formatted = shared.columns(self.table)
        self.select = ", ".join(f"t.`{c}`" for c in self.columns)
        self.sql: dict[tuple, tuple[str, str]] = {}

    def statements(self, caller: Caller) -> tuple[str, str]:
        """(page, count) SQL for this caller's shape, built once."""
        found = self.sql.get(caller.shape)
        if found is None:
            found = self.sql[caller.shape] = self.build(caller)
        return found


class Page(Base):
    """A list route: ids ordered and limited first, wide rows joined back for the page."""

    key = ""

    def build(self, caller: Caller) -> tuple[str, str]:
        from_where = self.from_where(caller)
        page = (
            f"SELECT ids.total, {self.select}\n  FROM (SELECT k.{self.key},"
            f" COUNT(*) OVER () AS total{from_where}\n"
            f" ORDER BY k.{self.key} LIMIT %(limit)s OFFSET %(skip)s) ids\n"
            f"  JOIN {self.table} t ON t.{self.key} = ids.{self.key}\n ORDER BY t.{self.key}"
        )
        return page, f"SELECT COUNT(*){from_where}"

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        caller = self.shared.caller(req)
        args = {**caller.params(), **self.filters(req)}
        args["skip"] = req.get_param_as_int("skip", min_value=0, default=0)
        args["limit"] = req.get_param_as_int("limit", min_value=1, max_value=1000, default=25)
        page_sql, count_sql = self.statements(caller)
        with self.shared.conn().cursor() as cur:
            cur.execute(page_sql, args)
            rows = cur.fetchall()
            if rows:
                total = rows[0][0]
            else:
                cur.execute(count_sql, args)
                total = cur.fetchone()[0]
        cols = self.columns
        resp.text = _encode(
            {
                "total": total,
                "skip": args["skip"],
                "limit": args["limit"],
                "results": [dict(zip(cols, r[1:], strict=True)) for r in rows],
            }
        )


class DataCollections(Page):
    table, key = "DataCollection", "dataCollectionId"

    def from_where(self, caller: Caller) -> str:
        return (
            "\n  FROM DataCollection k"
            "\n  JOIN DataCollectionGroup g ON g.dataCollectionGroupId = k.dataCollectionGroupId"
            "\n  JOIN BLSession s ON s.sessionId = g.sessionId"
            "\n  JOIN Proposal p ON p.proposalId = s.proposalId"
            + where(
                "p.proposalCode = %(code)s AND p.proposalNumber = %(number)s"
                " AND s.visit_number = %(visit)s",
                session_visible(caller),
            )
        )

    def filters(self, req: falcon.Request) -> dict:
        m = VISIT.match(req.get_param("session", required=True))
        if not m:
            raise falcon.HTTPBadRequest(title="session: not a visit name")
        return {"code": m.group(1), "number": m.group(2), "visit": int(m.group(3))}


class Proposals(Page):
    table, key = "Proposal", "proposalId"

    def from_where(self, caller: Caller) -> str:
        visible = proposal_visible(caller, "k")
        return "\n  FROM Proposal k" + where(visible)

    def filters(self, req: falcon.Request) -> dict:
        return {}


class ImageExport(Base):
    """Every image of a collection, streamed from a server-side cursor as CSV or NDJSON."""

    table = "Image"

    def build(self, caller: Caller) -> tuple[str, str]:
        visible = session_visible(caller)
        reach = (
            "EXISTS (SELECT 1 FROM DataCollection dc"
            " JOIN DataCollectionGroup g ON g.dataCollectionGroupId = dc.dataCollectionGroupId"
            " JOIN BLSession s ON s.sessionId = g.sessionId"
            " JOIN Proposal p ON p.proposalId = s.proposalId"
            f" WHERE dc.dataCollectionId = t.dataCollectionId AND {visible})"
            if visible
            else ""
        )
        sql = (
            f"SELECT {self.select} FROM Image t"
            + where("t.dataCollectionId = %(dc)s", reach)
            + " ORDER BY t.imageId"
        )
        return sql, ""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        caller = self.shared.caller(req)
        accept = req.accept or ""
        kind = next((k for k in ("text/csv", "application/x-ndjson") if k in accept), None)
        if kind is None:
            raise falcon.HTTPNotAcceptable(description="text/csv or application/x-ndjson")
        args = {**caller.params(), "dc": req.get_param_as_int("dataCollectionId", required=True)}
        cur = self.shared.conn().cursor(pymysql.cursors.SSCursor)
        cur.execute(self.statements(caller)[0], args)
        resp.content_type = kind + ("; charset=utf-8" if kind == "text/csv" else "")
        resp.stream = self.csv(cur) if kind == "text/csv" else self.ndjson(cur)

    def batches(self, cur) -> Iterator[Sequence[Sequence]]:
        try:
            while rows := cur.fetchmany(EXPORT_BATCH):
                yield rows
        finally:
            cur.close()

    def csv(self, cur) -> Iterator[bytes]:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(self.columns)
        for rows in self.batches(cur):
            writer.writerows(map(self.formatted_row, rows) if self.formatted else rows)
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()

    def formatted_row(self, r: Sequence) -> list:
        r = list(r)
        for i in self.formatted:
            r[i] = value(r[i])
        return r

    def ndjson(self, cur) -> Iterator[bytes]:
        cols = self.columns
        for rows in self.batches(cur):
            yield "".join(
                [
                    json.dumps(
                        dict(zip(cols, r, strict=True)),
                        ensure_ascii=False,
                        separators=(",", ":"),
                        default=value,
                    )
                    + "\n"
                    for r in rows
                ]
            ).encode()


class Shared:
    """What every route needs: tokens, callers, a connection per thread, table columns."""

    def __init__(self, connect, secret: str, issuer: str, audience: str, groups) -> None:
        self.connect = connect
        self.secret, self.issuer, self.audience = secret.encode(), issuer, audience
        self.groups: Mapping[str, tuple[str, ...]] = groups  # permission -> beamlines
        self.local = threading.local()
        self.people: dict[str, tuple[float, int | None, frozenset[str]]] = {}
        self.lock = threading.Lock()

    def conn(self):
        c = getattr(self.local, "conn", None)
        if c is None:
            c = self.local.conn = self.connect()
        return c

    def columns(self, table: str) -> tuple[list[str], list[int]]:
        """The columns ispyb-falcon serves (every one but blobs), in table order, and the
        positions of those whose values need formatting in CSV (dates, times, bytes...)."""
        conn = self.connect()
        with conn.cursor() as cur:
            cur.execute(
                "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS"
                " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s"
                " AND DATA_TYPE NOT IN %s ORDER BY ORDINAL_POSITION",
                (table, BLOB_TYPES),
            )
            found = cur.fetchall()
        conn.close()
        return [c for c, _ in found], [i for i, (_, t) in enumerate(found) if t in FORMATTED_TYPES]

    def person(self, login: str) -> tuple[int | None, frozenset[str]]:
        now = time.monotonic()
        hit = self.people.get(login)
        if hit and now - hit[0] < PERSON_TTL:
            return hit[1], hit[2]
        with self.conn().cursor() as cur:
            cur.execute(
                "SELECT p.personId, perm.type, p.login FROM Person p"
                " LEFT JOIN UserGroup_has_Person ugp ON ugp.personId = p.personId"
                " LEFT JOIN UserGroup_has_Permission ugperm ON ugperm.userGroupId = ugp.userGroupId"
                " LEFT JOIN Permission perm ON perm.permissionId = ugperm.permissionId"
                " WHERE p.login = %s",
                (login,),
            )
            rows = [r for r in cur.fetchall() if r[2] == login]  # the very login, as the API
        person_id = rows[0][0] if rows else None
        permissions = frozenset(r[1] for r in rows if r[1])
        with self.lock:
            self.people[login] = (now, person_id, permissions)
        return person_id, permissions

    def caller(self, req: falcon.Request) -> Caller:
        scheme, _, token = (req.get_header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer":
            raise falcon.HTTPUnauthorized(title="missing bearer token")
        try:
            claims = jwt.decode(
                token.strip(),
                self.secret,
                algorithms=["HS256"],
                audience=self.audience,
                issuer=self.issuer,
                leeway=30,
                options={"require": ["exp", "iat", "sub", "iss", "aud"], "strict_aud": True},
            )
        except jwt.InvalidTokenError as exc:
            raise falcon.HTTPUnauthorized(title=str(exc)) from None
        person_id, permissions = self.person(claims["sub"])
        sees_all = bool(SEE_ALL_ROLES & set(claims.get("roles", ()))) or bool(
            SEE_ALL_PERMISSIONS & permissions
        )
        beamlines = sorted({b for perm in permissions for b in self.groups.get(perm, ())})
        return Caller(person_id, sees_all, () if sees_all else tuple(beamlines))


def make_app(
    db: dict, secret: str, issuer: str, audience: str, groups: Mapping[str, Sequence[str]]
) -> falcon.App:
    """`db`: pymysql.connect keyword arguments (host, port, user, password, database,
    timeouts); `groups`: ISPyB permission -> the beamlines its holders are staff for."""

    def connect():
        return pymysql.connect(charset="utf8mb4", autocommit=True, **db)

    shared = Shared(connect, secret, issuer, audience, {k: tuple(v) for k, v in groups.items()})
    app = falcon.App()
    app.add_route("/datacollections", DataCollections(shared))
    app.add_route("/proposals", Proposals(shared))
    app.add_route("/images", ImageExport(shared))
    return app
