"""Benchmark data that looks like a facility: a million data collections on MariaDB.

`build(url)` adds, to a MariaDB database holding the official ISPyB schema, what
several years of MX beamlines would leave behind:

- a few thousand people, a few hundred proposals (mostly `mx`, some commissioning
  `cm` and industrial `in`), each with co-investigators (ProposalHasPerson), and
  a few thousand sessions on i03, i04, i04-1, i23, i24 and i02-2, each with its
  local contact and team (Session_has_Person);
- per session, a shipment (Shipping, Dewar, pucks of 16) of the samples it
  measured, with proteins and crystals per proposal;
- DataCollectionGroups of a few sweeps each (1-4) and, now and then, a grid scan
  of hundreds of collections, and their DataCollections with every column a real
  rotation or grid collection has (paths, times, beam, detector, snapshots);
- one big proposal (`mx900001`) with `proposal_collections` collections over
  many visits, one of which (`mx900001-7`, on i03) holds `visit_collections`;
- one login per kind of caller: a visitor on the big visit only, a
  co-investigator of the big proposal, its PI, beamline staff (a Person in a
  UserGroup holding the ISPyB permission `mx_admin`, which the server maps to
  i03 and i04 through `[beamline_groups]`), and an admin (a token role).

The plan (people, proposals, sessions, groups) is drawn in Python from a fixed
seed; the wide rows are written by MariaDB itself with `INSERT ... SELECT` from
two temporary plan tables and the Sequence engine's `seq_1_to_N` tables, so a
million collections take about a minute. Ids are allocated above the largest
ids present, so the data coexists with the official test data and the demo
data. The big proposal marks a build: `build` on a database that has it
returns what is there if the counts are the wanted ones, and refuses otherwise.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pymysql
import sqlalchemy as sa

SEED = 20260301
CODE, FIRST_NUMBER, VISIT_NUMBER = "mx", 900001, 7
PROPOSAL = f"{CODE}{FIRST_NUMBER}"
VISIT = f"{PROPOSAL}-{VISIT_NUMBER}"
LOGINS = {
    "visit_member": "fac_visitor",
    "proposal_member": "fac_member",
    "pi": "fac_pi",
    "staff": "fac_staff",
    "admin": "admin_fac",  # the dummy authenticator makes admin* logins admins
}
STAFF_PERMISSION = "mx_admin"
STAFF_BEAMLINES = ("i03", "i04")
STAFF_GROUP = "fac_mx_staff"
VISIT_BEAMLINE = "i03"
# Beamline -> (share of the sessions, detector index, beam size x/y in mm).
BEAMLINES = {
    "i03": (0.26, 0, 0.080, 0.020),
    "i04": (0.22, 1, 0.050, 0.010),
    "i04-1": (0.14, 2, 0.060, 0.050),
    "i24": (0.16, 3, 0.010, 0.010),
    "i23": (0.08, 2, 0.090, 0.060),
    "i02-2": (0.14, 1, 0.010, 0.010),
}
DETECTORS = (  # model, serial, pixels x, pixels y, pixel size (mm), file suffix
    ("Eiger2 XE 16M", "FAC-E2XE16M-01", 4148, 4362, 0.075, "h5"),
    ("Eiger2 XE 9M", "FAC-E2XE9M-01", 3108, 3262, 0.075, "h5"),
    ("Pilatus3 6M", "FAC-P3-6M-01", 2463, 2527, 0.172, "cbf"),
    ("Eiger2 X CdTe 9M", "FAC-E2X9MCDTE-01", 3108, 3262, 0.075, "h5"),
)
PROTEINS = (  # acronym, name, molecular mass, space group
    ("lyso", "Hen egg-white lysozyme", 14313.1, "P43212"),
    ("thau", "Thaumatin I", 22205.0, "P41212"),
    ("insu", "Bovine insulin", 5733.5, "I213"),
    ("tryp", "Bovine trypsin", 23305.0, "P212121"),
    ("protk", "Proteinase K", 28930.0, "P43212"),
    ("xyli", "Glucose isomerase", 43225.0, "I222"),
    ("therm", "Thermolysin", 34360.0, "P6122"),
    ("cona", "Concanavalin A", 25580.0, "I222"),
    ("mpro", "SARS-CoV-2 main protease", 33796.6, "C121"),
    ("nsp3", "Nsp3 macrodomain", 18500.2, "P43"),
    ("pbp2", "Penicillin-binding protein 2", 70030.0, "P21212"),
    ("kras", "KRAS G12C", 19450.5, "P3221"),
    ("brd4", "BRD4 bromodomain 1", 15069.4, "P212121"),
    ("hsp90", "HSP90 N-terminal domain", 25290.8, "I222"),
)
GIVEN = (
    "Anna", "Ben", "Cara", "Dan", "Eve", "Fred", "Gus", "Hana", "Ivan", "Jia", "Kofi", "Lena",
    "Marco", "Nina", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Victor",
    "Wen", "Xavier", "Yara", "Zoltan", "Aoife", "Bjorn", "Chiara", "Dmitri",
)  # fmt: skip
FAMILY = (
    "Kowalski", "Okafor", "Lindqvist", "Whitfield", "Marchetti", "Baptiste", "Holloway",
    "Nakamura", "Petrov", "Zhang", "Mensah", "Fischer", "Rossi", "Dubois", "Haddad",
    "Sharma", "Walsh", "Garcia", "Nilsson", "Rahman", "Iyer", "Novak", "Liu", "Moreau",
    "Costa", "Szabo", "Byrne", "Larsen", "Romano", "Volkov", "Evans", "Tanaka",
)  # fmt: skip
TOPICS = (
    "Structural enzymology of", "Fragment screening against", "Ligand complexes of",
    "Conformational dynamics of", "Inhibitor design for", "Room-temperature structures of",
    "Phasing and refinement of", "Drug discovery targeting",
)  # fmt: skip
COMMENTS = (
    "Ice rings at 3.7 A, recentred",
    "Crystal slipped, re-collected",
    "Good diffraction to the edge",
    "Beam dumped during collection",
    "Multiple lattices visible",
    "Anisotropic, weak in c*",
)
SMALL_GROUPS = ((1, 0.45), (2, 0.25), (3, 0.15), (4, 0.15))  # sweeps per group, share
GRID_SHARE, GRID_SIZES = 0.008, (100, 500)  # grid scans: share of groups, size range
NO_SAMPLE_SHARE = 0.03  # groups with no sample (commissioning, beam tests)
PUCK, PUCKS_PER_DEWAR = 16, 10
DC_CHUNK = 100_000  # collections per INSERT ... SELECT (one transaction, one progress line)
FIRST_DAY = datetime(2021, 1, 4, 9, 0, 0)
DAYS = 5 * 365
BIG_FIRST, BIG_LAST = datetime(2023, 1, 9, 9, 0, 0), datetime(2026, 5, 4, 9, 0, 0)


class FacilityError(Exception):
    """The database cannot take (or already holds other) facility data."""


@dataclass(frozen=True)
class Facility:
    """What a build left in the database: the names, ids and logins a benchmark needs."""

    visit: str
    session_id: int
    proposal: str
    proposal_id: int
    logins: dict[str, str]
    staff_permission: str
    staff_beamlines: tuple[str, ...]
    collections: int  # in every proposal of the facility
    visit_collections: int
    proposal_collections: int
    visit_groups: int = 0

    def summary(self) -> str:
        lines = [
            f"facility: {self.collections} data collections; proposal {self.proposal} "
            f"(proposalId {self.proposal_id}) {self.proposal_collections}; visit {self.visit} "
            f"(sessionId {self.session_id}) {self.visit_collections} in {self.visit_groups} groups",
            f"  staff permission {self.staff_permission} -> beamlines "
            + ", ".join(self.staff_beamlines),
        ]
        lines += [f"  {kind:16} {login}" for kind, login in self.logins.items()]
        return "\n".join(lines)


# --- the plan: drawn in Python, from a fixed seed -------------------------------------------

NAMED = {kind: i for i, kind in enumerate(LOGINS)}  # person index of each named caller


@dataclass
class _Proposal:
    code: str
    number: int
    title: str
    pi: int  # person index
    state: str
    proteins: tuple[int, ...]  # indexes into PROTEINS
    first_protein: int = 0  # facility-wide index of its first Protein row
    members: list[tuple[int, str]] = field(default_factory=list)  # ProposalHasPerson
    start: datetime | None = None  # of its allocation: before its first session


@dataclass
class _Session:
    proposal: int  # index into the plan's proposals
    beamline: str
    start: datetime
    collections: int
    visit_number: int = 0
    index: int = 0  # in time order; session, group and collection ids follow it
    hours: float = 8.0
    first_dc: int = 0  # facility-wide index of its first collection
    samples: int = 0
    first_sample: int = 0
    first_puck: int = 0
    first_dewar: int = 0
    team: list[tuple[int, str]] = field(default_factory=list)  # Session_has_Person

    @property
    def pucks(self) -> int:
        return -(-self.samples // PUCK)

    @property
    def dewars(self) -> int:
        return -(-self.pucks // PUCKS_PER_DEWAR)


class _Plan:
    """Who, which proposals and sessions, and how each session's collections are grouped.

    Person 0..4 are the named callers (in the order of LOGINS), then beamline staff
    (local contacts), then users. Proposal 0 is the big one.
    """

    def __init__(self, collections: int, visit: int, proposal: int) -> None:
        self.rng = random.Random(SEED)
        self.people = max(60, collections // 250)
        crowd = range(len(LOGINS), self.people)
        self.staff = list(crowd[: max(3, self.people // 200)])
        self.users = list(crowd[len(self.staff) :])
        self.proposals = self._proposals(max(8, collections // 2500))
        self.sessions = self._sessions(collections, visit, proposal)
        # (group, session, size, first in session, number in session, type, sample in session)
        self.groups: list[tuple[int, int, int, int, int, str, int | None]] = []
        self.samples = self.pucks = self.dewars = 0
        for s in self.sessions:
            self._groups(s)

    def _proposals(self, n: int) -> list[_Proposal]:
        rng, pi, found = self.rng, NAMED["pi"], []
        roles = ("Co-Investigator", "Alternate Contact", "Associate", "ERA Admin")
        for i in range(n):
            code = CODE if i == 0 else rng.choices(("mx", "cm", "in"), (0.86, 0.06, 0.08))[0]
            proteins = tuple(rng.sample(range(len(PROTEINS)), rng.randint(2, 6)))
            owner = rng.choice(self.staff if code == "cm" else self.users)
            p = _Proposal(
                code=code,
                number=FIRST_NUMBER + i,
                title=f"{rng.choice(TOPICS)} {PROTEINS[proteins[0]][1].lower()}",
                pi=owner,
                state="Open" if i == 0 or rng.random() < 0.8 else "Closed",
                proteins=proteins,
            )
            picked = rng.sample(self.users, min(len(self.users), rng.randint(2, 9)))
            p.members = [(m, rng.choice(roles)) for m in picked if m != owner]
            found.append(p)
        big = found[0]
        big.pi, big.title = pi, "Structural enzymology of bacterial cell-wall synthesis (BAG)"
        big.members.insert(0, (NAMED["proposal_member"], "Co-Investigator"))
        for i in rng.sample(range(1, n), min(3, n - 1)):  # the PI leads a few more
            found[i].pi = pi
            found[i].members = [m for m in found[i].members if m[0] != pi]
        for p in found[1:]:  # and co-investigates some
            if p.pi != pi and rng.random() < 0.05:
                p.members.append((pi, "Co-Investigator"))
        first = 0
        for p in found:
            p.first_protein, first = first, first + len(p.proteins)
        return found

    def _sessions(self, collections: int, visit: int, proposal: int) -> list[_Session]:
        rng = self.rng
        visits = max(VISIT_NUMBER + 1, (proposal - visit) // 2000 + 1)
        counts = _split(proposal - visit, visits - 1, rng)
        counts.insert(VISIT_NUMBER - 1, visit)
        found = []
        every = (BIG_LAST - BIG_FIRST) / (visits - 1)  # its visits, evenly over 3 years
        for v, n in enumerate(counts, start=1):
            start = (BIG_FIRST + (v - 1) * every).replace(hour=9, minute=0, second=0, microsecond=0)
            line = VISIT_BEAMLINE if v == VISIT_NUMBER else rng.choice(("i03", "i04", "i24"))
            found.append(_Session(0, line, start, n, visit_number=v))
        lines, shares = list(BEAMLINES), [b[0] for b in BEAMLINES.values()]
        others = len(self.proposals) - 1
        remaining, k = collections - proposal, 0
        while remaining > 0:
            n = min(remaining, max(5, min(3000, int(rng.lognormvariate(5.2, 0.7)))))
            owner = 1 + (k if k < others else rng.randrange(others))  # each at least once
            start = FIRST_DAY + timedelta(days=rng.randrange(DAYS), hours=rng.choice((0, 8, 16)))
            found.append(_Session(owner, rng.choices(lines, shares)[0], start, n))
            remaining, k = remaining - n, k + 1
        numbered: dict[int, int] = {}
        for s in sorted(found[visits:], key=lambda s: s.start):
            s.visit_number = numbered[s.proposal] = numbered.get(s.proposal, 0) + 1
        found.sort(key=lambda s: (s.start, s.proposal, s.visit_number))
        first_dc = 0
        for i, s in enumerate(found):
            s.index, s.first_dc = i, first_dc
            first_dc += s.collections
            s.hours = min(120.0, max(8.0, s.collections * 30 / 3600))
            s.team = self._team(s)
            p = self.proposals[s.proposal]
            if p.start is None:  # sessions are in time order: its first one
                p.start = s.start - timedelta(days=60)
        return found

    def _team(self, s: _Session) -> list[tuple[int, str]]:
        """A local contact, some of the proposal's people, sometimes someone else."""
        rng, p = self.rng, self.proposals[s.proposal]
        crowd = [m for m, _ in p.members if m >= len(LOGINS)]  # the named callers stay apart
        team = {rng.choice(self.staff): "Local Contact"}
        for m in rng.sample(crowd, min(len(crowd), rng.randint(1, 4))):
            team.setdefault(m, "Team Member")
        if rng.random() < 0.3:
            team.setdefault(rng.choice(self.users), "Data Access")
        if s.proposal == 0 and s.visit_number == VISIT_NUMBER:
            team[NAMED["visit_member"]] = "Team Member"
        return list(team.items())

    def _groups(self, s: _Session) -> None:
        """Split the session's collections into groups of a few sweeps and some grid scans."""
        rng, at, number = self.rng, 0, 0
        sizes, weights = zip(*SMALL_GROUPS, strict=True)
        while at < s.collections:
            number += 1
            left = s.collections - at
            if rng.random() < GRID_SHARE and left >= GRID_SIZES[0]:
                size, kind = min(left, rng.randint(*GRID_SIZES)), "Mesh"
            else:
                size = min(left, rng.choices(sizes, weights)[0])
                kind = _small_kind(size, rng.random())
            sample = None
            if kind == "Mesh" or rng.random() >= NO_SAMPLE_SHARE:
                sample, s.samples = s.samples, s.samples + 1
            self.groups.append((len(self.groups), s.index, size, at, number, kind, sample))
            at += size
        s.first_sample, s.first_puck, s.first_dewar = self.samples, self.pucks, self.dewars
        self.samples += s.samples
        self.pucks += s.pucks
        self.dewars += s.dewars


