"""The list statements of the busiest routes keep plans that scale (MariaDB's EXPLAIN).

A facility's database holds millions of data collections, and a page of 100 of
them must cost what the page needs, not what the table holds. On the facility
data set (built small in a scratch database), each busy list is requested
through HTTP as every kind of caller; the page and count statements it ran are
then explained (`EXPLAIN FORMAT=JSON`, with the same values), and the test
fails on:

- a full scan (of the table or of a whole index) of a big table;
- a sort (filesort) of more than a page of rows at full width: the outermost
  block, which reads every column of the page, may sort the page's own rows
  and no more; inner blocks sort keys (and the `order_by` column).
"""

from __future__ import annotations

import json

import falcon.testing
import pytest
import sqlalchemy as sa

from ispyb_falcon.app import create_app
from ispyb_falcon.cli import demo_settings
from ispyb_falcon.config import BeamlineGroup
from ispyb_falcon.demo import facility
from ispyb_falcon.query import statements

from .conftest import PREFIX, SECRET, needs_mariadb, scratch_database

pytestmark = needs_mariadb

# The tables that grow with the collections. BLSession is not one of them: a site has
# about one session per 250 collections, and staff of beamlines that hold a large share
# of the sessions have them read by a scan (MariaDB's choice, rightly: 4,000 sessions
# at 1,000,000 collections cost it about a millisecond).
BIG = {"DataCollection", "DataCollectionGroup", "BLSample", "Image"}
WIDE_SORT_ROWS = 200  # the page (100 rows here) may be sorted at full width, not a visit
# The aliases visibility gives tables inside its UNIONs.
ALIASES = {"mine_session": "BLSession", "mine_staff": "BLSession"}


def _table(name: str) -> str:
    """The table an EXPLAIN entry reads (`BLSample_path0` and `mine_session_1` are aliases)."""
    for alias, table in ALIASES.items():
        if name.startswith(alias):
            return table
    return name.split("_path")[0]


CALLERS = ("visit_member", "proposal_member", "pi", "staff", "admin")


@pytest.fixture(scope="module")
def built():
    with scratch_database("ispyb_plans_test") as url:
        text = url.render_as_string(hide_password=False)
        found = facility.build(text, **facility.sized(40_000), progress=lambda _: None)
        engine = sa.create_engine(text)
        with engine.begin() as conn:
            # Images shaped like a facility's: numbered from 1 in every collection (100 in
            # each of 1,000 collections), and 2,000 in one collection of the visit.
            conn.execute(
                sa.text(
                    "INSERT INTO Image (dataCollectionId, imageNumber, fileName)"
                    " SELECT dc.dataCollectionId, seq, CONCAT('img_', seq, '.cbf')"
                    " FROM (SELECT dataCollectionId FROM DataCollection"
                    "  ORDER BY dataCollectionId LIMIT 1000) dc, seq_1_to_100"
                )
            )
            conn.execute(
                sa.text(
                    "INSERT INTO Image (dataCollectionId, imageNumber, fileName)"
                    " SELECT dc.dataCollectionId, seq, CONCAT('img_', seq, '.cbf')"
                    " FROM (SELECT d.dataCollectionId FROM DataCollection d"
                    "  JOIN DataCollectionGroup g USING (dataCollectionGroupId)"
                    "  WHERE g.sessionId = :s ORDER BY d.dataCollectionId LIMIT 1) dc,"
                    " seq_1_to_2000"
                ),
                {"s": found.session_id},
            )
            conn.execute(sa.text("ANALYZE TABLE Image"))
            images = conn.execute(sa.text("SELECT MAX(dataCollectionId) FROM Image")).scalar_one()
        engine.dispose()
        yield text, found, images


@pytest.fixture(scope="module")
def client(built, tmp_path_factory) -> falcon.testing.TestClient:
    url, found, _ = built
    staff = BeamlineGroup("mx", found.staff_permission, found.staff_beamlines)
    settings = demo_settings(tmp_path_factory.mktemp("plans") / "unused.sqlite", 8080).replace(
        database_url=url, tokens_secret=SECRET, beamline_groups=[staff]
    )
    return falcon.testing.TestClient(create_app(settings))


@pytest.fixture(scope="module")
def engine(built):
    engine = sa.create_engine(built[0])
    yield engine
    engine.dispose()


