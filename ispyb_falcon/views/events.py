"""`GET /events`: a visit's timeline (API.md section 8).

Data collection groups (or, with `dataCollectionGroupId=`, that group's
collections), robot actions, XRF spectra and energy scans, newest first, as
one list with the list envelope, paging, cursors and counts of API.md section 5.
Each entry carries the row of its table as that table's route serves it; what
each kind is read from, and the SQL, are in `timeline.py`.

A site whose database lacks one of the tables of robot actions, XRF spectra or
energy scans (or does not serve it) serves the other kinds; `eventType=` naming
the missing one is a 400. The processing statuses need the processing tables,
and `proteinId=` the sample and crystal tables, likewise.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import falcon

from ..auth.principal import principal
from ..errors import bad_request
from ..openapi.shared import param, ref, responses, success
from ..query import keyset, statements
from ..query.params import COUNTS, _bounded, _datetime, _single, named
from ..query.visibility import AllOf, ProposalRoot, Root, SessionRoot
from ..resources import ids
from ..resources.generic import ANY, Backend
from ..resources.reads import ListReads, representation, send_page
from . import View
from .timeline import (
    AT,
    BY_KIND,
    DC,
    ITEM_TABLES,
    SOURCES,
    STATUSES,
    Layout,
    Shape,
    Source,
    Statements,
    sort_values,
)

INTEGERS = ("blSampleId", "proteinId", "dataCollectionGroupId")
TIMES = {"startTime[gte]": "start_gte", "startTime[lte]": "start_lte"}
PARAMETERS = frozenset(
    {"skip", "limit", "after", "count", "order", "session", "proposal", "eventType", "status",
     *INTEGERS, *TIMES}
)  # fmt: skip
DIGEST = "events"


@dataclass
class EventQuery:
    """A request's parameters, read and checked."""

    types: tuple[str, ...]
    scopes: dict[str, ids.Parsed]
    values: dict[str, Any]  # bind values of the filters
    status: str | None
    descending: bool
    skip: int
    limit: int
    count: str
    after: tuple | None
    per_collection: bool


def scope_root(tables, name: str, parsed: ids.Parsed) -> Root:
    """The rows below one proposal or session (its id or name bound), as the lists' scopes."""
    where = ids.SCOPES[name][1]
    shape = (name, parsed[0])
    if name == "proposal":
        return ProposalRoot(lambda _t: where(tables, parsed, "scope_proposal"), shape)
    return SessionRoot(lambda _t: where(tables, parsed, "scope_session"), shape)


def placed(backend: Backend, source: Source) -> bool:
    """Whether the live table has the columns that place its events (else not listed)."""
    columns = backend.tables[source.table].c
    wanted = (source.key, source.session, source.sample, source.start, source.end, source.status)
    return all(c is None or c in columns for c in wanted)