def _small_kind(size: int, draw: float) -> str:
    """The experiment type of a group of `size` sweeps (`draw` uniform in [0, 1))."""
    if size == 1:
        return "Characterization" if draw < 0.35 else "OSC"
    if size >= 3 and draw < 0.2:
        return "MAD"
    return "SAD" if draw < 0.4 else "Helical" if draw < 0.5 else "OSC"


def _split(total: int, parts: int, rng: random.Random) -> list[int]:
    """`total` in `parts` uneven shares that add up exactly."""
    if parts <= 0:
        return []
    weights = [rng.uniform(0.5, 1.5) for _ in range(parts)]
    scale = total / sum(weights)
    shares = [int(w * scale) for w in weights]
    shares[-1] += total - sum(shares)
    return shares


# --- writing: small tables from Python, wide ones by MariaDB from the plan tables -----------

KEYS = {  # tables whose ids are allocated here, above the largest id present
    "Person": "personId",
    "Proposal": "proposalId",
    "BLSession": "sessionId",
    "Protein": "proteinId",
    "Crystal": "crystalId",
    "Shipping": "shippingId",
    "Dewar": "dewarId",
    "Container": "containerId",
    "BLSample": "blSampleId",
    "DataCollectionGroup": "dataCollectionGroupId",
    "DataCollection": "dataCollectionId",
}
SCHEMA_TABLES = (*KEYS, "ProposalHasPerson", "Session_has_Person", "UserGroup_has_Person")
# Bulk inserts leave InnoDB's index statistics behind (a visit's collections were listed by a
# scan of every collection): the build ends with ANALYZE TABLE of what it filled.
ANALYZED = ", ".join(f"`{t}`" for t in SCHEMA_TABLES)