def _statements(client, monkeypatch, headers: dict, path: str, params: dict) -> list:
    """The (compiled statement, values) pairs one list request ran."""
    ran = []
    run = statements.DriverStatement.batches

    def recorded(self, conn, values, size):
        ran.append((self, dict(values)))
        return run(self, conn, values, size)

    monkeypatch.setattr(statements.DriverStatement, "batches", recorded)
    r = client.simulate_get(PREFIX + path, params=params, headers=headers)
    monkeypatch.undo()
    assert r.status_code == 200, r.text
    assert r.json["results"], (path, params, r.json["total"])
    return ran


def _explain(engine: sa.Engine, stmt: statements.DriverStatement, values: dict) -> dict:
    with engine.connect() as conn:
        return stmt.explain(conn, values)


def _blocks(node, found=None) -> list[dict]:
    """Every query block of an EXPLAIN FORMAT=JSON document, with its tables and sorts."""
    found = [] if found is None else found
    if isinstance(node, dict):
        if "select_id" in node:
            found.append({"tables": [], "sorted": False, "node": node})
        for key, value in node.items():
            if key == "filesort" and found:
                found[-1]["sorted"] = True
            if key == "table" and isinstance(value, dict) and found:
                found[-1]["tables"].append(value)
            _blocks(value, found)
    elif isinstance(node, list):
        for value in node:
            _blocks(value, found)
    return found


def _problems(plan: dict) -> list[str]:
    problems = []
    for depth, block in enumerate(_blocks(plan)):
        for t in block["tables"]:
            name = _table(t.get("table_name", ""))
            access = t.get("access_type")
            if name in BIG and access in ("ALL", "index"):
                problems.append(f"full scan of {name} ({access})")
        if depth == 0 and block["sorted"]:
            # The outermost block reads the page's columns: it may sort a page, no more.
            rows = 1.0
            for t in block["tables"]:
                rows *= t.get("rows", 1) * t.get("filtered", 100) / 100
            if rows > WIDE_SORT_ROWS:
                problems.append(f"sort of ~{rows:.0f} wide rows")
    return problems


def _busy_lists(built) -> list[tuple[str, dict]]:
    _, found, images = built
    visit, proposal = found.visit, found.proposal
    return [
        ("/datacollections", {"session": visit, "limit": "100"}),
        ("/datacollections", {"session": visit, "limit": "100", "order": "desc"}),
        ("/datacollections", {"session": visit, "limit": "100", "count": "none"}),
        ("/datacollectiongroups", {"session": visit, "limit": "100"}),
        ("/samples", {"proposal": proposal, "limit": "100"}),
        ("/sessions", {"proposal": proposal, "limit": "100"}),
        ("/proposals", {"limit": "100"}),
        ("/events", {"session": visit, "limit": "100"}),  # the visit's timeline
        ("/events", {"session": visit, "limit": "20", "skip": "40"}),
        ("/images", {"dataCollectionId": str(images), "limit": "100"}),
        (
            "/images",
            {"dataCollectionId": str(images), "order_by": "imageNumber"},
        ),
    ]


@pytest.mark.parametrize("caller", CALLERS)
def test_busy_lists_read_no_big_table_whole_and_sort_only_keys(
    built, client, engine, monkeypatch, caller
):
    found = built[1]
    token = client.simulate_post(
        PREFIX + "/auth/login", json={"login": found.logins[caller], "password": "x"}
    ).json["token"]
    headers = {"Authorization": f"Bearer {token}"}
    seen = []
    for path, params in _busy_lists(built):
        for stmt, values in _statements(client, monkeypatch, headers, path, params):
            plan = _explain(engine, stmt, values)
            seen.append(path)
            problems = _problems(plan)
            assert not problems, (path, params, problems, json.dumps(plan, indent=1)[:4000])
    assert len(seen) >= len(_busy_lists(built))


