"""What a route is, as data: what differs between `/dewars` and `/samples`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa

from ..query.filters import ListFilter
from ..query.statements import Search
from ..query.visibility import Hang, Via

Match = Callable[[Mapping[str, sa.Table], str], sa.ColumnElement | None]


@dataclass(frozen=True)
class Nested:
    """A sub-collection below another route: `/proposals/{id}/persons`."""

    parent: str  # the parent route's path, e.g. "/proposals"
    column: str  # this table's column holding the parent's key, e.g. "proposalId"
    key: str  # this table's column named by `{key}` in the item path, e.g. "personId"


@dataclass(frozen=True)
class Parent:
    """`?embed=name`: the row this one points at, served under `name` (null if unseen).

    `path` goes from this route's table up to the parent, one foreign key a hop:
    `Via("BLSAMPLEID", "BLSample", "blSampleId")`, or a sample's protein through its
    crystal, `(Via("crystalId", "Crystal"), Via("proteinId", "Protein"))`.
    """

    name: str
    path: tuple[Via, ...]

    @property
    def table(self) -> str:
        return self.path[-1].table


@dataclass(frozen=True)
class Count:
    """`?embed=name`: how many rows of `table` below this row the caller may see.

    `path` goes from the counted table up to this route's table, one foreign key a hop:
    a session's collections are `(Via("dataCollectionGroupId", "DataCollectionGroup"),
    Via("sessionId", "BLSession"))`, as `/datacollections?session=` finds them.
    """

    name: str
    table: str
    path: tuple[Via, ...]


Embed = Parent | Count


@dataclass(frozen=True)
class Route:
    """One table served over HTTP (or, with path None, only how it hangs for visibility).

    The first line of `doc` is the operation summary in the API docs, the rest its description.
    """

    table: str
    path: str | None
    hangs: Hang
    doc: str = ""
    writers: frozenset[str] = frozenset()  # roles that create/update besides admin
    search: tuple[Search, ...] = ()
    item: bool = True  # serve /path/{id}
    match: Match | None = None  # other id forms than the integer key (proposal names, visits)
    nested: Nested | None = None
    # Columns that name rows of another table with no foreign key in the database to
    # say so (Protein.personId): a body may name only rows the caller may see, as with
    # the schema's foreign keys. `Via(column, table, key)`: the column points at table.key.
    refers: tuple[Via, ...] = ()
    # What `?embed=` may add to each row (resources/embeds.py): parents and counts.
    embeds: tuple[Embed, ...] = ()
    # Named list filters besides the columns (query/filters.py): `?when=`, `?mine=`...
    filters: tuple[ListFilter, ...] = ()
    # The column naming the Person who wrote the row (a comment's personId): the server
    # sets it to the caller on create and keeps it after; any caller who may see the
    # parent creates rows, only their author or an admin changes and deletes them.
    author: str | None = None
    module: str = ""

    @property
    def summary(self) -> str:
        return self.doc.strip().splitlines()[0] if self.doc.strip() else self.table

    @property
    def description(self) -> str:
        lines = self.doc.strip().splitlines()[1:]
        return "\n".join(line.strip() for line in lines).strip()


def routes(module: str, *declared: Route) -> tuple[Route, ...]:
    """Stamp the module name on its routes (sites enable modules by name)."""
    return tuple(dataclasses.replace(r, module=module) for r in declared)


def writers(*roles: str) -> frozenset[str]:
    return frozenset(roles)