def _insert(table: str, columns: str) -> str:
    """`INSERT ... VALUES (%s, ...)`, which PyMySQL's executemany sends as multi-row inserts."""
    n = len(columns.split(","))
    return f"INSERT INTO `{table}` ({columns}) VALUES ({', '.join(['%s'] * n)})"


class _Step:
    """The statements of one step: their rows add up for the progress line."""

    def __init__(self, cur) -> None:
        self.cur, self.rows = cur, 0

    def run(self, sql: str, args: Sequence | None = None) -> None:
        self.rows += self.cur.execute(sql, args)

    def many(self, table: str, columns: str, rows: Sequence[Sequence]) -> None:
        if rows:
            self.rows += self.cur.executemany(_insert(table, columns), rows)


class _Writer:
    """One connection; every step is one transaction and one progress line."""

    def __init__(self, conn, progress: Callable[[str], object]) -> None:
        self.conn, self.progress = conn, progress
        self.cur = conn.cursor()

    def one(self, sql: str, args: Sequence | None = None):
        self.cur.execute(sql, args)
        return self.cur.fetchone()

    @contextmanager
    def unchecked(self) -> Iterator[None]:
        """Foreign keys not checked row by row, as a dump is loaded: the plan makes them
        right (and the tests check them), and the checks cost a tenth of the time."""
        self.cur.execute("SET SESSION foreign_key_checks = 0")
        try:
            yield
        finally:
            self.cur.execute("SET SESSION foreign_key_checks = 1")

    @contextmanager
    def step(self, name: str) -> Iterator[_Step]:
        started = time.perf_counter()
        step = _Step(self.cur)
        try:
            yield step
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        self.progress(f"  {name:28} {step.rows:>9} rows {time.perf_counter() - started:6.1f} s")

    def bases(self) -> dict[str, int]:
        """One past the largest id of every table whose ids are allocated here."""
        return {
            t: self.one(f"SELECT COALESCE(MAX(`{k}`), 0) + 1 FROM `{t}`")[0]
            for t, k in KEYS.items()
        }


