"""The demo database: SQLite tables from schemas_json/ and the deterministic generator.

MariaDB tests run only when ISPYB_FALCON_TEST_DATABASE_URL is set; they build a
scratch database ``ispyb_demo_test`` from the official SQL next to the one named
there (which is only read) and drop it afterwards.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ispyb_falcon.demo import people
from ispyb_falcon.demo.generator import TABLE_ORDER, fill
from ispyb_falcon.demo.progress import ProgressBar
from ispyb_falcon.demo.sqlite import column_type, create_demo_database, create_tables

from .conftest import reachable, scratch_database

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas_json"
SCRATCH_DB = "ispyb_demo_test"
DB_URL = os.environ.get("ISPYB_FALCON_TEST_DATABASE_URL")

PER_COPY = {
    "Detector": 2, "BeamLineSetup": 3, "Laboratory": 2, "Person": 9, "UserGroup_has_Person": 2,
    "Proposal": 4, "ProposalHasPerson": 1, "BLSession": 7, "Session_has_Person": 1,
    "LabContact": 4, "Shipping": 4, "Dewar": 8, "Container": 16, "Protein": 8, "Crystal": 8,
    "BLSample": 64, "DataCollectionGroup": 14, "DataCollection": 28,
    "DataCollectionComment": 7, "DataCollectionFileAttachment": 28, "Image": 140,
    "ImageQualityIndicators": 140, "ProcessingJob": 49, "AutoProcProgram": 49,
    "AutoProcIntegration": 35, "AutoProc": 42, "AutoProcScaling": 42,
    "AutoProcScaling_has_Int": 42, "AutoProcScalingStatistics": 126,
    "AutoProcProgramAttachment": 28, "AutoProcProgramMessage": 28, "EnergyScan": 7,
    "XFEFluorescenceSpectrum": 7, "RobotAction": 14,
}  # fmt: skip
LOOKUPS = {"Permission": 2, "UserGroup": 2, "UserGroup_has_Permission": 2}


def expected(copies: int, lookups: bool = True) -> dict[str, int]:
    counts = dict.fromkeys(TABLE_ORDER, 0)
    counts.update({t: n * copies for t, n in PER_COPY.items()})
    if lookups:
        counts.update(LOOKUPS)
    return counts


# -- schemas ---------------------------------------------------------------------------------


def _schemas_from_information_schema(url: str) -> dict[str, dict[str, Any]]:
    """Stand-in for schemas_json/ until it is generated: the same x-ispyb facts."""
    engine = sa.create_engine(url)
    db = sa.make_url(url).database
    schemas: dict[str, dict[str, Any]] = {}
    with engine.connect() as conn:
        q = lambda sql: conn.execute(sa.text(sql), {"db": db}).all()  # noqa: E731
        for t, c, typ, nullable, default, extra in q(
            "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA"
            " FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = :db"
            " ORDER BY TABLE_NAME, ORDINAL_POSITION"
        ):
            if t not in TABLE_ORDER:
                continue
            s = schemas.setdefault(
                t, {"properties": {}, "x-ispyb": {"table": t, "primaryKey": [], "indexes": []}}
            )
            info = {"sqlType": typ, "nullable": nullable == "YES"}
            if "auto_increment" in extra:
                info["autoIncrement"] = True
            if default is not None:
                info["serverDefault"] = default
            s["properties"][c] = {"x-ispyb": info}
        indexes: dict[tuple[str, str], dict[str, Any]] = {}
        for t, name, non_unique, c in q(
            "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME FROM"
            " information_schema.STATISTICS WHERE TABLE_SCHEMA = :db"
            " ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX"
        ):
            if t in schemas and name == "PRIMARY":
                schemas[t]["x-ispyb"]["primaryKey"].append(c)
            elif t in schemas:
                index = indexes.setdefault((t, name), {"name": name, "columns": []})
                index["unique"] = not non_unique
                index["columns"].append(c)
        for (t, _), index in indexes.items():
            schemas[t]["x-ispyb"]["indexes"].append(index)
        fks: dict[tuple[str, str], dict[str, Any]] = {}
        for t, name, c, rt, rc, on_delete, on_update in q(
            "SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_NAME,"
            " k.REFERENCED_COLUMN_NAME, r.DELETE_RULE, r.UPDATE_RULE"
            " FROM information_schema.KEY_COLUMN_USAGE k"
            " JOIN information_schema.REFERENTIAL_CONSTRAINTS r"
            " ON r.CONSTRAINT_SCHEMA = k.TABLE_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME"
            " AND r.TABLE_NAME = k.TABLE_NAME WHERE k.TABLE_SCHEMA = :db"
            " ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION"
        ):
            if t in schemas:
                fk = fks.setdefault(
                    (t, name),
                    {"name": name, "columns": [], "onDelete": on_delete, "onUpdate": on_update,
                     "references": {"table": rt, "columns": []}},
                )  # fmt: skip
                fk["columns"].append(c)
                fk["references"]["columns"].append(rc)
        for (t, _), fk in fks.items():
            schemas[t]["x-ispyb"].setdefault("foreignKeys", []).append(fk)
    engine.dispose()
    return schemas


@pytest.fixture(scope="session")
def schemas() -> dict[str, dict[str, Any]]:
    files = sorted(SCHEMA_DIR.glob("*.json"))
    if files:
        loaded = {}
        for path in files:
            with path.open(encoding="utf-8") as handle:
                loaded[path.stem] = json.load(handle)
        return loaded
    if DB_URL:
        return _schemas_from_information_schema(DB_URL)
    pytest.skip("schemas_json/ is empty and no database to derive the schemas from")


# -- SQLite ----------------------------------------------------------------------------------


def sqlite_engine(path: Path) -> sa.Engine:
    """A SQLite engine that enforces foreign keys, so fill() is checked on every insert."""
    engine = sa.create_engine(f"sqlite:///{path}")

    @sa.event.listens_for(engine, "connect")
    def _on(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA foreign_keys = ON")

    return engine


def table_counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t: conn.execute(sa.select(sa.func.count()).select_from(sa.table(t))).scalar_one()
            for t in TABLE_ORDER
        }


@pytest.fixture
def demo(tmp_path: Path, schemas: dict[str, dict[str, Any]]) -> Iterator[sa.Engine]:
    engine = sqlite_engine(tmp_path / "demo.sqlite")
    create_tables(engine, schemas)
    fill(engine, scale=2)
    yield engine
    engine.dispose()


def test_fill_scale_two_inserts_exact_rows_per_table(tmp_path, schemas):
    engine = sqlite_engine(tmp_path / "demo.sqlite")
    create_tables(engine, schemas)
    assert fill(engine, scale=2) == expected(2)
    assert table_counts(engine) == expected(2)


def test_second_fill_inserts_nothing(demo):
    assert sum(fill(demo, scale=2).values()) == 0
    assert table_counts(demo) == expected(2)


def test_larger_scale_adds_only_the_missing_copies(demo):
    assert fill(demo, scale=3) == expected(1, lookups=False)
    assert table_counts(demo) == expected(3)


def test_foreign_keys_hold_in_sqlite(demo):
    with demo.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []


def _dump(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    metadata = sa.MetaData()
    metadata.reflect(engine)
    with engine.connect() as conn:
        return {
            t: [tuple(r) for r in conn.execute(sa.select(table).order_by(*table.columns))]
            for t, table in metadata.tables.items()
        }


def test_two_fresh_files_hold_identical_rows(tmp_path, schemas):
    dumps = []
    for name in ("a.sqlite", "b.sqlite"):
        engine = sqlite_engine(tmp_path / name)
        create_tables(engine, schemas)
        fill(engine, scale=2)
        dumps.append(_dump(engine))
        engine.dispose()
    assert dumps[0] == dumps[1]
    assert len(dumps[0]["Image"]) == 2 * PER_COPY["Image"]


def _scalar(engine: sa.Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).all()


def test_named_proposals_have_their_pi_and_state(demo):
    rows = _scalar(
        demo,
        "SELECT p.proposalCode || p.proposalNumber, p.state, pe.login FROM Proposal p"
        " JOIN Person pe ON pe.personId = p.personId WHERE pe.login IN ('pi_anna', 'pi_eve')",
    )
    assert sorted(rows) == sorted((p.name, p.state, p.pi) for p in people.PROPOSALS)


def test_sessions_have_visit_numbers_and_beamlines(demo):
    rows = _scalar(
        demo,
        "SELECT p.proposalCode || p.proposalNumber || '-' || s.visit_number, s.beamLineName"
        " FROM BLSession s JOIN Proposal p ON p.proposalId = s.proposalId"
        " WHERE p.proposalNumber IN ('1001', '1002', '2001', '2002')",
    )
    assert sorted(rows) == sorted((s.visit, s.beamline) for s in people.SESSIONS)
    assert {v for v, b in rows if b in ("i03", "i04")} == {
        "mx1001-1", "mx1001-2", "mx1002-1", "cm2001-2",
    }  # fmt: skip


def test_member_ben_is_co_investigator_of_mx1001_only(demo):
    rows = _scalar(
        demo,
        "SELECT p.proposalCode || p.proposalNumber, php.role FROM ProposalHasPerson php"
        " JOIN Proposal p ON p.proposalId = php.proposalId"
        " JOIN Person pe ON pe.personId = php.personId"
        " WHERE pe.login = 'member_ben'",
    )
    assert rows == [("mx1001", "Co-Investigator")]


def test_visitor_cara_is_on_session_mx1001_2_only(demo):
    sessions = _scalar(
        demo,
        "SELECT p.proposalCode || p.proposalNumber || '-' || s.visit_number"
        " FROM Session_has_Person shp JOIN BLSession s USING (sessionId)"
        " JOIN Proposal p ON p.proposalId = s.proposalId"
        " JOIN Person pe ON pe.personId = shp.personId WHERE pe.login = 'visitor_cara'",
    )
    assert sessions == [("mx1001-2",)]
    assert _scalar(
        demo,
        "SELECT COUNT(*) FROM ProposalHasPerson JOIN Person USING (personId)"
        " WHERE login = 'visitor_cara'",
    ) == [(0,)]


def _permissions(engine: sa.Engine, login: str) -> list[tuple[str, str]]:
    return _scalar(
        engine,
        "SELECT ug.name, pm.type FROM Person pe"
        " JOIN UserGroup_has_Person ugp ON ugp.personId = pe.personId"
        " JOIN UserGroup ug ON ug.userGroupId = ugp.userGroupId"
        " JOIN UserGroup_has_Permission ugpm ON ugpm.userGroupId = ug.userGroupId"
        " JOIN Permission pm ON pm.permissionId = ugpm.permissionId WHERE pe.login = :login",
        login=login,
    )


def test_staff_and_super_admin_hold_their_permissions(demo):
    assert _permissions(demo, people.STAFF_DAN) == [("mx_admin", "mx_admin")]
    assert _permissions(demo, people.GUS_SUPER) == [("super_admin", "super_admin")]
    assert _permissions(demo, people.STAFF_DAN + "_1") == [("mx_admin", "mx_admin")]
    assert people.DEMO_BEAMLINE_GROUPS["mx"] == ("mx_admin", ("i03", "i04"))


def test_user_fred_is_linked_to_nothing(demo):
    links = _scalar(
        demo,
        "SELECT (SELECT COUNT(*) FROM Proposal WHERE personId = pe.personId)"
        " + (SELECT COUNT(*) FROM ProposalHasPerson WHERE personId = pe.personId)"
        " + (SELECT COUNT(*) FROM Session_has_Person WHERE personId = pe.personId)"
        " + (SELECT COUNT(*) FROM UserGroup_has_Person WHERE personId = pe.personId)"
        " FROM Person pe WHERE pe.login = 'user_fred'",
    )
    assert links == [(0,)]


def test_every_named_person_exists_once_per_copy(demo):
    logins = {r[0] for r in _scalar(demo, "SELECT login FROM Person")}
    for person in people.PERSONS:
        assert {person.login, person.login + "_1"} <= logins
    assert len(logins) == 2 * len(people.PERSONS)


def test_copies_suffix_logins_and_move_proposal_numbers(demo):
    rows = _scalar(
        demo,
        "SELECT p.proposalCode || p.proposalNumber FROM Proposal p JOIN Person pe"
        " ON pe.personId = p.personId WHERE pe.login = 'pi_anna_1'",
    )
    assert sorted(rows) == [("mx1011",), ("mx1012",)]
    assert people.proposal_number(1001, 7) == 1071 and people.login("pi_anna", 7) == "pi_anna_7"


def test_names_look_like_a_real_facility(demo):
    names = {r[0] for r in _scalar(demo, "SELECT name FROM BLSample")}
    assert "lyso-x1-3" in names
    directories = {r[0] for r in _scalar(demo, "SELECT imageDirectory FROM DataCollection")}
    assert "/dls/i03/data/2026/mx1001-1/lyso/" in directories
    serials = [r[0] for r in _scalar(demo, "SELECT detectorSerialNumber FROM Detector")]
    assert sorted(serials) == ["DEMO-0-1", "DEMO-0-2", "DEMO-1-1", "DEMO-1-2"]


def test_create_tables_keeps_keys_defaults_and_internal_foreign_keys(tmp_path, schemas):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 't.sqlite'}")
    metadata = create_tables(engine, schemas)
    proposal = metadata.tables["Proposal"]
    assert [c.name for c in proposal.primary_key] == ["proposalId"]
    assert proposal.c.proposalId.autoincrement is True
    assert proposal.c.state.type.length == len("Cancelled")
    assert [c.name for c in metadata.tables["ImageQualityIndicators"].primary_key] == [
        "dataCollectionId", "imageNumber",
    ]  # fmt: skip
    targets = {fk.column.table.name for fk in metadata.tables["Container"].foreign_keys}
    assert targets == {"Dewar", "Person", "BLSession", "Container"}
    with engine.begin() as conn:
        conn.execute(sa.insert(metadata.tables["Person"]).values(login="x"))
        row = conn.execute(sa.select(metadata.tables["Person"])).mappings().one()
    assert row["personId"] == 1 and row["recordTimeStamp"] is not None
    assert isinstance(column_type("decimal(10,3)"), sa.Numeric)
    assert isinstance(column_type("longblob"), sa.LargeBinary)
    engine.dispose()


def test_create_demo_database_creates_once_and_reports_progress(tmp_path, schemas):
    path = tmp_path / "sub" / "demo.sqlite"
    stream = io.StringIO()
    create_demo_database(f"sqlite:///{path}", schemas, scale=2, progress=ProgressBar(stream))
    create_demo_database(f"sqlite:///{path}", schemas, scale=2)
    assert table_counts(sa.create_engine(f"sqlite:///{path}")) == expected(2)
    assert "2/2 100%" in stream.getvalue()


def test_progress_bar_draws_one_line_per_call_off_a_terminal():
    stream = io.StringIO()
    bar = ProgressBar(stream, width=10)
    bar(1, 4)
    bar(4, 4)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("demo [##........] 1/4")
    assert lines[1].startswith("demo [##########] 4/4 100%")


# -- MariaDB ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mariadb() -> Iterator[sa.Engine]:
    if not DB_URL:
        pytest.skip("ISPYB_FALCON_TEST_DATABASE_URL is not set")
    reachable(DB_URL).dispose()  # unreachable while configured: fail, do not skip
    with scratch_database(SCRATCH_DB) as scratch:
        engine = sa.create_engine(scratch)
        try:
            yield engine
        finally:
            engine.dispose()


def _orphans(conn: sa.Connection) -> dict[str, int]:
    """Rows per foreign key of the demo tables whose parent row is missing."""
    fks = conn.execute(
        sa.text(
            "SELECT TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_TABLE_NAME,"
            " REFERENCED_COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE"
            " WHERE TABLE_SCHEMA = DATABASE() AND REFERENCED_TABLE_NAME IS NOT NULL"
            " ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION"
        )
    ).all()
    grouped: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
    for table, name, column, ref_table, ref_column in fks:
        if table in TABLE_ORDER:
            grouped.setdefault((table, name, ref_table), []).append((column, ref_column))
    assert len({key[0] for key in grouped}) >= 30
    orphans = {}
    for (table, name, ref_table), pairs in grouped.items():
        joined = " AND ".join(f"r.`{rc}` = c.`{cc}`" for cc, rc in pairs)
        not_null = " AND ".join(f"c.`{cc}` IS NOT NULL" for cc, _ in pairs)
        orphans[name] = conn.exec_driver_sql(
            f"SELECT COUNT(*) FROM `{table}` c WHERE {not_null} AND NOT EXISTS"
            f" (SELECT 1 FROM `{ref_table}` r WHERE {joined})"
        ).scalar()
    return orphans


def test_mariadb_fill_adds_two_copies_and_keeps_every_foreign_key(mariadb):
    # The official test data already holds one orphan (DataCollection 6017405 -> Detector 78),
    # loaded with checks off; the demo rows must add none.
    with mariadb.connect() as conn:
        orphans_before = _orphans(conn)
    before = table_counts(mariadb)
    inserted = fill(mariadb, scale=2)
    assert inserted == expected(2, lookups=False)  # the official lookups hold the groups
    after = table_counts(mariadb)
    assert {t: after[t] - before[t] for t in TABLE_ORDER} == inserted
    assert sum(fill(mariadb, scale=2).values()) == 0
    with mariadb.connect() as conn:
        assert conn.exec_driver_sql("SELECT @@foreign_key_checks").scalar() == 1
        orphans_after = _orphans(conn)
        assert {k: n for k, n in orphans_after.items() if n > orphans_before[k]} == {}
        pis = conn.exec_driver_sql(
            "SELECT CONCAT(p.proposalCode, p.proposalNumber), pe.login FROM Proposal p"
            " JOIN Person pe USING (personId) WHERE pe.login IN ('pi_anna', 'pi_eve_1')"
        ).all()
    assert sorted(pis) == [
        ("cm2011", "pi_eve_1"), ("in2012", "pi_eve_1"), ("mx1001", "pi_anna"),
        ("mx1002", "pi_anna"),
    ]  # fmt: skip
