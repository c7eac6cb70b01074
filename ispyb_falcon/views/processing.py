"""Processing at a glance (API.md section 8): for each data collection asked for, its
processing programs and the best result of each, in one statement.

`GET /datacollections/processing?dataCollectionId=1,2,3` answers
`{"results": [{"dataCollectionId", "programs": [...]}]}`, one entry per visible
collection in the order the ids were given. A program reaches its collection by an
`AutoProcIntegration` row or by its `ProcessingJob`; its *best result* is the
`AutoProcScaling` (of one of its `AutoProc` rows) whose overall shell reaches the
highest resolution, the lowest `resolutionLimitHigh` (a shell without one ranks
last; ties go to the lowest `autoProcScalingId`, then statistics id). A program
with no scaling that has an overall shell (still running, failed) has `best: null`.

The statement is driven from the ids given (primary key and foreign key index
lookups, no scan): the visible collections among them, the (collection, program)
pairs of both ways as a small derived table, and per program one ordered index
lookup that picks the overall shell of its best scaling, whose scaling, AutoProc
and inner and outer shells are then read by key.
"""

from __future__ import annotations

from collections.abc import Mapping

import falcon
import sqlalchemy as sa

from .. import serialize
from ..auth.principal import principal
from ..errors import bad_request, unavailable
from ..openapi.shared import TEXT, param, ref, responses, success
from ..query.statements import DriverStatement
from ..query.visibility import Root
from ..resources.conditional import etag_of_text, matches
from ..resources.generic import ANY, Backend
from ..resources.ids import integer
from ..resources.reads import representation
from . import View

PARAMETER = "dataCollectionId"
PROGRAM = (
    "autoProcProgramId",
    "processingPrograms",
    "processingStatus",
    "processingStartTime",
    "processingEndTime",
)
CELL = {n: f"refinedCell_{n}" for n in ("a", "b", "c", "alpha", "beta", "gamma")}
SHELLS = ("overall", "innerShell", "outerShell")
SHELL = (
    "resolutionLimitLow",
    "resolutionLimitHigh",
    "completeness",
    "rMerge",
    "meanIOverSigI",
    "multiplicity",
)
# The tables read; ProcessingJob too where the database has it (the second way to a program).
NEEDS = (
    "DataCollection",
    "AutoProcIntegration",
    "AutoProcProgram",
    "AutoProc",
    "AutoProcScaling",
    "AutoProcScalingStatistics",
)
COLUMNS = {
    "DataCollection": ("dataCollectionId",),
    "AutoProcIntegration": ("dataCollectionId", "autoProcProgramId"),
    "AutoProcProgram": (*PROGRAM, "processingJobId"),
    "AutoProc": ("autoProcId", "autoProcProgramId", "spaceGroup", *CELL.values()),
    "AutoProcScaling": ("autoProcScalingId", "autoProcId"),
    "AutoProcScalingStatistics": (
        "autoProcScalingStatisticsId",
        "autoProcScalingId",
        "scalingStatisticsType",
        *SHELL,
    ),
    "ProcessingJob": ("processingJobId", "dataCollectionId"),
}


def parse_ids(params: Mapping, max_limit: int) -> list[int]:
    """`dataCollectionId=3,1,3` -> [3, 1]: the ids once each, in the order given; a 400
    naming the parameter for anything else (another parameter, no id, a non-integer, more
    than `max_limit` different ids)."""
    for name in params:
        if name != PARAMETER:
            raise bad_request(f"unknown query parameter {name!r}", name)
    raw = params.get(PARAMETER)
    if raw is None:
        raise bad_request(f"{PARAMETER} is required: one or more ids, comma-separated", PARAMETER)
    if not isinstance(raw, str):
        raise bad_request(f"query parameter {PARAMETER!r} is given more than once", PARAMETER)
    ids: dict[int, None] = {}
    for part in raw.split(","):
        value = integer(part.strip())
        if value is None:
            raise bad_request(f"{PARAMETER}: {part.strip()!r} is not an id", PARAMETER)
        ids[value] = None
    if len(ids) > max_limit:
        raise bad_request(f"{PARAMETER}: at most {max_limit} ids, got {len(ids)}", PARAMETER)
    return list(ids)