def _person_rows(plan: _Plan, base: int) -> list[tuple]:
    names = {
        "visit_member": ("Cara", "Lindqvist", None),
        "proposal_member": ("Ben", "Okafor", None),
        "pi": ("Anna", "Kowalski", "Dr"),
        "staff": ("Dan", "Whitfield", None),
        "admin": ("Alex", "Morgan", None),
    }
    rows = []
    for i in range(plan.people):
        if i < len(LOGINS):
            kind = list(LOGINS)[i]
            given, family, title = names[kind]
            login = LOGINS[kind]
        else:
            given, family = GIVEN[i % len(GIVEN)], FAMILY[i * 7 % len(FAMILY)]
            title = ("Dr", "Prof", None, None, None)[i % 5]
            login = f"fac_u{i:05d}"
        email = f"{given}.{family}.{i}@example.org".lower()
        phone = f"+44 1235 {778000 + i % 1000:06d}" if i % 3 else None
        rows.append((base + i, family, given, title, email, phone, login, FIRST_DAY))
    return rows


def _people(w: _Writer, plan: _Plan, ids: dict[str, int]) -> None:
    person = ids["Person"]
    with w.step("Person") as step:
        step.many(
            "Person",
            "personId, familyName, givenName, title, emailAddress, phoneNumber, login,"
            " recordTimeStamp",
            _person_rows(plan, person),
        )
    with w.step("UserGroup_has_Person (staff)") as step:
        found = w.one(
            "SELECT MIN(permissionId) FROM Permission WHERE type = %s", (STAFF_PERMISSION,)
        )[0]
        if found is None:
            step.run(
                "INSERT INTO Permission (type, description) VALUES (%s, 'MX beamline staff')",
                (STAFF_PERMISSION,),
            )
            found = w.cur.lastrowid
        group = w.one("SELECT userGroupId FROM UserGroup WHERE name = %s", (STAFF_GROUP,))
        if group is None:
            step.run("INSERT INTO UserGroup (name) VALUES (%s)", (STAFF_GROUP,))
            group = (w.cur.lastrowid,)
        step.run(
            "INSERT IGNORE INTO UserGroup_has_Permission (userGroupId, permissionId) VALUES (%s, %s)",
            (group[0], found),
        )
        staff = [NAMED["staff"], *plan.staff]
        step.many(
            "UserGroup_has_Person", "userGroupId, personId", [(group[0], person + i) for i in staff]
        )


def _proposals(w: _Writer, plan: _Plan, ids: dict[str, int]) -> None:
    person, proposal = ids["Person"], ids["Proposal"]
    with w.step("Proposal") as step:
        rows = []
        for i, p in enumerate(plan.proposals):
            start = p.start or FIRST_DAY
            rows.append(
                (proposal + i, person + p.pi, p.title, p.code, str(p.number), start, "mx",
                 p.state, start, start + timedelta(days=730))
            )  # fmt: skip
        step.many(
            "Proposal",
            "proposalId, personId, title, proposalCode, proposalNumber, bltimeStamp,"
            " proposalType, state, startDate, endDate",
            rows,
        )
    with w.step("ProposalHasPerson") as step:
        rows = [
            (proposal + i, person + m, role)
            for i, p in enumerate(plan.proposals)
            for m, role in p.members
        ]
        step.many("ProposalHasPerson", "proposalId, personId, role", rows)


def _sessions(w: _Writer, plan: _Plan, ids: dict[str, int]) -> None:
    person, proposal, session = ids["Person"], ids["Proposal"], ids["BLSession"]
    names = {row[0] - person: f"{row[2]} {row[1]}" for row in _person_rows(plan, person)}
    with w.step("BLSession") as step:
        rows = []
        for s in plan.sessions:
            end = s.start + timedelta(hours=s.hours)
            contact = s.team[0][0]
            comment = "BAG block, unattended overnight" if s.hours > 24 else None
            rows.append(
                (session + s.index, proposal + s.proposal, s.start, end, s.beamline, 1,
                 max(1, round(s.hours / 8)), comment, names[contact], s.start, s.visit_number,
                 1, end, int(s.start.year < 2024), "Low", 0)
            )  # fmt: skip
        step.many(
            "BLSession",
            "sessionId, proposalId, startDate, endDate, beamLineName, scheduled, nbShifts,"
            " comments, beamLineOperator, bltimeStamp, visit_number, usedFlag, lastUpdate,"
            " archived, riskRating, purgedProcessedData",
            rows,
        )
    with w.step("Session_has_Person") as step:
        rows = [
            (session + s.index, person + m, role, int(role == "Data Access"))
            for s in plan.sessions
            for m, role in s.team
        ]
        step.many("Session_has_Person", "sessionId, personId, role, remote", rows)


