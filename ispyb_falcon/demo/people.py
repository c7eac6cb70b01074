"""The named principals of the demo data set.

Tests across the project log in as these people and expect exactly these links,
so the base data set is declared here once and both the generator and the tests
read it. Copy 0 of the generator uses these names verbatim; copy k >= 1 appends
``_{k}`` to every login and adds ``10 * k`` to every proposal number.
"""

from __future__ import annotations

from typing import NamedTuple


class DemoPerson(NamedTuple):
    """A Person row; ``role`` is what a site authenticator would grant (by login prefix)."""

    login: str
    given_name: str
    family_name: str
    role: str = "user"
    groups: tuple[str, ...] = ()
    title: str | None = None


class DemoProposal(NamedTuple):
    """A Proposal with its PI and its ProposalHasPerson members ``(login, role)``."""

    code: str
    number: int
    state: str
    pi: str
    title: str
    members: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return f"{self.code}{self.number}"


class DemoSession(NamedTuple):
    """A BLSession; ``day`` is its start as an offset in days from ``BASE_DATE``."""

    proposal: str
    visit_number: int
    beamline: str
    day: int
    visitors: tuple[str, ...] = ()

    @property
    def visit(self) -> str:
        return f"{self.proposal}-{self.visit_number}"


ADMIN = "admin1"
MANAGER = "manager1"
PI_ANNA = "pi_anna"
MEMBER_BEN = "member_ben"
VISITOR_CARA = "visitor_cara"
STAFF_DAN = "staff_dan"
PI_EVE = "pi_eve"
USER_FRED = "user_fred"
GUS_SUPER = "gus_super"

PERSONS: tuple[DemoPerson, ...] = (
    DemoPerson(ADMIN, "Alex", "Morgan", role="admin"),
    DemoPerson(MANAGER, "Maria", "Lopez", role="manager"),
    DemoPerson(PI_ANNA, "Anna", "Kowalski", title="Dr"),
    DemoPerson(MEMBER_BEN, "Ben", "Okafor"),
    DemoPerson(VISITOR_CARA, "Cara", "Lindqvist"),
    DemoPerson(STAFF_DAN, "Dan", "Whitfield", groups=("mx_admin",)),
    DemoPerson(PI_EVE, "Eve", "Marchetti", title="Prof"),
    DemoPerson(USER_FRED, "Fred", "Baptiste"),
    DemoPerson(GUS_SUPER, "Gus", "Holloway", groups=("super_admin",)),
)

PROPOSALS: tuple[DemoProposal, ...] = (
    DemoProposal(
        "mx",
        1001,
        "Open",
        PI_ANNA,
        "Structural basis of lysozyme inhibition",
        members=((MEMBER_BEN, "Co-Investigator"),),
    ),
    DemoProposal("mx", 1002, "Closed", PI_ANNA, "Sweet proteins at atomic resolution"),
    DemoProposal("cm", 2001, "Open", PI_EVE, "Commissioning of the i24 microfocus beam"),
    DemoProposal("in", 2002, "Cancelled", PI_EVE, "Industrial fragment screening"),
)

SESSIONS: tuple[DemoSession, ...] = (
    DemoSession("mx1001", 1, "i03", 7),
    DemoSession("mx1001", 2, "i04", 21, visitors=(VISITOR_CARA,)),
    DemoSession("mx1001", 3, "i24", 35),
    DemoSession("mx1002", 1, "i03", -60),
    DemoSession("cm2001", 1, "i24", 14),
    DemoSession("cm2001", 2, "i04", 28),
    DemoSession("in2002", 1, "i24", 3),
)

# Permission.type -> description; UserGroup.name -> its permissions (as in ISPyB's lookups).
PERMISSIONS: dict[str, str] = {"mx_admin": "MX Administrator", "super_admin": "Site Admin"}
USER_GROUPS: dict[str, tuple[str, ...]] = {
    "mx_admin": ("mx_admin",),
    "super_admin": ("super_admin",),
}

# Suggested site configuration: group name -> (permission, beamlines it makes you staff for).
DEMO_BEAMLINE_GROUPS: dict[str, tuple[str, tuple[str, ...]]] = {"mx": ("mx_admin", ("i03", "i04"))}


def suffix(copy: int) -> str:
    """Login suffix of copy ``copy`` (copy 0 keeps the plain names)."""
    return f"_{copy}" if copy else ""


def login(base: str, copy: int = 0) -> str:
    """The login of ``base`` (e.g. ``pi_anna``) in copy ``copy``."""
    return base + suffix(copy)


def proposal_number(base: int, copy: int = 0) -> int:
    """Proposal numbers move by 10 per copy; the last digit keeps them apart."""
    return base + 10 * copy