def missing_columns(tables: Mapping[str, sa.Table]) -> list[str]:
    """The columns the statement reads that this database lacks (`Table.column`)."""
    return [
        f"{t}.{c}"
        for t, names in COLUMNS.items()
        if t in tables
        for c in names
        if c not in tables[t].c
    ]


def slots(n: int) -> int:
    """The number of id parameters a statement for `n` ids has: the next power of two,
    so that a few statements (1, 2, 4 ... max_limit ids) serve every request, each
    compiled once; the last id fills the slots left."""
    return 1 << (n - 1).bit_length()


def id_values(ids: list[int]) -> dict[str, int]:
    return {f"id_{i}": ids[min(i, len(ids) - 1)] for i in range(slots(len(ids)))}


def statement(t: Mapping[str, sa.Table], visible: sa.ColumnElement | None, slots: int) -> sa.Select:
    """One row per (visible collection, program), or one with NULLs for a collection
    without programs; `visible` is the Resolver's predicate on DataCollection, `slots`
    the number of id parameters (`id_0` ...)."""
    dc, api, app = t["DataCollection"], t["AutoProcIntegration"], t["AutoProcProgram"]
    ids = [sa.bindparam(f"id_{i}", type_=sa.Integer) for i in range(slots)]
    ways = [
        sa.select(api.c.dataCollectionId, api.c.autoProcProgramId).where(
            api.c.dataCollectionId.in_(ids), api.c.autoProcProgramId.is_not(None)
        )
    ]
    if "ProcessingJob" in t:
        job, by_job = t["ProcessingJob"], app.alias("by_job")
        ways.append(
            sa.select(job.c.dataCollectionId, by_job.c.autoProcProgramId)
            .join(by_job, by_job.c.processingJobId == job.c.processingJobId)
            .where(job.c.dataCollectionId.in_(ids))
        )
    pairs = sa.union(*ways).subquery("programs")  # UNION: a program reached both ways once

    # The overall shell of the program's best scaling: one ordered lookup per program.
    ap, aps = t["AutoProc"].alias("candidate"), t["AutoProcScaling"].alias("candidate_scaling")
    stats = t["AutoProcScalingStatistics"]
    ranked = stats.alias("candidate_overall")
    best_overall = (
        sa.select(ranked.c.autoProcScalingStatisticsId)
        .join(aps, aps.c.autoProcScalingId == ranked.c.autoProcScalingId)
        .join(ap, ap.c.autoProcId == aps.c.autoProcId)
        .where(
            ap.c.autoProcProgramId == app.c.autoProcProgramId,
            ranked.c.scalingStatisticsType == "overall",
        )
        .order_by(
            ranked.c.resolutionLimitHigh.is_(None),
            ranked.c.resolutionLimitHigh,
            aps.c.autoProcScalingId,
            ranked.c.autoProcScalingStatisticsId,
        )
        .limit(1)
        .correlate(app)
        .scalar_subquery()
    )
    shell = {s: stats.alias(s) for s in SHELLS}
    overall = shell["overall"]
    scaling, result = t["AutoProcScaling"], t["AutoProc"]
    frm = (
        dc.outerjoin(pairs, pairs.c.dataCollectionId == dc.c.dataCollectionId)
        .outerjoin(app, app.c.autoProcProgramId == pairs.c.autoProcProgramId)
        .outerjoin(overall, overall.c.autoProcScalingStatisticsId == best_overall)
        .outerjoin(scaling, scaling.c.autoProcScalingId == overall.c.autoProcScalingId)
        .outerjoin(result, result.c.autoProcId == scaling.c.autoProcId)
    )
    for name in SHELLS[1:]:
        frm = frm.outerjoin(
            shell[name],
            sa.and_(
                shell[name].c.autoProcScalingId == overall.c.autoProcScalingId,
                shell[name].c.scalingStatisticsType == name,
            ),
        )
    selected = [
        dc.c.dataCollectionId,
        *(app.c[c] for c in PROGRAM),
        result.c.autoProcId,
        scaling.c.autoProcScalingId,
        result.c.spaceGroup,
        *(result.c[c].label(f"cell_{n}") for n, c in CELL.items()),
        *(shell[s].c.autoProcScalingStatisticsId.label(f"{s}_id") for s in SHELLS),
        *(shell[s].c[c].label(f"{s}_{c}") for s in SHELLS for c in SHELL),
    ]
    where = [dc.c.dataCollectionId.in_(ids)]
    if visible is not None:
        where.append(visible)
    # No ORDER BY: the rows are put in order in Python (a few hundred), where MariaDB
    # would sort them at full width in a temporary table.
    return sa.select(*selected).select_from(frm).where(*where)