def _detectors(w: _Writer) -> list[int]:
    """The facility's detectors (found by serial number, or added)."""
    found = []
    with w.step("Detector") as step:
        for model, serial, px, py, size, _ in DETECTORS:
            row = w.one(
                "SELECT detectorId FROM Detector WHERE detectorSerialNumber = %s", (serial,)
            )
            if row is None:
                step.run(
                    "INSERT INTO Detector (detectorType, detectorManufacturer, detectorModel,"
                    " detectorPixelSizeHorizontal, detectorPixelSizeVertical,"
                    " detectorSerialNumber, detectorDistanceMin, detectorDistanceMax,"
                    " sensorThickness, numberOfPixelsX, numberOfPixelsY, localName)"
                    " VALUES ('Hybrid pixel', 'Dectris', %s, %s, %s, %s, 120, 1000, 0.45, %s, %s, %s)",
                    (model, size, size, serial, px, py, model.upper()),
                )
                row = (w.cur.lastrowid,)
            found.append(row[0])
    return found


def _proteins(w: _Writer, plan: _Plan, ids: dict[str, int]) -> None:
    person, proposal = ids["Person"], ids["Proposal"]
    proteins, crystals = [], []
    for i, p in enumerate(plan.proposals):
        for j, k in enumerate(p.proteins):
            acronym, name, mass, group = PROTEINS[k]
            n = p.first_protein + j
            when = p.start or FIRST_DAY
            proteins.append(
                (ids["Protein"] + n, proposal + i, name, acronym, f"{name} ({p.code}{p.number})",
                 1, 1, "GREEN", mass, "protein", person + p.pi, when, 0, 0)
            )  # fmt: skip
            crystals.append((ids["Crystal"] + n, ids["Protein"] + n, f"{acronym}-x1", group, when))
    with w.step("Protein, Crystal") as step:
        step.many(
            "Protein",
            "proteinId, proposalId, name, acronym, description, hazardGroup, containmentLevel,"
            " safetyLevel, molecularMass, proteinType, personId, bltimeStamp,"
            " isCreatedBySampleSheet, `global`",
            proteins,
        )
        step.many("Crystal", "crystalId, proteinId, name, spaceGroup, recordTimeStamp", crystals)


PLAN_TABLES = (
    """CREATE TEMPORARY TABLE fac_session (
        i INT PRIMARY KEY, sessionId INT, proposalId INT,
        ownerId INT, visit VARCHAR(24), beamline VARCHAR(8), root VARCHAR(80),
        start DATETIME, step DOUBLE, shippingId INT, dewar0 INT,
        dewars INT, puck0 INT, pucks INT, sample0 INT,
        protein0 INT, crystal0 INT, proteins INT, dc0 INT,
        detectorId INT, suffix VARCHAR(4), half_x DOUBLE, half_y DOUBLE, beam_x DOUBLE,
        beam_y DOUBLE)""",
    """CREATE TEMPORARY TABLE fac_group (
        i INT PRIMARY KEY, groupId INT, session INT, size INT, at INT, number INT,
        kind VARCHAR(24), sample INT)""",
)


def _plan_tables(w: _Writer, plan: _Plan, ids: dict[str, int], detectors: list[int]) -> None:
    """The plan, where MariaDB's INSERT ... SELECT statements can join it."""
    rows = []
    for s in plan.sessions:
        p = plan.proposals[s.proposal]
        _, detector, beam_x, beam_y = BEAMLINES[s.beamline]
        _, _, px, py, size, suffix = DETECTORS[detector]
        visit = f"{p.code}{p.number}-{s.visit_number}"
        rows.append(
            (s.index, ids["BLSession"] + s.index, ids["Proposal"] + s.proposal,
             ids["Person"] + p.pi, visit, s.beamline,
             f"/dls/{s.beamline}/data/{s.start.year}/{visit}/", s.start,
             s.hours * 3600 / max(1, s.collections), ids["Shipping"] + s.index,
             ids["Dewar"] + s.first_dewar, s.dewars, ids["Container"] + s.first_puck, s.pucks,
             ids["BLSample"] + s.first_sample, ids["Protein"] + p.first_protein,
             ids["Crystal"] + p.first_protein, len(p.proteins),
             ids["DataCollection"] + s.first_dc, detectors[detector], suffix,
             round(px * size / 2, 2), round(py * size / 2, 2), beam_x, beam_y)
        )  # fmt: skip
    group = ids["DataCollectionGroup"]
    with w.step("plan tables") as step:
        for sql in PLAN_TABLES:
            w.cur.execute(sql)
        step.many(
            "fac_session",
            "i, sessionId, proposalId, ownerId, visit, beamline, root, start, step,"
            " shippingId, dewar0, dewars, puck0, pucks, sample0, protein0, crystal0, proteins,"
            " dc0, detectorId, suffix, half_x, half_y, beam_x, beam_y",
            rows,
        )
        # Numbers and the experiment types' own names only: written as SQL text directly,
        # a few times faster than PyMySQL's escaping of a third of a million rows.
        values = [
            f"({i},{group + i},{s},{size},{at},{n},'{kind}',{'NULL' if x is None else x})"
            for i, s, size, at, n, kind, x in plan.groups
        ]
        for first in range(0, len(values), 20_000):
            step.run(
                "INSERT INTO fac_group (i, groupId, session, size, at, number, kind, sample)"
                " VALUES " + ",".join(values[first : first + 20_000])
            )


def _per_session(w: _Writer, plan: _Plan, table: str, count: str, insert: str) -> None:
    """`insert` (an INSERT ... SELECT from `fac_session s`) with `q.seq` running from 1 to
    the session's `count` (its dewars or its pucks)."""
    most = max((getattr(s, count) for s in plan.sessions), default=0) or 1
    with w.step(table) as step:
        step.run(
            f"{insert}\n        FROM fac_session s JOIN seq_1_to_{most} q ON q.seq <= s.{count}"
        )


