"""The hand-written baseline for `bin/bench`: one Falcon resource, PyJWT, PyMySQL, raw SQL.

`GET /datacollections?session=mx1001-1&limit=100` does by hand what ispyb-falcon does for
the same request as a user without staff beamlines:

- decode the bearer JWT (HS256, same secret, audience and issuer, same required claims);
- look up the caller's personId by login (cached for 30 s, like the real server);
- select every non-blob DataCollection column of the visit's data collection groups,
  restricted to sessions the caller may see (PI or ProposalHasPerson member of the
  proposal, or Session_has_Person of the session), ordered by dataCollectionId, with
  LIMIT/OFFSET, plus the COUNT(*) of the same rows;
- answer the same envelope {total, skip, limit, results} with the same value formatting.

Each waitress thread keeps its own PyMySQL connection, opened with the connect, read and
write timeouts `bin/bench` passes (those ispyb-falcon's `[database]` settings give PyMySQL). The SQL text is built once at start-up
(the column list is read from information_schema, in table order, like SQLAlchemy reflects it).
"""

from __future__ import annotations

import json
import re
import threading
import time

import falcon
import jwt
import pymysql

from ispyb_falcon.serialize import value

VISIT = re.compile(r"^([A-Za-z]+)(\d+)-(\d+)$")
PERSON_TTL = 30.0

FROM_WHERE = """
  FROM DataCollection dc
  JOIN DataCollectionGroup dcg ON dcg.dataCollectionGroupId = dc.dataCollectionGroupId
  JOIN BLSession s ON s.sessionId = dcg.sessionId
  JOIN Proposal p ON p.proposalId = s.proposalId
 WHERE p.proposalCode = %(code)s AND p.proposalNumber = %(number)s
   AND s.visit_number = %(visit)s
   AND (p.personId = %(me)s
        OR EXISTS (SELECT 1 FROM ProposalHasPerson php
                    WHERE php.proposalId = s.proposalId AND php.personId = %(me)s)
        OR EXISTS (SELECT 1 FROM Session_has_Person shp
                    WHERE shp.sessionId = s.sessionId AND shp.personId = %(me)s))"""


_encode = json.JSONEncoder(
    ensure_ascii=False,
    separators=(",", ":"),
    allow_nan=False,
    default=value,  # the same value formatting as the API (section 1)
).encode


class DataCollections:
    def __init__(self, connect, secret: str, issuer: str, audience: str) -> None:
        self.connect = connect
        self.secret = secret.encode()
        self.issuer = issuer
        self.audience = audience
        self.local = threading.local()
        self.people: dict[str, tuple[float, int | None]] = {}
        self.lock = threading.Lock()
        conn = connect()
        with conn.cursor() as cur:
            cur.execute(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS"
                " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'DataCollection'"
                " AND DATA_TYPE NOT IN ('tinyblob', 'blob', 'mediumblob', 'longblob',"
                " 'binary', 'varbinary') ORDER BY ORDINAL_POSITION"
            )
            self.columns = [r[0] for r in cur.fetchall()]
        conn.close()
        select = ", ".join(f"dc.`{c}`" for c in self.columns)
        self.page_sql = (
            f"SELECT {select}{FROM_WHERE}\n ORDER BY dc.dataCollectionId LIMIT %(limit)s"
            " OFFSET %(skip)s"
        )
        self.count_sql = f"SELECT COUNT(*){FROM_WHERE}"

    def conn(self):
        c = getattr(self.local, "conn", None)
        if c is None:
            c = self.local.conn = self.connect()
        return c

    def person_id(self, login: str) -> int | None:
        now = time.monotonic()
        hit = self.people.get(login)
        if hit and now - hit[0] < PERSON_TTL:
            return hit[1]
        with self.conn().cursor() as cur:
            cur.execute("SELECT personId FROM Person WHERE login = %s", (login,))
            row = cur.fetchone()
        person_id = row[0] if row else None
        with self.lock:
            self.people[login] = (now, person_id)
        return person_id

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
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
        m = VISIT.match(req.get_param("session", required=True))
        if not m:
            raise falcon.HTTPBadRequest(title="session: not a visit name")
        skip = req.get_param_as_int("skip", min_value=0, default=0)
        limit = req.get_param_as_int("limit", min_value=1, max_value=1000, default=25)
        me = self.person_id(claims["sub"])
        args = {
            "code": m.group(1),
            "number": m.group(2),
            "visit": int(m.group(3)),
            "me": -1 if me is None else me,
            "limit": limit,
            "skip": skip,
        }
        conn = self.conn()
        with conn.cursor() as cur:
            cur.execute(self.page_sql, args)
            rows = cur.fetchall()
            cur.execute(self.count_sql, args)
            total = cur.fetchone()[0]
        cols = self.columns
        body = {
            "total": total,
            "skip": skip,
            "limit": limit,
            "results": [dict(zip(cols, r, strict=True)) for r in rows],
        }
        resp.text = _encode(body)


def make_app(db: dict, secret: str, issuer: str, audience: str) -> falcon.App:
    """`db`: pymysql.connect keyword arguments (host, port, user, password, database,
    timeouts)."""

    def connect():
        return pymysql.connect(charset="utf8mb4", autocommit=True, **db)

    app = falcon.App()
    app.add_route("/datacollections", DataCollections(connect, secret, issuer, audience))
    return app
