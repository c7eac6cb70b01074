"""How a table hangs from a proposal or a session, and the SQL predicate that follows.

Every resource declares its *hang*: a tuple of `Via` links to a parent table
(any of them may make the row reachable), or a root: `PROPOSAL` for the
Proposal table, `SESSION` for BLSession, `REFERENCE` for reference data. A
`Root` then says what "reachable" means at the top:

- `VisibleRoot(principal)`: the proposals and sessions the caller may see
  (API.md section 4), optionally only the proposals still open for writing;
- `ProposalRoot(id-predicate)`: one proposal (the `?proposal=` filter);
- `SessionRoot(id-predicate)`: one session (the `?session=` filter).

- `AllOf(roots)`: rows every one of the roots reaches (what the caller may see
  *and* below the `?session=` visit, say).

`Resolver.predicate(table, root)` walks the hang up to the root and returns one
SQLAlchemy expression of nested `IN (SELECT ...)` subqueries, so every list,
count, item, export and foreign-key check carries the same rule, in SQL. The
caller's memberships are correlated `EXISTS` tests on the session or proposal
row where the statement names its rows (an item, a visit's list), and one set
of the caller's proposals or sessions (a UNION of index lookups) where it does
not (`VisibleRoot.per_row`); a table reached by several paths is, on MariaDB,
a UNION of one lookup per path. `AllOf` meets its roots at the top of every
path: a row is in a `?proposal=`
scope only if it hangs, by one path, from a proposal that is both the one named
and one the caller may see (naming a proposal the caller may not see reaches
nothing, whichever other path makes the row visible). One chain of subqueries
per path, not one per root, which MariaDB also plans with fewer temporary
tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy as sa

from ..auth.principal import Principal

PROPOSAL = "proposal"
SESSION = "session"
REFERENCE = "reference"
CLOSED_STATES = ("Closed", "Cancelled")


@dataclass(frozen=True)
class Via:
    """This table's `column` points at `table.key` (key defaults to the same column name)."""

    column: str
    table: str
    key: str | None = None

    @property
    def parent_key(self) -> str:
        return self.key or self.column


@dataclass(frozen=True)
class Me:
    """The row is the caller's own (e.g. a Person row whose personId is the caller's)."""

    column: str


Hang = str | tuple[Via | Me, ...]


class NotApplicable(Exception):
    """The root cannot reach this table (e.g. `?session=` on a proposal-level table)."""


class Root:
    """Where a hang ends; values enter predicates as named bind parameters."""

    shape: tuple = ()  # what the SQL's form depends on (values excluded)

    def params(self) -> dict:
        return {}

    def proposal(self, proposal: sa.Table, t: Mapping[str, sa.Table]) -> sa.ColumnElement | None:
        raise NotApplicable

    def session(self, session: sa.Table, t: Mapping[str, sa.Table]) -> sa.ColumnElement | None:
        raise NotApplicable

    def me(self, column: sa.ColumnElement) -> sa.ColumnElement | None:
        raise NotApplicable

    unrestricted = False


def _member(table: sa.Table, link, me, outer: sa.Table) -> sa.ColumnElement:
    """EXISTS a `table` row for the caller linked to the `outer` row (correlated to it only)."""
    return sa.exists().where(link, table.c.personId == me).correlate(outer)