def _shipments(w: _Writer, plan: _Plan) -> None:
    """A shipment per session: its dewars, its pucks of 16, one sample per group."""
    with w.step("Shipping") as step:
        step.run(
            """INSERT INTO Shipping (shippingId, proposalId, shippingName,
                deliveryAgent_agentName, deliveryAgent_shippingDate, deliveryAgent_deliveryDate,
                shippingStatus, bltimeStamp, isStorageShipping, creationDate, comments,
                shippingType, SAFETYLEVEL, source)
            SELECT s.shippingId, s.proposalId, CONCAT(s.visit, ' samples'), 'DHL',
                DATE(s.start - INTERVAL 6 DAY), DATE(s.start - INTERVAL 3 DAY), 'returned',
                s.start - INTERVAL 8 DAY, 0, s.start - INTERVAL 8 DAY,
                IF(s.i MOD 4 = 0, 'Please keep cold; return by courier', NULL), 'Dewar',
                'Green', 'facility'
            FROM fac_session s WHERE s.pucks > 0"""
        )
    _per_session(
        w,
        plan,
        "Dewar",
        "dewars",
        """INSERT INTO Dewar (dewarId, shippingId, code, storageLocation, dewarStatus,
            bltimeStamp, isStorageDewar, barCode, firstExperimentId, customsValue,
            transportValue, type, facilityCode, weight, source)
        SELECT s.dewar0 + q.seq - 1, s.shippingId, CONCAT(s.visit, '-d', q.seq),
            CONCAT(s.beamline, ' stores'), 'returned', s.start - INTERVAL 3 DAY, 0,
            CONCAT('FAC-D', s.dewar0 + q.seq - 1), s.sessionId, 500, 250, 'Dewar',
            CONCAT('DLS-MX-', LPAD(s.dewar0 + q.seq - 1, 7, '0')),
            18 + (s.dewar0 + q.seq) MOD 60 / 10, 'facility'""",
    )
    _per_session(
        w,
        plan,
        "Container",
        "pucks",
        f"""INSERT INTO Container (containerId, dewarId, code, containerType, capacity,
            sampleChangerLocation, containerStatus, bltimeStamp, beamlineLocation, barcode,
            sessionId, ownerId, requestedReturn, priorityPipelineId, source)
        SELECT s.puck0 + q.seq - 1, s.dewar0 + (q.seq - 1) DIV {PUCKS_PER_DEWAR},
            CONCAT(s.visit, '-puck', q.seq), 'Puck', {PUCK}, (q.seq - 1) MOD 37 + 1,
            'processing', s.start - INTERVAL 3 DAY, s.beamline,
            CONCAT('FAC-P', s.puck0 + q.seq - 1), s.sessionId, s.ownerId, 0, NULL,
            'facility'""",
    )
    with w.step("BLSample") as step:
        step.run(
            f"""INSERT INTO BLSample (blSampleId, crystalId, containerId, name, location,
                loopType, loopLength, blSampleStatus, isInSampleChanger, recordTimeStamp,
                source)
            SELECT s.sample0 + g.sample, s.crystal0 + g.sample MOD s.proteins,
                s.puck0 + g.sample DIV {PUCK},
                CONCAT(pr.acronym, '_x', LPAD(g.sample + 1, 4, '0')), g.sample MOD {PUCK} + 1,
                ELT(g.sample MOD 3 + 1, 'Nylon', 'Mitegen', 'Litho'), 0.1, 'processed', 0,
                s.start - INTERVAL 8 DAY, 'facility'
            FROM fac_group g
            JOIN fac_session s ON s.i = g.session
            JOIN Protein pr ON pr.proteinId = s.protein0 + g.sample MOD s.proteins
            WHERE g.sample IS NOT NULL"""
        )


def _groups(w: _Writer) -> None:
    with w.step("DataCollectionGroup") as step:
        step.run(
            f"""INSERT INTO DataCollectionGroup (dataCollectionGroupId, sessionId, comments,
                blSampleId, experimentType, startTime, endTime, actualSampleSlotInContainer,
                actualContainerBarcode, actualContainerSlotInSC, xtalSnapshotFullPath,
                scanParameters)
            SELECT g.groupId, s.sessionId,
                CASE WHEN g.kind = 'Mesh' THEN CONCAT('Grid scan of ', g.size, ' rows')
                     WHEN g.sample IS NULL THEN 'Beam test'
                     WHEN g.i MOD 17 = 0 THEN 'Re-collected after recentring' END,
                s.sample0 + g.sample, g.kind,
                s.start + INTERVAL FLOOR(g.at * s.step) SECOND,
                s.start + INTERVAL FLOOR((g.at + g.size) * s.step) SECOND,
                g.sample MOD {PUCK} + 1, CONCAT('FAC-P', s.puck0 + g.sample DIV {PUCK}),
                (g.sample DIV {PUCK}) MOD 37 + 1,
                CONCAT(s.root, 'snapshots/group_', g.number, '.png'),
                IF(g.kind = 'Mesh', JSON_OBJECT('steps_x', 40, 'steps_y', g.size,
                   'dx_mm', 0.02, 'dy_mm', 0.02), NULL)
            FROM fac_group g JOIN fac_session s ON s.i = g.session"""
        )