class Events:
    """The resource of `GET /events`."""

    needs = {"GET": ANY}

    def __init__(self, backend: Backend) -> None:
        self.b = backend
        served = {
            name
            for name, table in ITEM_TABLES.items()
            if table in backend.tables and table in backend.catalog
        }
        self.types = tuple(
            t
            for t, source in SOURCES.items()
            if t in served and source.table in backend.tables and placed(backend, source)
        )
        self.processing = "AutoProcProgram" in backend.tables and (
            "AutoProcIntegration" in backend.tables or "ProcessingJob" in backend.tables
        )
        self.proteins = "BLSample" in backend.tables and "Crystal" in backend.tables
        item_columns = {}
        for name in self.types:
            table, schema = backend.tables[ITEM_TABLES[name]], backend.catalog[ITEM_TABLES[name]]
            item_columns[name] = [
                c.name
                for c in table.columns
                if c.name in schema.columns and c.name not in schema.blobs
            ]
        self.statements = Statements(backend.tables, backend.resolver, item_columns)
        self._plans: OrderedDict[tuple, tuple] = OrderedDict()
        self._lock = threading.Lock()

    # -- the request -----------------------------------------------------------------

    def parse(self, params: dict) -> EventQuery:
        for name in params:
            if name not in PARAMETERS:
                raise bad_request(f"unknown query parameter {name!r}", name)
        get = {k: _single(k, v) for k, v in params.items()}
        values: dict[str, Any] = {}
        for name in INTEGERS:
            if name in get:
                n = ids.integer(get[name])
                if n is None:
                    raise bad_request(f"{name} must be an integer id, got {get[name]!r}", name)
                values[name] = n
        for name, bind in TIMES.items():
            if name in get:
                try:
                    values[bind] = _datetime(get[name])
                except ValueError as exc:
                    raise bad_request(
                        f"{name}: cannot read {get[name]!r} as a date and time ({exc})", name
                    ) from None
        types = self.types
        if "eventType" in get:
            wanted = named(
                "eventType",
                get["eventType"],
                SOURCES,
                "event type(s)",
                f"known: {', '.join(SOURCES)}",
            )
            absent = [t for t in wanted if t not in self.types]
            if absent:
                raise bad_request(
                    f"eventType: this site does not serve {', '.join(absent)}"
                    f" (table {', '.join(SOURCES[t].table for t in absent)})",
                    "eventType",
                )
            types = tuple(t for t in self.types if t in wanted)
        status = get.get("status")
        if status is not None and status not in STATUSES:
            raise bad_request(
                f"status must be one of {', '.join(STATUSES)}, got {status!r}", "status"
            )
        if status in ("processed", "processingFailed") and not self.processing:
            raise bad_request(f"status={status}: this site does not serve processing", "status")
        if "proteinId" in values and not self.proteins:
            raise bad_request("proteinId: this site does not serve samples", "proteinId")
        per_collection = "dataCollectionGroupId" in values
        if per_collection:  # the group's collections alone (none if eventType leaves dc out)
            values["never"] = DC not in types
            types = (DC,)
        scopes = {}
        for name in ("session", "proposal"):
            if name in get:
                parsed = ids.SCOPES[name][0](get[name]) if get[name] else None
                if parsed is None:
                    raise bad_request(f"{name}: {get[name]!r} is not a {name} id or name", name)
                scopes[name] = parsed
        order = get.get("order", "desc")
        if order not in ("asc", "desc"):
            raise bad_request(f"order must be asc or desc, got {order!r}", "order")
        count = get.get("count", "exact")
        if count not in COUNTS:
            raise bad_request(f"count must be one of {', '.join(COUNTS)}, got {count!r}", "count")
        q = EventQuery(
            types=types,
            scopes=scopes,
            values=values,
            status=status,
            descending=order == "desc",
            skip=_bounded("skip", get["skip"], 0, 2**31) if "skip" in get else 0,
            limit=_bounded("limit", get["limit"], 1, self.b.max_limit)
            if "limit" in get
            else self.b.default_limit,
            count=count,
            after=None,
            per_collection=per_collection,
        )
        if "after" in get:
            if "skip" in get:
                raise bad_request("give either skip or after, not both", "after")
            try:
                q.after = keyset.decode(get["after"], keyset.digest(DIGEST, params), 3)
            except ValueError as exc:
                raise bad_request(f"after: {exc}", "after") from None
        return q

    def root(self, p, q: EventQuery) -> Root:
        """What the caller may see, and below the `?session=` / `?proposal=` given. A
        request that names its rows tests the caller's memberships per row (reads.py)."""
        named = bool(q.scopes) or q.per_collection or "blSampleId" in q.values
        root = self.b.read_root(p, per_row=named)
        if not q.scopes:
            return root
        return AllOf((root, *(scope_root(self.b.tables, n, v) for n, v in q.scopes.items())))

    def plan(self, shape: Shape, root) -> tuple:
        found = self._plans.get(shape)
        if found is not None:
            with contextlib.suppress(KeyError):
                self._plans.move_to_end(shape)
            return found
        page, layout = self.statements.page(shape, root)
        count = self.statements.count(shape, root)
        dialect = self.b.engine.dialect
        compiled = (
            statements.DriverStatement.compile(page, dialect),
            statements.DriverStatement.compile(count, dialect),
        )
        driver = compiled if None not in compiled else None
        plan = statements.Plan(page, count, statements.named_binds(page, count), (2, 0, 1), driver)
        found = (plan, layout)
        with self._lock:
            self._plans[shape] = found
            if len(self._plans) > 256:
                self._plans.popitem(last=False)
        return found

    # -- the answer -------------------------------------------------------------------

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        p = principal(req)
        q = self.parse(req.params)
        representation(req, exports=())  # JSON only: 406 for an Accept it cannot meet
        root = self.root(p, q)
        window = q.count == "exact" and q.after is None
        shape = Shape(
            types=q.types,
            per_collection=q.per_collection,
            sample="blSampleId" in q.values,
            protein="proteinId" in q.values,
            start_gte="start_gte" in q.values,
            start_lte="start_lte" in q.values,
            status=q.status,
            never=q.values.get("never", False),  # per_collection without dc
            descending=q.descending,
            window=window,
            after=None if q.after is None else tuple(v is None for v in q.after),
            root=(root.shape, tuple((n, v[0]) for n, v in q.scopes.items())),
        )
        plan, layout = self.plan(shape, root)
        values = dict(root.params())
        for name, parsed in q.scopes.items():
            values.update(ids.params(parsed, f"scope_{name}"))
        renames = {"blSampleId": "sample", "proteinId": "protein", "dataCollectionGroupId": "group"}
        for name, value in q.values.items():
            if name != "never":
                values[renames.get(name, name)] = value
        if q.after is not None:
            values.update(keyset.values(q.after))
        values.update(limit=q.limit + 1, offset=q.skip)
        with self.b.engine.connect() as conn:
            rows = plan.rows(conn, statements.bind_values(plan, values))
            if window and rows:
                total = rows[0][AT["total"]]  # COUNT(*) OVER () of the narrow union
            else:
                total = ListReads.total(conn, plan, values, q.count)
        more = len(rows) > q.limit
        rows = rows[: q.limit]
        cursor = (
            keyset.encode(keyset.digest(DIGEST, req.params), sort_values(rows[-1]))
            if more
            else None
        )
        req.context.rows = len(rows)
        send_page(req, resp, q, total, cursor, [self.entry(r, layout) for r in rows])

    @staticmethod
    def entry(row, layout: Layout) -> dict:
        """A page row as an entry: its head, and its kind's columns as the item."""
        source = BY_KIND[row[AT["kind"]]]
        first, names = layout.items[source.type]
        item = dict(zip(names, row[first : first + len(names)], strict=True))
        code, number, visit = (row[AT[n]] for n in ("proposalCode", "proposalNumber", "visit"))
        entry = {
            "type": source.type,
            "id": row[AT["id"]],
            "startTime": row[AT["startTime"]],
            "endTime": item.get(source.end),
            "session": f"{code}{number}-{visit}" if code and visit is not None else None,
            "sessionId": row[AT["sessionId"]],
            "blSampleId": item.get(source.sample),
            "count": 1,
            "images": None,
            "experimentType": None,
            "firstCollectionStartTime": None,
            "lastCollectionEndTime": None,
            "item": item,
        }
        if source.type == DC:
            images = row[AT["images"]]
            entry.update(
                endTime=row[AT["dcEndTime"]],
                blSampleId=row[AT["dcSample"]],
                count=row[AT["count"]],
                images=None if images is None else int(images),  # MariaDB sums as a DECIMAL
                experimentType=row[AT["experimentType"]],
                firstCollectionStartTime=row[AT["firstStart"]],
                lastCollectionEndTime=row[AT["lastEnd"]],
                item=item if item.get("dataCollectionId") is not None else None,  # none yet
            )
        return entry