@dataclass(frozen=True)
class VisibleRoot(Root):
    """What the principal may see; with `writable`, only proposals not Closed/Cancelled."""

    principal: Principal
    members_see_all_sessions: bool = True
    writable: bool = False
    # True: test the caller's membership on each proposal or session row the statement
    # reaches (correlated EXISTS), for statements that name their rows (an item, a
    # visit's list: MariaDB resolves the tests once, against the one row). False: the
    # caller's proposals or sessions as one set the statement is driven from, for
    # lists that name nothing (else MariaDB would test every session of the site).
    per_row: bool = True

    @property
    def unrestricted(self) -> bool:  # type: ignore[override]
        return self.principal.sees_all and not self.writable

    @property
    def shape(self) -> tuple:  # type: ignore[override]
        p = self.principal
        return (
            "visible",
            p.sees_all,
            len(p.beamlines) if not p.sees_all else 0,
            self.writable,
            self.members_see_all_sessions,
            self.per_row,
        )

    def params(self) -> dict:
        p = self.principal
        values = {"me": p.person_id if p.person_id is not None else -1}
        if p.beamlines and not p.sees_all:
            values.update((f"beamline_{j}", b) for j, b in enumerate(sorted(p.beamlines)))
        return values

    def _me(self):
        return sa.bindparam("me", self.params()["me"], type_=sa.Integer)

    def _beamlines(self) -> list[sa.BindParameter]:
        """One bind per beamline: the SQL is fixed for the number of beamlines, so the
        statement compiles once and runs on the driver's cursor (no expanding IN)."""
        return [
            sa.bindparam(f"beamline_{j}", b) for j, b in enumerate(sorted(self.principal.beamlines))
        ]

    def proposal(self, proposal, t):
        p = self.principal
        if p.sees_all:
            visible = None
        elif self.per_row:
            visible = self._proposal_tests(proposal, t)
        else:
            visible = proposal.c.proposalId.in_(self._mine(t, "proposalId"))
        if self.writable:
            open_ = sa.or_(proposal.c.state.is_(None), proposal.c.state.not_in(CLOSED_STATES))
            return open_ if visible is None else sa.and_(visible, open_)
        return sa.true() if visible is None else visible

    def session(self, session, t):
        p = self.principal
        if p.sees_all:
            return None if not self.writable else self._writable_session(session, t)
        if self.per_row:
            visible = self._session_tests(session, t)
        else:
            visible = session.c.sessionId.in_(self._mine(t, "sessionId"))
        if self.writable:
            return sa.and_(visible, self._writable_session(session, t))
        return visible

    def _proposal_tests(self, proposal: sa.Table, t: Mapping[str, sa.Table]) -> sa.ColumnElement:
        shp, php, ses = t["Session_has_Person"], t["ProposalHasPerson"], t["BLSession"]
        me = self._me()
        ors = [
            proposal.c.personId == me,
            _member(php, php.c.proposalId == proposal.c.proposalId, me, proposal),
            proposal.c.proposalId.in_(
                sa.select(ses.c.proposalId).where(
                    ses.c.sessionId.in_(sa.select(shp.c.sessionId).where(shp.c.personId == me))
                )
            ),
        ]
        if self.principal.beamlines:
            ors.append(
                proposal.c.proposalId.in_(
                    sa.select(ses.c.proposalId).where(ses.c.beamLineName.in_(self._beamlines()))
                )
            )
        return sa.or_(*ors)

    def _session_tests(self, session: sa.Table, t: Mapping[str, sa.Table]) -> sa.ColumnElement:
        shp, php, prop = t["Session_has_Person"], t["ProposalHasPerson"], t["Proposal"]
        me = self._me()
        ors = [_member(shp, shp.c.sessionId == session.c.sessionId, me, session)]
        if self.principal.beamlines:
            ors.append(session.c.beamLineName.in_(self._beamlines()))
        if self.members_see_all_sessions:
            ors.append(_member(prop, prop.c.proposalId == session.c.proposalId, me, session))
            ors.append(_member(php, php.c.proposalId == session.c.proposalId, me, session))
        return sa.or_(*ors)

    def _mine(self, t: Mapping[str, sa.Table], column: str) -> sa.Select:
        """The ids (`proposalId` or `sessionId`) of the caller's proposals or sessions, as
        one set: a UNION of index lookups from the caller's person id (and beamlines).

        MariaDB materializes it once per statement and drives the rest of the
        statement from it (a member's few sessions, then their groups, then their
        collections), where a test per row would read every session of the site;
        where the statement names one visit or proposal, MariaDB pushes that
        condition into each branch of the UNION.
        """
        me = self._me()
        shp = t["Session_has_Person"].alias("mine_shp")
        visitor = sa.select(shp.c.sessionId).where(shp.c.personId == me)
        if column == "proposalId":
            ses = t["BLSession"].alias("mine_session")
            visitor = sa.select(ses.c.proposalId).where(ses.c.sessionId.in_(visitor))
        parts = [visitor]
        if column == "proposalId" or self.members_see_all_sessions:
            prop = t["Proposal"].alias("mine_proposal")
            php = t["ProposalHasPerson"].alias("mine_php")
            pi = sa.select(prop.c.proposalId).where(prop.c.personId == me)
            member = sa.select(php.c.proposalId).where(php.c.personId == me)
            if column == "proposalId":
                parts += [pi, member]
            else:
                for i, of_proposal in enumerate((pi, member)):
                    s = t["BLSession"].alias(f"mine_session_{i}")
                    parts.append(sa.select(s.c.sessionId).where(s.c.proposalId.in_(of_proposal)))
        if self.principal.beamlines:
            staff = t["BLSession"].alias("mine_staff")
            parts.append(
                sa.select(staff.c[column]).where(staff.c.beamLineName.in_(self._beamlines()))
            )
        mine = sa.union(*parts).subquery(f"mine_{column}")
        return sa.select(mine.c[column])

    def _writable_session(self, session, t):
        prop = t["Proposal"]
        return session.c.proposalId.in_(
            sa.select(prop.c.proposalId).where(
                sa.or_(prop.c.state.is_(None), prop.c.state.not_in(CLOSED_STATES))
            )
        )

    def me(self, column):
        return column == self._me()