_COMMENTS = ", ".join(f"'{c}'" for c in COMMENTS)
_SNAPSHOT = "CONCAT(x.dir, 'snapshots/', x.prefix, '_', x.k, '_{angle}.png')"
# DataCollection column -> its value; `x.n` is the collection's id, `x.k` its number in
# its group (x: the join of a group, its session and seq_1_to_N, below).
_COLLECTION = (
    ("dataCollectionId", "x.n"),
    ("BLSAMPLEID", "x.sample"),
    ("SESSIONID", "x.sessionId"),
    ("experimenttype", "x.kind"),
    ("dataCollectionNumber", "x.k"),
    ("startTime", "x.t0"),
    ("endTime", "x.t0 + INTERVAL LEAST(GREATEST(1, FLOOR(x.step) - 1),"
                " CEIL(x.images * x.exposure) + 3) SECOND"),
    ("runStatus", "CASE WHEN x.n MOD 131 = 0 THEN 'DataCollection Stopped'"
                  " WHEN x.n MOD 307 = 0 THEN 'DataCollection Failed'"
                  " ELSE 'DataCollection Successful' END"),
    ("axisStart", "x.axis0"),
    ("axisEnd", "x.axis0 + x.images * x.axis"),
    ("axisRange", "x.axis"),
    ("overlap", "0"),
    ("numberOfImages", "x.images"),
    ("startImageNumber", "1"),
    ("numberOfPasses", "1"),
    ("exposureTime", "x.exposure"),
    ("imageDirectory", "x.dir"),
    ("imagePrefix", "x.prefix"),
    ("imageSuffix", "x.suffix"),
    ("imageContainerSubPath", "IF(x.suffix = 'h5', '/entry/data/data', NULL)"),
    ("fileTemplate", "CONCAT(x.prefix, '_', x.k,"
                     " IF(x.suffix = 'h5', '_master.h5', '_#####.cbf'))"),
    ("wavelength", "CASE x.kind WHEN 'SAD' THEN IF(x.beamline = 'i23', 2.7552, 0.9795)"
                   " WHEN 'MAD' THEN ELT((x.k - 1) MOD 4 + 1, 0.9792, 0.9795, 0.9537, 0.9796)"
                   " ELSE 0.9763 END"),
    ("resolution", "x.resolution"),
    ("detectorDistance", "ROUND(120 + x.n * 53 MOD 380, 1)"),
    ("xBeam", "ROUND(x.half_x + (x.n MOD 7 - 3) / 100, 2)"),
    ("yBeam", "ROUND(x.half_y + (x.n MOD 5 - 2) / 100, 2)"),
    ("comments", f"IF(x.n MOD 23 = 0, ELT(x.n DIV 23 MOD {len(COMMENTS)} + 1, {_COMMENTS}), NULL)"),
    ("printableForReport", "1"),
    ("slitGapVertical", "x.beam_y"),
    ("slitGapHorizontal", "x.beam_x"),
    ("transmission", "ROUND(1 + x.n * 29 MOD 1000 / 10, 1)"),
    ("synchrotronMode", "'Top-up'"),
    *((f"xtalSnapshotFullPath{i + 1}", _SNAPSHOT.format(angle=90 * i)) for i in range(4)),
    ("rotationAxis", "'Omega'"),
    ("phiStart", "0"),
    ("kappaStart", "IF(x.kind = 'OSC' AND x.k > 1, 30 * (x.k - 1), 0)"),
    ("omegaStart", "x.axis0"),
    ("chiStart", "0"),
    ("resolutionAtCorner", "ROUND(x.resolution * 0.82, 2)"),
    ("detector2Theta", "0"),
    ("undulatorGap1", "ROUND(5.3 + x.n MOD 40 / 100, 3)"),
    ("beamSizeAtSampleX", "x.beam_x"),
    ("beamSizeAtSampleY", "x.beam_y"),
    ("centeringMethod", "IF(x.kind = 'Mesh', 'diffraction', IF(x.n MOD 4 = 0, 'optical', 'xray'))"),
    ("averageTemperature", "IF(x.beamline = 'i23', 40, 100)"),
    ("ACTUALSAMPLESLOTINCONTAINER", f"x.sample_in MOD {PUCK} + 1"),
    ("ACTUALCONTAINERBARCODE", f"CONCAT('FAC-P', x.puck0 + x.sample_in DIV {PUCK})"),
    ("ACTUALCONTAINERSLOTINSC", f"(x.sample_in DIV {PUCK}) MOD 37 + 1"),
    ("beamShape", "'ellipse'"),
    ("dataCollectionGroupId", "x.groupId"),
    ("detectorId", "x.detectorId"),
    ("flux", "ROUND(1e12 * (1 + x.n * 7 MOD 300 / 100), -8)"),
    ("flux_end", "ROUND(0.998e12 * (1 + x.n * 7 MOD 300 / 100), -8)"),
)  # fmt: skip
# One row per collection: a group, its session, its sample, and seq_1_to_N for its sweeps.
_SWEEPS = """
    SELECT g.groupId, g.kind, g.sample AS sample_in, s.sample0 + g.sample AS sample,
        s.sessionId, s.beamline, s.puck0, s.detectorId, s.suffix, s.half_x, s.half_y,
        s.beam_x, s.beam_y, s.step, CAST(q.seq AS SIGNED) AS k,
        CAST(s.dc0 + g.at + q.seq - 1 AS SIGNED) AS n,
        s.start + INTERVAL FLOOR((g.at + q.seq - 1) * s.step) SECOND AS t0,
        CASE g.kind WHEN 'Mesh' THEN 40 WHEN 'Characterization' THEN 4
             ELSE IF((g.groupId + q.seq) MOD 3 = 0, 1800, 3600) END AS images,
        CASE g.kind WHEN 'Mesh' THEN 0 WHEN 'Characterization' THEN 1
             ELSE IF((g.groupId + q.seq) MOD 3 = 0, 0.2, 0.1) END AS axis,
        CASE g.kind WHEN 'Mesh' THEN (g.groupId MOD 36) * 10
             WHEN 'Characterization' THEN 90 * (q.seq - 1) ELSE 0 END AS axis0,
        IF(g.kind = 'Mesh', 0.01, ELT((g.groupId + q.seq) MOD 3 + 1, 0.002, 0.004, 0.01))
            AS exposure,
        ROUND(1.1 + (g.groupId * 37 + q.seq) MOD 150 / 100, 2) AS resolution,
        COALESCE(b.name, CONCAT('beamtest_', g.number)) AS prefix,
        CONCAT(s.root, COALESCE(b.name, CONCAT('beamtest_', g.number)), '/') AS dir
    FROM fac_group g
    JOIN fac_session s ON s.i = g.session
    JOIN seq_1_to_{most} q ON q.seq <= g.size
    LEFT JOIN BLSample b ON b.blSampleId = s.sample0 + g.sample
    WHERE g.i BETWEEN %s AND %s"""


def _collections(w: _Writer, plan: _Plan) -> None:
    """The DataCollections, about DC_CHUNK per statement (and transaction)."""
    names = ", ".join(c for c, _ in _COLLECTION)
    values = ",\n    ".join(v for _, v in _COLLECTION)
    most = max(g[2] for g in plan.groups)
    sql = (
        f"INSERT INTO DataCollection ({names})\nSELECT {values}\n"
        f"FROM ({_SWEEPS.format(most=most)}) x"
    )
    chunks, first, done = [], 0, 0
    for last, group in enumerate(plan.groups):
        done += group[2]
        if done >= DC_CHUNK or last == len(plan.groups) - 1:
            chunks.append((first, last))
            first, done = last + 1, 0
    for n, chunk in enumerate(chunks, start=1):
        with w.step(f"DataCollection {n}/{len(chunks)}") as step:
            step.run(sql, chunk)


