"""The facility-scale benchmark data (`ispyb_falcon.demo.facility`), built small.

MariaDB tests need ISPYB_FALCON_TEST_DATABASE_URL; they build 20,000 collections
(2,000 in the visit, 5,000 in the proposal) in a scratch database `ispyb_fac_test`
with the official schema and its test data, and drop it afterwards. The refusals
of other databases need nothing.
"""

from __future__ import annotations

import falcon.testing
import pytest
import sqlalchemy as sa

from ispyb_falcon.app import create_app
from ispyb_falcon.cli import demo_settings
from ispyb_falcon.cli import main as cli
from ispyb_falcon.config import BeamlineGroup
from ispyb_falcon.demo import facility
from ispyb_falcon.demo.facility import Facility, FacilityError

from .conftest import PREFIX, SECRET, needs_mariadb, scratch_database

SCALE = {"collections": 20_000, "visit_collections": 2_000, "proposal_collections": 5_000}


BULK = {  # the tables filled by INSERT ... SELECT, and their keys
    t: facility.KEYS[t]
    for t in ("Shipping", "Dewar", "Container", "BLSample", "DataCollectionGroup", "DataCollection")
}


@pytest.fixture(scope="module")
def built():
    """(url, Facility, progress lines, largest keys before) of one small build."""
    with scratch_database("ispyb_fac_test") as url:
        text = url.render_as_string(hide_password=False)
        engine = sa.create_engine(text)
        with engine.connect() as conn:
            before = {
                t: conn.execute(sa.text(f"SELECT COALESCE(MAX({k}), 0) FROM {t}")).scalar_one()
                for t, k in BULK.items()
            }
        engine.dispose()
        lines: list[str] = []
        found = facility.build(text, **SCALE, progress=lines.append)
        yield text, found, lines, before


@pytest.fixture(scope="module")
def db(built):
    engine = sa.create_engine(built[0])
    yield engine
    engine.dispose()


def scalar(db: sa.Engine, sql: str, **values):
    with db.connect() as conn:
        return conn.execute(sa.text(sql), values).scalar_one()


def rows(db: sa.Engine, sql: str, **values) -> list:
    with db.connect() as conn:
        return conn.execute(sa.text(sql), values).all()


@pytest.fixture(scope="module")
def client(built, tmp_path_factory) -> falcon.testing.TestClient:
    url, found = built[:2]
    staff = BeamlineGroup("mx", found.staff_permission, found.staff_beamlines)
    settings = demo_settings(tmp_path_factory.mktemp("fac") / "unused.sqlite", 8080).replace(
        database_url=url, tokens_secret=SECRET, beamline_groups=[staff]
    )
    return falcon.testing.TestClient(create_app(settings))


@pytest.fixture(scope="module")
def as_caller(built, client):
    """as_caller("pi") -> headers of that caller kind (dummy login; admin* logins are admins)."""
    logins = {**built[1].logins, "outsider": "fac_nobody"}

    def headers(kind: str) -> dict[str, str]:
        r = client.simulate_post(
            f"{PREFIX}/auth/login", json={"login": logins[kind], "password": "x"}
        )
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json['token']}"}

    return headers