# -- the OpenAPI description ----------------------------------------------------------

TIME = {"type": "string", "examples": ["2026-01-12T09:00:00"]}
NULLABLE_TIME = {"type": ["string", "null"]}
ENTRY = {
    "title": "Event",
    "type": "object",
    "required": ["type", "id", "startTime", "endTime", "session", "sessionId", "blSampleId",
                 "count", "item"],
    "properties": {
        "type": {"type": "string", "enum": list(SOURCES)},
        "id": {"type": "integer", "description": "dataCollectionGroupId (dataCollectionId with "
               "`dataCollectionGroupId=`), robotActionId, xfeFluorescenceSpectrumId or "
               "energyScanId"},
        "startTime": {**NULLABLE_TIME, "description": "When it started (the list's order): "
                      "DataCollectionGroup.startTime, RobotAction.startTimestamp, startTime"},
        "endTime": NULLABLE_TIME,
        "session": {"type": ["string", "null"], "description": "The visit, e.g. `mx1001-2`"},
        "sessionId": {"type": ["integer", "null"]},
        "blSampleId": {"type": ["integer", "null"]},
        "count": {"type": "integer", "description": "dc: the group's data collections; 1 "
                  "for the others"},
        "images": {"type": ["integer", "null"], "description": "dc: the images of its "
                   "collections (sum of numberOfImages)"},
        "experimentType": {"type": ["string", "null"], "description": "dc: "
                           "DataCollectionGroup.experimentType"},
        "firstCollectionStartTime": {**NULLABLE_TIME, "description": "dc: the earliest "
                                     "startTime of its collections"},
        "lastCollectionEndTime": {**NULLABLE_TIME, "description": "dc: the latest endTime "
                                  "of its collections"},
        "item": {"type": ["object", "null"], "description": "The row of the event's table as "
                 "its own route serves it: dc: the group's last DataCollection (highest "
                 "dataCollectionId; null for a group without one), robot: RobotAction, xrf: "
                 "XFEFluorescenceSpectrum, energyscan: EnergyScan"},
    },
}  # fmt: skip
INTEGER = {"type": "integer", "minimum": 0}


