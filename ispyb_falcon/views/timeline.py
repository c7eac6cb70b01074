"""The statements of `GET /events`: a visit's timeline as one page statement and one count.

Four kinds of event come from four tables (`SOURCES`). A page is chosen from a
narrow UNION ALL of one select per kind: (kind, id, start time, session), each
branch with its table's visibility (the Resolver's predicate) and the filters,
sorted by start time, kind and id, and limited to the page. The wide rows are
then joined back for the page alone: each kind's table LEFT JOINed on (kind, id),
the visit's name, and for a data collection group the aggregates of its
collections (count, images, first start, last end, last collection), computed
only for the page's groups. A page is one statement; its total is the window
count of the narrow union on a first page, else one count statement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from ..query.visibility import Resolver, Root

DC, ROBOT, XRF, ENERGYSCAN = "dc", "robot", "xrf", "energyscan"
STATUSES = ("successful", "failed", "processed", "processingFailed")
SUCCESS = "%success%"  # DataCollection.runStatus: "DataCollection Successful", ...


@dataclass(frozen=True)
class Source:
    """Where one kind of event is read: its table and the columns that place it."""

    type: str
    kind: int  # sorts events of one start time: dc, robot, xrf, energyscan
    table: str
    key: str
    session: str
    sample: str
    start: str
    end: str
    status: str | None = None  # a column whose value `succeeded` means success
    succeeded: str | None = None


SOURCES: dict[str, Source] = {
    s.type: s
    for s in (
        Source(DC, 0, "DataCollectionGroup", "dataCollectionGroupId", "sessionId",
               "blSampleId", "startTime", "endTime"),
        Source(ROBOT, 1, "RobotAction", "robotActionId", "blsessionId", "blsampleId",
               "startTimestamp", "endTimestamp", "status", "SUCCESS"),
        Source(XRF, 2, "XFEFluorescenceSpectrum", "xfeFluorescenceSpectrumId", "sessionId",
               "blSampleId", "startTime", "endTime"),
        Source(ENERGYSCAN, 3, "EnergyScan", "energyScanId", "sessionId", "blSampleId",
               "startTime", "endTime"),
    )
}  # fmt: skip
BY_KIND = {s.kind: s for s in SOURCES.values()}
ITEM_TABLES = {DC: "DataCollection", ROBOT: "RobotAction", XRF: "XFEFluorescenceSpectrum",
               ENERGYSCAN: "EnergyScan"}  # fmt: skip
SORT = ("startTime", "kind", "id")
# The head of a page row (then each kind's item columns): where `Statements.page` puts what.
HEAD = ("kind", "id", "startTime", "sessionId", "proposalCode", "proposalNumber", "visit",
        "total", "dcEndTime", "dcSample", "experimentType", "count", "images",
        "firstStart", "lastEnd")  # fmt: skip
AT = {name: i for i, name in enumerate(HEAD)}


@dataclass(frozen=True)
class Shape:
    """What the statements' SQL depends on (values are bound)."""

    types: tuple[str, ...]  # the kinds listed, in SOURCES order
    per_collection: bool  # dataCollectionGroupId= given: one entry per collection
    sample: bool
    protein: bool
    start_gte: bool
    start_lte: bool
    status: str | None
    never: bool  # nothing can match (a group's collections, but eventType without dc)
    descending: bool
    window: bool  # count the rows in the page statement
    after: tuple[bool, ...] | None  # keyset page: which cursor values are NULL
    root: tuple


@dataclass(frozen=True)
class Layout:
    """Where things are in a page row: the head, then each table's item columns."""

    items: dict[str, tuple[int, list[str]]]  # type -> (first position, item columns)


