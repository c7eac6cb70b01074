"""Named list filters a route declares, beyond its columns: `?when=`, `?beamLineGroup=`, `?mine=`.

A `ListFilter` is data on a `Route` (resources/declare.py): how its value is
read (`choose`: the text -> a `Chosen`, or a 400 naming the parameter), and
the SQL it adds (`build`), which depends only on the chosen *shape*, never on
the values: those are bind parameters, so that the statement is built once
per shape and cached like every other list (statements.ListPlans). A filter
only narrows: its predicate is ANDed with what the caller may see.

"Now" is the database's own clock (`db_now()`, SQL's NOW()), the clock the
dates of ISPyB rows are written with, never a value baked into a statement.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from ..auth.principal import Principal
from ..errors import bad_request


class db_now(FunctionElement):  # noqa: N801 (an SQL function, named as SQL names it)
    """The database's clock: NOW() on MariaDB; on SQLite the local time, with the
    fraction of a second SQLAlchemy stores its DATETIMEs with (text compared as text)."""

    type = sa.DateTime()
    inherit_cache = True


@compiles(db_now)
def _now(element, compiler, **kw) -> str:
    return "NOW()"


@compiles(db_now, "sqlite")
def _now_sqlite(element, compiler, **kw) -> str:
    return "strftime('%Y-%m-%d %H:%M:%f', 'now', 'localtime')"


@dataclass(frozen=True)
class Context:
    """What a filter's value is read against: the caller and the site's beamline groups."""

    principal: Principal
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Chosen:
    """A filter's value as read: the SQL's shape, its bind values, and what it implies."""

    shape: Hashable
    values: dict[str, Any] = field(default_factory=dict)
    order: tuple[str, bool] | None = None  # (column, descending) when no order_by is given
    narrows: bool = False  # picks a small part of the table (counted with the page)


@dataclass(frozen=True)
class ListFilter:
    name: str  # the query parameter
    doc: str  # its description in the API documents
    choose: Callable[[str, Context], Chosen]
    build: Callable[[sa.Table, Mapping[str, sa.Table], Hashable], sa.ColumnElement | None]
    schema: Callable[[Mapping[str, tuple[str, ...]]], dict]  # groups -> the value's JSON Schema
    columns: tuple[str, ...] = ()  # of the route's table: a site lacking one does without it


# --- when=current|upcoming|previous ------------------------------------------------------------

# when -> (which rows, given the row's start and end and now; whether the newest come first)
WHEN: dict[str, tuple[Callable[[Any, Any, Any], sa.ColumnElement], bool]] = {
    "current": (lambda start, end, now: sa.and_(start <= now, end > now), False),
    "upcoming": (lambda start, end, now: start > now, False),
    "previous": (lambda start, end, now: end <= now, True),
}


def when(start: str = "startDate", end: str = "endDate") -> ListFilter:
    """Rows whose [start, end) interval is around, after or before the database's now,
    listed by their start: soonest first, or for the previous ones most recent first."""

    def choose(raw: str, ctx: Context) -> Chosen:
        if raw not in WHEN:
            raise bad_request(f"when must be one of {', '.join(WHEN)}, got {raw!r}", "when")
        return Chosen(raw, order=(start, WHEN[raw][1]), narrows=raw != "previous")

    def build(t: sa.Table, tables: Mapping[str, sa.Table], shape: Hashable):
        return WHEN[shape][0](t.c[start], t.c[end], db_now())

    return ListFilter(
        "when",
        f"`current`: {start} <= now < {end}; `upcoming`: {start} > now; `previous`: "
        f"{end} <= now (now: the database's clock; a row whose date is NULL is in none). "
        f"Without order_by: current and upcoming by {start} ascending (soonest first), "
        f"previous by {start} descending (most recent first).",
        choose,
        build,
        lambda groups: {"type": "string", "enum": list(WHEN)},
        (start, end),
    )


# --- beamLineGroup=<group> ---------------------------------------------------------------------


def beamline_group(column: str = "beamLineName") -> ListFilter:
    """Rows on the beamlines of one configured beamline group ([beamline_groups])."""

    def choose(raw: str, ctx: Context) -> Chosen:
        beamlines = ctx.groups.get(raw)
        if beamlines is None:
            known = ", ".join(sorted(ctx.groups)) or "none are configured"
            raise bad_request(f"beamLineGroup: no group {raw!r}; known: {known}", "beamLineGroup")
        values = {f"group_{j}": b for j, b in enumerate(beamlines)}
        return Chosen(len(beamlines), values, narrows=True)

    def build(t: sa.Table, tables: Mapping[str, sa.Table], shape: Hashable):
        return t.c[column].in_([sa.bindparam(f"group_{j}") for j in range(shape)])

    return ListFilter(
        "beamLineGroup",
        f"Only the rows whose {column} is one of the beamlines of this group of the site's "
        "`[beamline_groups]`; an unknown name is a 400 listing the known ones. It narrows "
        "what the caller sees, it never widens it.",
        choose,
        build,
        lambda groups: {"type": "string", "enum": sorted(groups)} if groups else {"type": "string"},
        (column,),
    )


# --- mine=true|false ---------------------------------------------------------------------------


def _own_sessions(tables: Mapping[str, sa.Table]) -> sa.Select:
    """The sessions of the bound person: on it (Session_has_Person), or of a proposal
    they are PI (Proposal.personId) or member (ProposalHasPerson) of, as one UNION of
    index lookups MariaDB drives the list from."""
    me = sa.bindparam("mine_person", type_=sa.Integer)
    shp = tables["Session_has_Person"].alias("own_shp")
    prop = tables["Proposal"].alias("own_proposal")
    php = tables["ProposalHasPerson"].alias("own_php")
    parts = [sa.select(shp.c.sessionId).where(shp.c.personId == me)]
    for i, of_proposal in enumerate(
        (
            sa.select(prop.c.proposalId).where(prop.c.personId == me),
            sa.select(php.c.proposalId).where(php.c.personId == me),
        )
    ):
        s = tables["BLSession"].alias(f"own_session_{i}")
        parts.append(sa.select(s.c.sessionId).where(s.c.proposalId.in_(of_proposal)))
    own = sa.union(*parts).subquery("own_sessions")
    return sa.select(own.c.sessionId)


def mine(column: str = "sessionId") -> ListFilter:
    """`true`: only the caller's own visits, whatever else they may see (staff, admins)."""

    def choose(raw: str, ctx: Context) -> Chosen:
        if raw not in ("true", "false"):
            raise bad_request(f"mine must be true or false, got {raw!r}", "mine")
        if raw == "false":
            return Chosen(False)
        person = ctx.principal.person_id
        return Chosen(True, {"mine_person": -1 if person is None else person}, narrows=True)

    def build(t: sa.Table, tables: Mapping[str, sa.Table], shape: Hashable):
        return t.c[column].in_(_own_sessions(tables)) if shape else None

    return ListFilter(
        "mine",
        "`true`: only the caller's own visits: those they are registered on "
        "(Session_has_Person) and those of proposals they are PI or member of "
        "(ProposalHasPerson), even for staff and admins who see more. `false`: no filter.",
        choose,
        build,
        lambda groups: {"type": "string", "enum": ["true", "false"]},
        (column,),
    )