def _shell_ids(m: dict) -> tuple:
    """Which of a program's rows to keep where the best scaling holds an inner or outer
    shell twice: the lowest statistics ids (a shell missing counts last)."""
    return tuple((m[f"{s}_id"] is None, m[f"{s}_id"] or 0) for s in SHELLS[1:])


def grouped(rows, names: list[str], ids: list[int]) -> list[dict]:
    """The rows (their columns `names`) as the answer: per collection (in the order of
    `ids`), its programs by autoProcProgramId."""
    programs: dict[int, dict[int, tuple]] = {}
    for r in rows:
        m = dict(zip(names, r, strict=True))
        found = programs.setdefault(m["dataCollectionId"], {})
        key = m["autoProcProgramId"]
        if key is None:  # a collection without programs
            continue
        if key in found and found[key][0] <= _shell_ids(m):
            continue
        best = None
        if m["autoProcScalingId"] is not None:
            best = {
                "autoProcId": m["autoProcId"],
                "autoProcScalingId": m["autoProcScalingId"],
                "spaceGroup": m["spaceGroup"],
                "cell": {n: m[f"cell_{n}"] for n in CELL},
                **{
                    s: None if m[f"{s}_id"] is None else {c: m[f"{s}_{c}"] for c in SHELL}
                    for s in SHELLS
                },
            }
        found[key] = (_shell_ids(m), {**{c: m[c] for c in PROGRAM}, "best": best})
    return [
        {"dataCollectionId": i, "programs": [found[k][1] for k in sorted(found)]}
        for i in ids
        if (found := programs.get(i)) is not None
    ]


class DataCollectionProcessing:
    """`GET` the processing programs of the data collections named, best result each."""

    needs = {"GET": ANY}

    def __init__(self, backend: Backend) -> None:
        self.b = backend
        self.missing = missing_columns(backend.tables)
        # By the shape of the caller's root and the number of id slots: the statement
        # and, compiled once, what the driver is sent.
        self.plans: dict[tuple, tuple[sa.Select, DriverStatement | None, list[str]]] = {}

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        p = principal(req)
        representation(req, exports=())
        ids = parse_ids(req.params, self.b.max_limit)
        if self.missing:
            raise unavailable(f"this database lacks {', '.join(self.missing)}")
        root = self.b.read_root(p)  # per row: the statement names its collections
        stmt, driver, names = self.plan(root, slots(len(ids)))
        values = {**root.params(), **id_values(ids)}
        with self.b.engine.connect() as conn:
            rows = driver.execute(conn, values) if driver else conn.execute(stmt, values).all()
        results = grouped(rows, names, ids)
        req.context.rows = len(results)
        text = serialize.dumps({"results": results})
        resp.etag = tag = etag_of_text(text)
        if matches(req.if_none_match, tag):
            resp.status = falcon.HTTP_304
            return
        resp.text = text

    def plan(self, root: Root, n: int) -> tuple[sa.Select, DriverStatement | None, list[str]]:
        key = (root.shape, n)
        found = self.plans.get(key)
        if found is None:
            visible = self.b.resolver.predicate("DataCollection", root)
            stmt = statement(self.b.tables, visible, n)
            names = [c.key for c in stmt.selected_columns]
            found = self.plans[key] = (
                stmt,
                DriverStatement.compile(stmt, self.b.engine.dialect),
                names,
            )
        return found


