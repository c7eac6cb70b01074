"""Drift between the live database and the JSON Schemas.

MariaDB tests need ISPYB_FALCON_TEST_DATABASE_URL (read only); they build a
scratch database `ispyb_gen_drift` on the same server from copies of a few
tables, change it, and drop it afterwards. The SQLite test needs nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from ispyb_falcon.catalog.drift import check_drift, load_schema_dir
from ispyb_falcon.catalog.generate import generate_schemas

from .conftest import MARIADB_URL as DATABASE_URL
from .conftest import needs_mariadb

SCRATCH_DB = "ispyb_gen_drift"
COPIED_TABLES = ("Person", "Laboratory", "Proposal", "BLSession")


@pytest.fixture(scope="module")
def source_engine(mariadb_engine) -> sa.Engine:
    return mariadb_engine


@pytest.fixture()
def scratch_engine(source_engine: sa.Engine) -> sa.Engine:
    """A scratch database holding copies of COPIED_TABLES (DDL only)."""
    url = sa.make_url(DATABASE_URL)
    server = sa.create_engine(url.set(database=None))
    with source_engine.connect() as conn:
        ddl = [
            conn.execute(sa.text(f"SHOW CREATE TABLE `{name}`")).one()[1] for name in COPIED_TABLES
        ]
    with server.begin() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{SCRATCH_DB}`"))
        conn.execute(sa.text(f"CREATE DATABASE `{SCRATCH_DB}`"))
    scratch = sa.create_engine(url.set(database=SCRATCH_DB))
    try:
        with scratch.begin() as conn:
            conn.execute(sa.text("SET foreign_key_checks = 0"))
            for statement in ddl:
                conn.execute(sa.text(statement.replace(":", r"\:")))
        yield scratch
    finally:
        scratch.dispose()
        with server.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{SCRATCH_DB}`"))
        server.dispose()


@needs_mariadb
def test_unchanged_copy_has_no_drift(source_engine, scratch_engine):
    schemas = generate_schemas(source_engine, COPIED_TABLES)
    assert check_drift(scratch_engine, schemas) == []


@needs_mariadb
def test_dropped_added_and_changed_columns_and_missing_table_are_reported(
    source_engine, scratch_engine
):
    schemas = generate_schemas(source_engine, COPIED_TABLES)
    with scratch_engine.begin() as conn:
        conn.execute(sa.text("SET foreign_key_checks = 0"))
        conn.execute(sa.text("ALTER TABLE Proposal DROP COLUMN title"))
        conn.execute(sa.text("ALTER TABLE BLSession ADD COLUMN siteNote varchar(20) NULL"))
        conn.execute(sa.text("ALTER TABLE Person MODIFY login varchar(99) NOT NULL DEFAULT ''"))
        conn.execute(sa.text("DROP TABLE Laboratory"))
    problems = check_drift(scratch_engine, schemas)
    assert "missing table: Laboratory" in problems
    assert "Proposal: column 'title' is in the schema but not in the database" in problems
    assert "BLSession: column 'siteNote' is in the database but not in the schema" in problems
    login = [p for p in problems if p.startswith("Person: column 'login'")]
    assert any("varchar(99)" in p and "varchar(45)" in p for p in login), problems
    assert any("NOT NULL in the database but nullable in the schema" in p for p in login)
    assert (
        "Person: column 'login' has DEFAULT '' in the database but no default in the schema"
        in problems
    )
    assert len(problems) == 6, problems


@needs_mariadb
def test_primary_key_change_is_reported(source_engine, scratch_engine):
    schemas = generate_schemas(source_engine, ["Proposal"])
    with scratch_engine.begin() as conn:
        conn.execute(sa.text("SET foreign_key_checks = 0"))
        conn.execute(
            sa.text(
                "ALTER TABLE Proposal MODIFY proposalId int(10) unsigned NOT NULL,"
                " DROP PRIMARY KEY, ADD PRIMARY KEY (proposalId, personId)"
            )
        )
    assert check_drift(scratch_engine, schemas) == [
        "Proposal: column 'proposalId' is not AUTO_INCREMENT in the database",
        "Proposal: primary key is (proposalId, personId) in the database"
        " but (proposalId) in the schema",
    ]


@needs_mariadb
def test_committed_schemas_have_no_drift_against_the_test_database(source_engine):
    schemas = load_schema_dir(Path(__file__).resolve().parent.parent / "schemas_json")
    assert check_drift(source_engine, schemas) == []


def _small_schemas() -> dict[str, dict]:
    def column(sql_type: str, nullable: bool) -> dict:
        kind = ["integer", "null"] if nullable else "integer"
        return {"type": kind, "x-ispyb": {"sqlType": sql_type, "nullable": nullable}}

    return {
        "Shelf": {
            "properties": {"shelfId": column("int", False), "rackId": column("int", True)},
            "x-ispyb": {"table": "Shelf", "primaryKey": ["shelfId"]},
        },
        "Rack": {
            "properties": {"rackId": column("int", False), "size": column("int", True)},
            "x-ispyb": {"table": "Rack", "primaryKey": ["rackId"]},
        },
        "Missing": {"properties": {"id": column("int", False)}, "x-ispyb": {"table": "Missing"}},
    }


def test_sqlite_drift_reports_missing_table_and_column_changes(tmp_path: Path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'demo.db'}")
    metadata = sa.MetaData()
    sa.Table(
        "Shelf",
        metadata,
        sa.Column("shelfId", sa.Integer, primary_key=True),
        sa.Column("label", sa.String(10)),
    )
    sa.Table(
        "Rack",
        metadata,
        sa.Column("rackId", sa.Integer, primary_key=True),
        sa.Column("size", sa.Integer, nullable=False),
    )
    metadata.create_all(engine)
    try:
        assert check_drift(engine, _small_schemas()) == [
            "missing table: Missing",
            "Rack: column 'size' is NOT NULL in the database but nullable in the schema",
            "Shelf: column 'rackId' is in the schema but not in the database",
            "Shelf: column 'label' is in the database but not in the schema",
        ]
    finally:
        engine.dispose()


def test_sqlite_matching_tables_have_no_drift(tmp_path: Path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'demo.db'}")
    metadata = sa.MetaData()
    sa.Table(
        "Shelf",
        metadata,
        sa.Column("shelfId", sa.Integer, primary_key=True),
        sa.Column("rackId", sa.Integer),
    )
    metadata.create_all(engine)
    try:
        schemas = {"Shelf": _small_schemas()["Shelf"]}
        assert check_drift(engine, schemas) == []
    finally:
        engine.dispose()


def test_load_schema_dir_reads_json_files_sorted_by_name(tmp_path: Path):
    (tmp_path / "B.json").write_text(json.dumps({"title": "B"}))
    (tmp_path / "A.json").write_text(json.dumps({"title": "A"}))
    (tmp_path / "readme.txt").write_text("not a schema")
    assert list(load_schema_dir(tmp_path)) == ["A", "B"]


def test_load_schema_dir_names_the_invalid_file(tmp_path: Path):
    (tmp_path / "Good.json").write_text("{}")
    (tmp_path / "Broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="Broken.json"):
        load_schema_dir(tmp_path)


@needs_mariadb
def test_a_collation_change_is_reported(source_engine, scratch_engine):
    schemas = generate_schemas(source_engine, ["Proposal"])
    with scratch_engine.begin() as conn:
        conn.execute(
            sa.text("ALTER TABLE Proposal MODIFY title varchar(200) COLLATE latin1_general_cs NULL")
        )
    assert check_drift(scratch_engine, schemas) == [
        "Proposal: column 'title' compares text as latin1_general_cs in the database"
        " but latin1_swedish_ci in the schema"
    ]