def describe(max_limit: int) -> dict:
    """The OpenAPI operation of `GET /events`."""
    listed = {
        "title": "EventList",
        "type": "object",
        "required": ["total", "skip", "limit", "next", "results"],
        "properties": {
            "total": {"type": ["integer", "null"], "description": "Events matching the "
                      "filters (`null` with `count=none`)"},
            "skip": {"type": "integer"},
            "limit": {"type": "integer"},
            "next": {"type": ["string", "null"], "description": "Cursor of the next page "
                     "(`?after=`), null on the last page."},
            "results": {"type": "array", "items": ENTRY},
        },
    }  # fmt: skip
    return {
        "get": {
            "summary": "Events: a visit's timeline",
            "description": "Data collection groups (`dc`), robot actions (`robot`), XRF spectra "
            "(`xrf`) and energy scans (`energyscan`) as one list, newest first (`order=asc`: "
            "oldest first), each with the row of its table in `item`. With "
            "`dataCollectionGroupId=`, one `dc` entry per collection of that group. Each "
            "kind is visible as its own table's rows are.",
            "operationId": "listEvents",
            "tags": ["experiments"],
            "parameters": [
                ref("parameters", "skip"),
                ref("parameters", "after"),
                ref("parameters", "count"),
                ref("parameters", "limit"),
                ref("parameters", "order"),
                ref("parameters", "session"),
                ref("parameters", "proposal"),
                param(
                    "eventType",
                    "query",
                    {
                        "type": "string",
                        "pattern": "^(dc|robot|xrf|energyscan)(,(dc|robot|xrf|energyscan))*$",
                    },
                    "Only these kinds (comma-separated): dc, robot, xrf, energyscan.",
                ),
                param(
                    "status",
                    "query",
                    {"type": "string", "enum": list(STATUSES)},
                    "successful / failed: groups with a collection whose runStatus does / "
                    "does not contain `success`, robot actions whose status is / is not "
                    "SUCCESS; processed / processingFailed: groups with a collection that "
                    "has a processing program of processingStatus 1 / 0. XRF spectra and "
                    "energy scans have no status.",
                ),
                param("blSampleId", "query", INTEGER, "Only events of this sample."),
                param("proteinId", "query", INTEGER, "Only events of this protein's samples."),
                param(
                    "dataCollectionGroupId",
                    "query",
                    INTEGER,
                    "The collections of this group, one entry each.",
                ),
                param("startTime[gte]", "query", TIME, "Started at or after this time."),
                param("startTime[lte]", "query", TIME, "Started at or before this time."),
                ref("parameters", "If-None-Match"),
            ],
            "responses": responses(
                {"200": success("A page of events", listed, "ETag", "Link")},
                "304",
                "400",
                "401",
                "406",
                "503",
            ),  # fmt: skip
        }
    }


EVENTS = View(
    path="/events",
    module="experiments",
    needs=("DataCollectionGroup", "DataCollection"),
    resource=Events,
    describe=describe,
)