# --- the OpenAPI description -------------------------------------------------------------

NUMBER = {"type": ["number", "null"]}


def nullable(name: str) -> dict:
    return {"anyOf": [ref("schemas", name), {"type": "null"}]}


def schemas() -> dict:
    """The named components of the answer."""
    shell = {
        "title": "ProcessingShell",
        "description": "Statistics of one resolution shell of a scaling "
        "(AutoProcScalingStatistics); null where the scaling has no such shell.",
        "type": "object",
        "properties": {c: NUMBER for c in SHELL},
    }
    cell = {
        "title": "UnitCell",
        "description": "The refined cell of the AutoProc row (Å and degrees).",
        "type": "object",
        "properties": {n: NUMBER for n in CELL},
    }
    best = {
        "title": "ProcessingResult",
        "description": "A program's best result: of the scalings of its AutoProc rows, the "
        "one whose overall shell has the lowest resolutionLimitHigh (ties: the lowest "
        "autoProcScalingId); null while the program has none.",
        "type": "object",
        "properties": {
            "autoProcId": {"type": "integer"},
            "autoProcScalingId": {"type": "integer"},
            "spaceGroup": {"type": ["string", "null"]},
            "cell": ref("schemas", "UnitCell"),
            **{s: nullable("ProcessingShell") for s in SHELLS},
        },
    }
    program = {
        "title": "ProcessingProgram",
        "description": "One run of a processing pipeline on the collection (AutoProcProgram).",
        "type": "object",
        "properties": {
            "autoProcProgramId": {"type": "integer"},
            "processingPrograms": {"type": ["string", "null"]},
            "processingStatus": {
                "type": ["integer", "null"],
                "description": "1 success, 0 failure, null still running",
            },
            "processingStartTime": {"type": ["string", "null"]},
            "processingEndTime": {"type": ["string", "null"]},
            "best": nullable("ProcessingResult"),
        },
    }
    collection = {
        "title": "DataCollectionProcessing",
        "description": "A data collection's processing programs, by autoProcProgramId.",
        "type": "object",
        "properties": {
            "dataCollectionId": {"type": "integer"},
            "programs": {"type": "array", "items": ref("schemas", "ProcessingProgram")},
        },
    }
    answer = {
        "title": "DataCollectionProcessingList",
        "description": "The visible collections among those asked for, in the order asked.",
        "type": "object",
        "properties": {
            "results": {"type": "array", "items": ref("schemas", "DataCollectionProcessing")}
        },
    }
    return {s["title"]: s for s in (shell, cell, best, program, collection, answer)}


def describe(max_limit: int) -> dict:
    return {
        "get": {
            "summary": "Processing at a glance",
            "description": "The processing programs of up to max_limit data collections and "
            "the best result of each: space group, cell and the overall, inner and outer "
            "shells. A program reaches its collection by an AutoProcIntegration or its "
            "ProcessingJob. Collections you may not see, or that do not exist, are left "
            "out; each id given is answered once, in the order given.",
            "operationId": "getDataCollectionsProcessing",
            "tags": ["processing"],
            "parameters": [
                param(
                    PARAMETER,
                    "query",
                    TEXT,
                    f"Comma-separated data collection ids, at most {max_limit}.",
                    required=True,
                ),
                ref("parameters", "If-None-Match"),
            ],
            "responses": responses(
                {
                    "200": success(
                        "Each visible collection's programs",
                        ref("schemas", "DataCollectionProcessingList"),
                        "ETag",
                    )
                },
                "304",
                "400",
                "401",
                "406",
                "503",
            ),
        }
    }


VIEW = View(
    path="/datacollections/processing",
    module="processing",
    needs=NEEDS,
    resource=DataCollectionProcessing,
    describe=describe,
    schemas=schemas,
)