@dataclass(frozen=True)
class ProposalRoot(Root):
    """Rows below the proposals matched by `match(Proposal table)`."""

    match: object  # Callable[[sa.Table], ColumnElement]
    shape: tuple = ()

    def proposal(self, proposal, t):
        return self.match(proposal)

    def session(self, session, t):
        prop = t["Proposal"]
        return session.c.proposalId.in_(sa.select(prop.c.proposalId).where(self.match(prop)))


@dataclass(frozen=True)
class SessionRoot(Root):
    """Rows below the sessions matched by `match(BLSession table)`."""

    match: object
    shape: tuple = ()

    def session(self, session, t):
        return self.match(session)


@dataclass(frozen=True)
class AllOf(Root):
    """The rows every one of `roots` reaches."""

    roots: tuple[Root, ...]

    @property
    def unrestricted(self) -> bool:  # type: ignore[override]
        return all(r.unrestricted for r in self.roots)

    @property
    def shape(self) -> tuple:  # type: ignore[override]
        return tuple(r.shape for r in self.roots)

    def params(self) -> dict:
        values: dict = {}
        for r in self.roots:
            values.update(r.params())
        return values

    def proposal(self, proposal, t):
        return _all([r.proposal(proposal, t) for r in self.roots])

    def session(self, session, t):
        return _all([r.session(session, t) for r in self.roots])

    def me(self, column):
        return _all([r.me(column) for r in self.roots])


def _all(found: list) -> sa.ColumnElement | None:
    """AND of the predicates that restrict anything (None: every row)."""
    found = [f for f in found if f is not None]
    return None if not found else found[0] if len(found) == 1 else sa.and_(*found)


class Resolver:
    """Turns (table, root) into a predicate by following the declared hangs."""

    def __init__(
        self,
        tables: Mapping[str, sa.Table],
        hangs: Mapping[str, Hang],
        *,
        union_paths: bool = False,
    ) -> None:
        self.tables = tables
        self.hangs = hangs
        self.union_paths = union_paths  # several paths as a UNION (MariaDB), else an OR

    def predicate(
        self, name: str, root: Root, table: sa.Table | None = None
    ) -> sa.ColumnElement | None:
        """None means every row; raises NotApplicable when the root cannot reach the table."""
        if root.unrestricted:
            return None
        t = self.tables[name] if table is None else table
        hang = self.hangs[name]
        if hang == REFERENCE:
            if isinstance(root, VisibleRoot):
                return None
            raise NotApplicable
        if hang == PROPOSAL:
            return root.proposal(t, self.tables)
        if hang == SESSION:
            return root.session(t, self.tables)
        paths = []
        for link in hang:
            try:
                paths.append(self._path(t, link, root))
            except NotApplicable:
                continue
        if not paths:
            raise NotApplicable
        if len(paths) == 1:
            return paths[0](t)
        key = [c.name for c in self.tables[name].primary_key.columns]
        if len(key) != 1 or not self.union_paths:
            return sa.or_(*(path(t) for path in paths))
        # Several paths (a sample by its crystal or by its container): the rows one
        # path or another reaches, as a UNION of lookups MariaDB can drive from. An OR
        # of IN-tests would make it test every row of the table instead. (SQLite, the
        # demo's database, keeps the OR: its parser refuses the deeper nesting.)
        base = self.tables[name]
        branches = []
        for i, path in enumerate(paths):
            alias = base.alias(f"{name}_path{i}")
            branches.append(sa.select(alias.c[key[0]]).where(path(alias)))
        reached = sa.union(*branches).subquery(f"{name}_reached")
        return t.c[key[0]].in_(sa.select(reached.c[key[0]]))

    def _path(self, t: sa.Table, link: Via | Me, root: Root):
        """One way up from the table, as a function of the (aliased) table it tests;
        NotApplicable at once if the root cannot be reached that way."""
        if isinstance(link, Me):
            root.me(t.c[link.column])
            return lambda table: root.me(table.c[link.column])
        parent = self.tables[link.table]
        inner = self.predicate(link.table, root)
        sub = sa.select(parent.c[link.parent_key])
        if inner is not None:
            sub = sub.where(inner)
        return lambda table: table.c[link.column].in_(sub)