class Statements:
    """Builds the statements of one shape from the reflected tables."""

    def __init__(
        self,
        tables: Mapping[str, sa.Table],
        resolver: Resolver,
        item_columns: Mapping[str, list[str]],
    ) -> None:
        self.t = tables
        self.resolver = resolver
        self.item_columns = item_columns  # type -> the columns its route serves

    # -- the narrow union -----------------------------------------------------------

    def visible(self, table: str, root: Root) -> list:
        """The Resolver's predicate of what the root reaches of this table, as a list."""
        pred = self.resolver.predicate(table, root)
        return [] if pred is None else [pred]

    def _programs(self, collection: sa.ColumnElement, status: int) -> sa.ColumnElement:
        """The collection has a processing program whose processingStatus is `status`,
        reached as AutoProcProgram hangs: by an AutoProcIntegration or a ProcessingJob."""
        program = self.t["AutoProcProgram"]
        ways = []
        if "AutoProcIntegration" in self.t:
            api = self.t["AutoProcIntegration"]
            ways.append(
                sa.exists()
                .select_from(
                    api.join(program, program.c.autoProcProgramId == api.c.autoProcProgramId)
                )
                .where(api.c.dataCollectionId == collection, program.c.processingStatus == status)
            )
        if "ProcessingJob" in self.t and "processingJobId" in program.c:
            job = self.t["ProcessingJob"]
            ways.append(
                sa.exists()
                .select_from(job.join(program, program.c.processingJobId == job.c.processingJobId))
                .where(job.c.dataCollectionId == collection, program.c.processingStatus == status)
            )
        return sa.or_(*ways) if ways else sa.false()

    def _collection_status(self, dc: sa.Table, status: str) -> sa.ColumnElement:
        if status == "successful":
            return dc.c.runStatus.like(SUCCESS)
        if status == "failed":
            return dc.c.runStatus.not_like(SUCCESS)  # NULL (not finished) is neither
        return self._programs(dc.c.dataCollectionId, 1 if status == "processed" else 0)

    def _dc_branch(self, shape: Shape, root: Root) -> sa.Select:
        g = self.t["DataCollectionGroup"]
        kind = sa.literal_column("0", sa.Integer)
        if shape.per_collection:
            dc = self.t["DataCollection"]
            stmt = sa.select(
                kind.label("kind"),
                _integer(dc.c.dataCollectionId).label("id"),
                dc.c.startTime.label("startTime"),
                _integer(g.c.sessionId).label("sessionId"),
            ).select_from(dc.join(g, g.c.dataCollectionGroupId == dc.c.dataCollectionGroupId))
            stmt = stmt.where(
                dc.c.dataCollectionGroupId == sa.bindparam("group", type_=sa.Integer),
                *self.visible("DataCollection", root),
            )
            start = dc.c.startTime
            if shape.never:
                stmt = stmt.where(sa.false())
            if shape.status:
                stmt = stmt.where(self._collection_status(dc, shape.status))
        else:
            stmt = sa.select(
                kind.label("kind"),
                _integer(g.c.dataCollectionGroupId).label("id"),
                g.c.startTime.label("startTime"),
                _integer(g.c.sessionId).label("sessionId"),
            ).where(*self.visible("DataCollectionGroup", root))
            start = g.c.startTime
            if shape.status:
                dc = self.t["DataCollection"].alias("status_dc")
                stmt = stmt.where(
                    sa.exists().where(
                        dc.c.dataCollectionGroupId == g.c.dataCollectionGroupId,
                        self._collection_status(dc, shape.status),
                    )
                )
        return self._common(stmt, shape, start, g.c.blSampleId)

    def _branch(self, source: Source, shape: Shape, root: Root) -> sa.Select:
        """One kind's rows; with a status it cannot have (an XRF spectrum has none), none."""
        if source.type == DC:
            return self._dc_branch(shape, root)
        t = self.t[source.table]
        stmt = sa.select(
            sa.literal_column(str(source.kind), sa.Integer).label("kind"),
            _integer(t.c[source.key]).label("id"),
            t.c[source.start].label("startTime"),
            _integer(t.c[source.session]).label("sessionId"),
        ).where(*self.visible(source.table, root))
        if shape.status:  # only collections have a processing; only robot actions a status
            if source.status is None or shape.status not in ("successful", "failed"):
                stmt = stmt.where(sa.false())
            else:
                ok = t.c[source.status] == source.succeeded  # NULL (no status) is neither
                stmt = stmt.where(ok if shape.status == "successful" else sa.not_(ok))
        return self._common(stmt, shape, t.c[source.start], t.c[source.sample])

    def _common(self, stmt: sa.Select, shape: Shape, start, sample) -> sa.Select:
        if shape.sample:
            stmt = stmt.where(sample == sa.bindparam("sample", type_=sa.Integer))
        if shape.protein:
            b, c = self.t["BLSample"], self.t["Crystal"]
            of_protein = (
                sa.select(b.c.blSampleId)
                .select_from(b.join(c, c.c.crystalId == b.c.crystalId))
                .where(c.c.proteinId == sa.bindparam("protein", type_=sa.Integer))
            )
            stmt = stmt.where(sample.in_(of_protein))
        if shape.start_gte:
            stmt = stmt.where(start >= sa.bindparam("start_gte", type_=start.type))
        if shape.start_lte:
            stmt = stmt.where(start <= sa.bindparam("start_lte", type_=start.type))
        return stmt

    def union(self, shape: Shape, root: Root, counted: bool = False) -> sa.Subquery:
        """The narrow rows (kind, id, startTime, sessionId) of every kind listed; `counted`:
        a 1 per row instead, which the indexes of the session columns answer alone."""
        branches = [self._branch(SOURCES[name], shape, root) for name in shape.types]
        if counted:
            one = sa.literal_column("1", sa.Integer).label("one")
            branches = [b.with_only_columns(one, maintain_column_froms=True) for b in branches]
        if len(branches) == 1:
            return branches[0].subquery("events")
        return sa.union_all(*branches).subquery("events")

    # -- the page and the count -----------------------------------------------------

    def order(self, u: sa.FromClause, descending: bool) -> list:
        direction = sa.desc if descending else sa.asc
        return [direction(u.c[c]) for c in SORT]

    def after(self, u: sa.FromClause, shape: Shape) -> sa.ColumnElement:
        """Rows strictly after the cursor's (startTime, kind, id) in this order; only the
        start time may be NULL (first in ascending order, last in descending order)."""
        null = shape.after[0]
        t, k, i = (u.c[c] for c in SORT)
        a = [sa.bindparam(f"after_{n}") for n in range(3)]
        if shape.descending:
            tie = sa.or_(k < a[1], sa.and_(k == a[1], i < a[2]))
            if null:
                return sa.and_(t.is_(None), tie)
            return sa.or_(t < a[0], t.is_(None), sa.and_(t == a[0], tie))
        tie = sa.or_(k > a[1], sa.and_(k == a[1], i > a[2]))
        if null:
            return sa.or_(t.is_not(None), sa.and_(t.is_(None), tie))
        return sa.or_(t > a[0], sa.and_(t == a[0], tie))

    def page(self, shape: Shape, root: Root) -> tuple[sa.Select, Layout]:
        u = self.union(shape, root)
        counted = [sa.func.count().over().label("total")] if shape.window else []
        keys = sa.select(*u.c, *counted)
        if shape.after is not None:
            keys = keys.where(self.after(u, shape))
        keys = (
            keys.order_by(*self.order(u, shape.descending))
            .limit(sa.bindparam("limit", type_=sa.Integer))
            .offset(sa.bindparam("offset", type_=sa.Integer))
            .subquery("page")
        )
        s, p = self.t["BLSession"], self.t["Proposal"]
        g = self.t["DataCollectionGroup"]
        dc = self.t["DataCollection"]
        joined = keys.outerjoin(s, s.c.sessionId == keys.c.sessionId).outerjoin(
            p, p.c.proposalId == s.c.proposalId
        )
        is_dc = keys.c.kind == 0
        if shape.per_collection:
            joined = joined.outerjoin(
                dc, sa.and_(is_dc, dc.c.dataCollectionId == keys.c.id)
            ).outerjoin(g, g.c.dataCollectionGroupId == dc.c.dataCollectionGroupId)
            group = [
                sa.case((is_dc, sa.literal_column("1", sa.Integer))),
                dc.c.numberOfImages,
                dc.c.startTime,
                dc.c.endTime,
            ]
        else:
            joined = joined.outerjoin(g, sa.and_(is_dc, g.c.dataCollectionGroupId == keys.c.id))
            group, joined = self._aggregates(keys, joined, is_dc)
        columns = [  # as HEAD names them
            keys.c.kind, keys.c.id, keys.c.startTime, keys.c.sessionId,
            p.c.proposalCode, p.c.proposalNumber, s.c.visit_number,
            keys.c.total if shape.window else sa.literal_column("NULL"),
            dc.c.endTime if shape.per_collection else g.c.endTime, g.c.blSampleId,
            g.c.experimentType, *group,
        ]  # fmt: skip
        assert len(columns) == len(HEAD)
        items: dict[str, tuple[int, list[str]]] = {}
        for name in shape.types:
            table = self.t[ITEM_TABLES[name]]
            if name != DC:
                source = SOURCES[name]
                joined = joined.outerjoin(
                    table,
                    sa.and_(keys.c.kind == source.kind, table.c[source.key] == keys.c.id),
                )
            names = self.item_columns[name]
            items[name] = (len(columns), names)
            columns += [table.c[n] for n in names]
        labelled = [c.label(f"c{i}") for i, c in enumerate(columns)]
        stmt = (
            sa.select(*labelled).select_from(joined).order_by(*self.order(keys, shape.descending))
        )
        return stmt, Layout(items)

    def _aggregates(self, keys: sa.Subquery, joined, is_dc) -> tuple[list, object]:
        """A group's collections, counted for the page's groups only: a derived table
        grouped by group, joined on the group's id (MariaDB computes it per group of the
        page, `LATERAL DERIVED`), and the last collection (the highest id) as the item."""
        d = self.t["DataCollection"].alias("group_dc")
        agg = (
            sa.select(
                d.c.dataCollectionGroupId.label("groupId"),
                sa.func.count().label("collections"),
                sa.func.sum(d.c.numberOfImages).label("images"),
                sa.func.min(d.c.startTime).label("first"),
                sa.func.max(d.c.endTime).label("last"),
                sa.func.max(d.c.dataCollectionId).label("lastId"),
            )
            .group_by(d.c.dataCollectionGroupId)
            .subquery("collections")
        )
        dc = self.t["DataCollection"]
        joined = joined.outerjoin(agg, sa.and_(is_dc, agg.c.groupId == keys.c.id)).outerjoin(
            dc, dc.c.dataCollectionId == agg.c.lastId
        )
        count = sa.case((is_dc, sa.func.coalesce(agg.c.collections, 0)))
        return [count, agg.c.images, agg.c.first, agg.c.last], joined

    def count(self, shape: Shape, root: Root) -> sa.Select:
        return sa.select(sa.func.count()).select_from(self.union(shape, root, counted=True))


def _integer(column: sa.ColumnElement) -> sa.ColumnElement:
    """A key as a BIGINT: MariaDB makes a DECIMAL of a UNION of signed and unsigned INTs
    (DataCollectionGroup's key is signed, RobotAction's unsigned), which would be served
    as 5591703.0."""
    return sa.cast(column, sa.BigInteger)


def sort_values(row: Sequence) -> list:
    """The cursor values of a page row: its start time, kind and id."""
    return [row[2], row[0], row[1]]