@pytest.mark.parametrize("caller", ("visit_member", "staff", "admin"))
def test_processing_at_a_glance_is_driven_from_the_ids(built, client, engine, monkeypatch, caller):
    """The processing of a page of the visit's collections: no big table read whole."""
    found = built[1]
    token = client.simulate_post(
        PREFIX + "/auth/login", json={"login": found.logins[caller], "password": "x"}
    ).json["token"]
    headers = {"Authorization": f"Bearer {token}"}
    page = client.simulate_get(
        PREFIX + "/datacollections",
        params={"session": found.visit, "limit": "100", "fields": "dataCollectionId"},
        headers=headers,
    ).json["results"]
    ids = ",".join(str(r["dataCollectionId"]) for r in page)
    ran = _statements(
        client, monkeypatch, headers, "/datacollections/processing", {"dataCollectionId": ids}
    )
    assert ran
    for stmt, values in ran:
        problems = _problems(_explain(engine, stmt, values))
        assert not problems, problems


def test_a_keyset_page_deep_in_a_visit_reads_no_big_table_whole(built, client, engine, monkeypatch):
    found = built[1]
    token = client.simulate_post(
        PREFIX + "/auth/login", json={"login": found.logins["visit_member"], "password": "x"}
    ).json["token"]
    headers = {"Authorization": f"Bearer {token}"}
    params = {"session": found.visit, "limit": "200", "fields": "dataCollectionId"}
    after = None
    for _ in range(3):  # a few pages in
        page = client.simulate_get(
            PREFIX + "/datacollections",
            params={**params, **({"after": after} if after else {})},
            headers=headers,
        ).json
        after = page["next"]
        assert after, "the visit is shorter than the walk"
    deep = {"session": found.visit, "limit": "100", "after": after, "count": "none"}
    for stmt, values in _statements(client, monkeypatch, headers, "/datacollections", deep):
        assert not _problems(_explain(engine, stmt, values))


def test_the_checks_see_a_sort_over_wide_rows(engine, built):
    """The rule itself: a visit sorted at full width (as pages were once chosen) fails it."""
    found = built[1]
    with engine.connect() as conn:
        plan = conn.execute(
            sa.text(
                "EXPLAIN FORMAT=JSON SELECT DataCollection.* FROM DataCollection"
                " JOIN DataCollectionGroup USING (dataCollectionGroupId)"
                " JOIN BLSession ON BLSession.sessionId = DataCollectionGroup.sessionId"
                " WHERE BLSession.proposalId = :p ORDER BY DataCollection.comments LIMIT 100"
            ),
            {"p": found.proposal_id},
        ).scalar_one()
    assert any("wide rows" in p for p in _problems(json.loads(plan)))


def _tables(node) -> list[dict]:
    return [t for block in _blocks(node) for t in block["tables"]]


@pytest.mark.parametrize("caller", CALLERS)
def test_embedded_parents_are_read_by_key_for_the_page_rows_only(
    built, client, engine, monkeypatch, caller
):
    """`?embed=`: a page of a big visit with its samples and groups reads each parent by its
    primary key (eq_ref) for the page's rows; a count of a visit's collections reads them
    by index. The rest of the plan passes the checks of every busy list."""
    found = built[1]
    token = client.simulate_post(
        PREFIX + "/auth/login", json={"login": found.logins[caller], "password": "x"}
    ).json["token"]
    headers = {"Authorization": f"Bearer {token}"}
    cases = [
        ("/datacollections", {"session": found.visit, "limit": "100", "embed": "sample,group"}),
        (
            "/datacollections",
            {"session": found.visit, "limit": "100", "order": "desc", "embed": "session,images"},
        ),
        ("/sessions", {"proposal": found.proposal, "limit": "100", "embed": "dataCollections"}),
        ("/samples", {"proposal": found.proposal, "limit": "100", "embed": "protein,container"}),
    ]
    for path, params in cases:
        ran = _statements(client, monkeypatch, headers, path, params)
        page = [(s, v) for s, v in ran if " AS row " in s.sql]
        assert len(page) == 1, [s.sql[:200] for s, _ in ran]
        for stmt, values in ran:
            plan = _explain(engine, stmt, values)
            assert not _problems(plan), (path, params, json.dumps(plan, indent=1)[:4000])
        plan = _explain(engine, *page[0])
        tables = _tables(plan)
        parents = [t for t in tables if t.get("table_name", "").startswith("embed")]
        counted = [t for t in tables if t.get("table_name", "").startswith("count")]
        assert parents or counted, json.dumps(plan, indent=1)[:4000]
        for t in parents:
            assert t.get("access_type") == "eq_ref", (path, t)
        for t in counted:
            assert t.get("access_type") in ("ref", "eq_ref"), (path, t)