# --- build ---------------------------------------------------------------------------------


def _connect(url: str):
    """A PyMySQL connection to the MariaDB database of `url`, checked for what a build needs."""
    u = sa.make_url(url)
    if u.get_backend_name() not in ("mysql", "mariadb"):
        raise FacilityError(
            f"facility data needs a MariaDB database (mysql+pymysql://...), not {u.get_backend_name()}"
        )
    if not u.database:
        raise FacilityError("facility data: the URL names no database")
    args = {"host": u.host or "127.0.0.1", "port": u.port or 3306, "user": u.username or "root"}
    if u.password:
        args["password"] = u.password
    try:
        conn = pymysql.connect(database=u.database, charset="utf8mb4", autocommit=False, **args)
    except pymysql.MySQLError as exc:
        raise FacilityError(f"cannot connect to database {u.database}: {exc.args[-1]}") from None
    with conn.cursor() as cur:
        names = ", ".join(f"'{t}'" for t in SCHEMA_TABLES)
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.TABLES"
            f" WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({names})"
        )
        if cur.fetchone()[0] != len(SCHEMA_TABLES):
            conn.close()
            raise FacilityError(f"database {u.database} does not hold the ISPyB schema")
        try:
            cur.execute("SELECT COUNT(*) FROM seq_1_to_2")
        except pymysql.MySQLError:
            conn.close()
            raise FacilityError(
                "facility data needs MariaDB's Sequence engine (seq_1_to_N)"
            ) from None
    return conn


def _present(w: _Writer) -> Facility | None:
    """What a previous build left (None: no trace of one)."""
    row = w.one(
        "SELECT p.proposalId, s.sessionId FROM Proposal p LEFT JOIN BLSession s"
        " ON s.proposalId = p.proposalId AND s.visit_number = %s"
        " WHERE p.proposalCode = %s AND p.proposalNumber = %s",
        (VISIT_NUMBER, CODE, str(FIRST_NUMBER)),
    )
    if row is None:
        if w.one("SELECT 1 FROM Person WHERE login = %s", (LOGINS["pi"],)):
            raise FacilityError(
                f"a facility build stopped half-way in this database ({LOGINS['pi']} exists,"
                f" {PROPOSAL} does not): drop the database and build again"
            )
        return None
    proposal_id, session_id = row
    count = (
        "SELECT COUNT(*), COUNT(DISTINCT g.dataCollectionGroupId) FROM DataCollection dc"
        " JOIN DataCollectionGroup g ON g.dataCollectionGroupId = dc.dataCollectionGroupId"
        " JOIN BLSession s ON s.sessionId = g.sessionId"
    )
    in_visit, groups = w.one(count + " WHERE s.sessionId = %s", (session_id or 0,))
    in_proposal = w.one(count + " WHERE s.proposalId = %s", (proposal_id,))[0]
    total = w.one(
        count + " JOIN Proposal p ON p.proposalId = s.proposalId"
        " WHERE p.proposalId >= %s AND p.proposalNumber LIKE '9_____'",
        (proposal_id,),
    )[0]
    return Facility(
        visit=VISIT,
        session_id=session_id,
        proposal=PROPOSAL,
        proposal_id=proposal_id,
        logins=dict(LOGINS),
        staff_permission=STAFF_PERMISSION,
        staff_beamlines=STAFF_BEAMLINES,
        collections=total,
        visit_collections=in_visit,
        proposal_collections=in_proposal,
        visit_groups=groups,
    )


def sized(collections: int) -> dict[str, int]:
    """`build` keywords for `collections` in all: a visit of 2 % of them (at most 20,000)
    in a proposal of 10 % (at most 100,000), as at 1,000,000."""
    return {
        "collections": collections,
        "visit_collections": max(1, min(20_000, collections // 50)),
        "proposal_collections": max(1, min(100_000, collections // 10)),
    }


def build(
    url: str,
    *,
    collections: int = 1_000_000,
    visit_collections: int = 20_000,
    proposal_collections: int = 100_000,
    progress: Callable[[str], object] = print,
) -> Facility:
    """Build the facility's data in the MariaDB database of `url` (or find it built).

    Raises FacilityError for a database that is not MariaDB with the ISPyB schema, for
    counts that do not nest (visit <= proposal <= collections), and for a database that
    already holds facility data with other counts.
    """
    if not 1 <= visit_collections <= proposal_collections <= collections:
        raise FacilityError(
            "facility data: need 1 <= visit_collections <= proposal_collections <= collections"
        )
    wanted = (collections, visit_collections, proposal_collections)
    conn = _connect(url)
    try:
        w = _Writer(conn, progress)
        found = _present(w)
        if found is not None:
            have = (found.collections, found.visit_collections, found.proposal_collections)
            if have != wanted:
                raise FacilityError(
                    f"this database already holds facility data ({PROPOSAL}) with"
                    f" {have[0]} collections, {have[1]} in {VISIT} and {have[2]} in {PROPOSAL};"
                    f" wanted {wanted[0]}, {wanted[1]} and {wanted[2]}: use another database"
                )
            progress(f"facility data already present ({found.collections} collections)")
            return found
        started = time.perf_counter()
        plan = _Plan(collections, visit_collections, proposal_collections)
        progress(
            f"  {'plan':28} {len(plan.groups):>9} groups"
            f" {time.perf_counter() - started:6.1f} s ({len(plan.sessions)} sessions,"
            f" {len(plan.proposals)} proposals, {plan.people} people)"
        )
        ids = w.bases()
        _people(w, plan, ids)
        _proposals(w, plan, ids)
        _sessions(w, plan, ids)
        detectors = _detectors(w)
        _proteins(w, plan, ids)
        _plan_tables(w, plan, ids, detectors)
        with w.unchecked():
            _shipments(w, plan)
            _groups(w)
            _collections(w, plan)
        with w.step("ANALYZE TABLE") as step:  # the optimizer's statistics of the new rows
            w.cur.execute(f"ANALYZE TABLE {ANALYZED}")
            step.rows = len(w.cur.fetchall())
        built = _present(w)
        progress(f"facility built in {time.perf_counter() - started:.1f} s")
        return built
    finally:
        conn.close()