def total(client, headers, path: str) -> int:
    r = client.simulate_get(f"{PREFIX}{path}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json["total"]


@needs_mariadb
def test_counts_are_the_wanted_ones(built, db):
    _, found, lines, _ = built
    assert isinstance(found, Facility)
    assert (found.collections, found.visit_collections, found.proposal_collections) == (
        20_000,
        2_000,
        5_000,
    )
    assert (found.visit, found.proposal) == ("mx900001-7", "mx900001")
    in_visit = scalar(
        db,
        "SELECT COUNT(*) FROM DataCollection dc JOIN DataCollectionGroup g"
        " ON g.dataCollectionGroupId = dc.dataCollectionGroupId WHERE g.sessionId = :s",
        s=found.session_id,
    )
    assert in_visit == 2_000
    visits = scalar(db, "SELECT COUNT(*) FROM BLSession WHERE proposalId = :p", p=found.proposal_id)
    assert visits >= 8
    beamlines = scalar(
        db,
        "SELECT COUNT(DISTINCT s.beamLineName) FROM BLSession s JOIN Proposal p"
        " ON p.proposalId = s.proposalId WHERE p.proposalId >= :p",
        p=found.proposal_id,
    )
    assert beamlines >= 4
    steps = [line.split()[0] for line in lines if " rows " in line and line.endswith(" s")]
    assert {"Person", "BLSession", "DataCollectionGroup", "DataCollection"} <= set(steps)


@needs_mariadb
def test_groups_are_mostly_a_few_sweeps_and_some_grid_scans(built, db):
    found = built[1]
    sizes = rows(
        db,
        "SELECT g.experimentType, COUNT(*) FROM DataCollectionGroup g JOIN DataCollection dc"
        " ON dc.dataCollectionGroupId = g.dataCollectionGroupId JOIN BLSession s"
        " ON s.sessionId = g.sessionId WHERE s.proposalId >= :p GROUP BY g.dataCollectionGroupId",
        p=found.proposal_id,
    )
    small = [n for kind, n in sizes if n <= 4]
    grids = [n for kind, n in sizes if kind == "Mesh"]
    assert len(small) / len(sizes) > 0.95
    assert grids and all(100 <= n <= 500 for n in grids)
    assert all(kind != "Mesh" for kind, n in sizes if 4 < n < 100)
    # the visit: about 4.4 collections per group, as at full scale (20,000 in 4,000-5,000)
    assert 200 <= found.visit_groups <= 700


@needs_mariadb
def test_rows_are_as_wide_as_real_ones(built, db):
    found = built[1]
    filled = (
        "imagePrefix imageDirectory fileTemplate startTime endTime wavelength exposureTime"
        " numberOfImages axisStart axisRange axisEnd resolution transmission beamSizeAtSampleX"
        " beamSizeAtSampleY xtalSnapshotFullPath1 xtalSnapshotFullPath2 xtalSnapshotFullPath3"
        " xtalSnapshotFullPath4 runStatus detectorId SESSIONID detectorDistance flux"
    ).split()
    nulls = " + ".join(f"SUM(dc.`{c}` IS NULL)" for c in filled)
    in_visit = (
        " FROM DataCollection dc JOIN DataCollectionGroup g"
        " ON g.dataCollectionGroupId = dc.dataCollectionGroupId WHERE g.sessionId = :s"
    )
    (row,) = rows(
        db,
        f"SELECT {nulls}, SUM(dc.comments IS NOT NULL), SUM(dc.BLSAMPLEID IS NOT NULL),"
        " SUM(dc.SESSIONID = g.sessionId), COUNT(*), SUM(g.blSampleId IS NOT NULL)" + in_visit,
        s=found.session_id,
    )
    wrong_times = scalar(
        db,
        "SELECT COUNT(*)" + in_visit + " AND NOT (g.startTime <= dc.startTime"
        " AND dc.startTime < dc.endTime AND g.endTime IS NOT NULL)",
        s=found.session_id,
    )
    missing, comments, with_sample, same_session, n, group_samples = row
    assert missing == 0
    assert 0 < comments < n / 10
    assert with_sample > 0.9 * n and same_session == n and group_samples > 0.9 * n
    assert wrong_times == 0


@needs_mariadb
def test_foreign_keys_hold_though_bulk_inserts_skip_their_checks(built, db):
    before = built[3]
    with db.connect() as conn:
        keys = conn.execute(
            sa.text(
                "SELECT TABLE_NAME, COLUMN_NAME, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME"
                " FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = DATABASE()"
                " AND REFERENCED_TABLE_NAME IS NOT NULL AND TABLE_NAME IN :tables"
            ).bindparams(sa.bindparam("tables", expanding=True)),
            {"tables": list(BULK)},
        ).all()
        assert len(keys) > 20
        orphans = {  # among the facility's rows (the official test data has one of its own)
            f"{t}.{c}": conn.execute(
                sa.text(
                    f"SELECT COUNT(*) FROM `{t}` x LEFT JOIN `{rt}` r ON r.`{rc}` = x.`{c}`"
                    f" WHERE x.`{BULK[t]}` > :first AND x.`{c}` IS NOT NULL AND r.`{rc}` IS NULL"
                ),
                {"first": before[t]},
            ).scalar_one()
            for t, c, rt, rc in keys
        }
    assert {k: n for k, n in orphans.items() if n} == {}


@needs_mariadb
def test_membership_tables_have_a_crowd(built, db):
    found = built[1]
    p = {"p": found.proposal_id}
    sessions = scalar(db, "SELECT COUNT(*) FROM BLSession WHERE proposalId >= :p", **p)
    team = scalar(
        db,
        "SELECT COUNT(*) FROM Session_has_Person shp JOIN BLSession s"
        " ON s.sessionId = shp.sessionId WHERE s.proposalId >= :p",
        **p,
    )
    members = scalar(db, "SELECT COUNT(*) FROM ProposalHasPerson WHERE proposalId >= :p", **p)
    assert team >= 3 * sessions
    assert members >= 4 * scalar(db, "SELECT COUNT(*) FROM Proposal WHERE proposalId >= :p", **p)


@needs_mariadb
@pytest.mark.parametrize("kind", ["visit_member", "proposal_member", "pi", "staff", "admin"])
def test_every_caller_kind_sees_the_whole_visit(built, client, as_caller, kind):
    found = built[1]
    path = f"/datacollections?session={found.visit}&limit=100"
    r = client.simulate_get(f"{PREFIX}{path}", headers=as_caller(kind))
    assert r.status_code == 200, r.text
    assert r.json["total"] == found.visit_collections
    assert len(r.json["results"]) == 100


@needs_mariadb
def test_each_caller_kind_sees_only_its_own(built, db, client, as_caller):
    found = built[1]
    proposal = f"/datacollections?proposal={found.proposal}&limit=1"
    visitor, member, pi = as_caller("visit_member"), as_caller("proposal_member"), as_caller("pi")
    assert total(client, visitor, "/sessions") == 1
    assert total(client, visitor, proposal) == found.visit_collections
    visits = scalar(db, "SELECT COUNT(*) FROM BLSession WHERE proposalId = :p", p=found.proposal_id)
    assert total(client, member, "/sessions") == visits
    assert total(client, member, proposal) == found.proposal_collections
    assert total(client, pi, proposal) == found.proposal_collections
    assert total(client, pi, "/proposals") >= 4  # the PI leads a few proposals
    staff = as_caller("staff")
    on_lines = scalar(
        db, "SELECT COUNT(*) FROM BLSession WHERE beamLineName IN ('i03', 'i04')"
    )  # the official test data's i03 sessions too
    assert total(client, staff, "/sessions") == on_lines
    assert total(client, staff, "/sessions?beamLineName=i24") == 0
    everything = scalar(db, "SELECT COUNT(*) FROM DataCollection")
    assert total(client, as_caller("admin"), "/datacollections?limit=1") == everything
    outsider = as_caller("outsider")
    assert total(client, outsider, f"/datacollections?session={found.visit}") == 0


@needs_mariadb
def test_a_second_build_finds_the_first_and_other_counts_are_refused(built, db):
    url, found = built[:2]
    people = scalar(db, "SELECT COUNT(*) FROM Person")
    lines: list[str] = []
    assert facility.build(url, **SCALE, progress=lines.append) == found
    assert lines == ["facility data already present (20000 collections)"]
    assert scalar(db, "SELECT COUNT(*) FROM Person") == people
    with pytest.raises(FacilityError, match="already holds facility data"):
        facility.build(url, **{**SCALE, "collections": 30_000}, progress=lines.append)


def test_only_mariadb_takes_facility_data(tmp_path, capsys):
    with pytest.raises(FacilityError, match="needs a MariaDB database"):
        facility.build(f"sqlite:///{tmp_path / 'x.sqlite'}", collections=10, visit_collections=1,
                       proposal_collections=2)  # fmt: skip
    assert cli(["demo-data", "--facility", "--database", f"sqlite:///{tmp_path}/y.sqlite"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "MariaDB" in err
    with pytest.raises(FacilityError, match="visit_collections <= proposal_collections"):
        facility.build("mysql+pymysql://nobody@127.0.0.1/x", visit_collections=10,
                       proposal_collections=5, collections=100)  # fmt: skip
