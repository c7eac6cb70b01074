"""Shared fixtures: one demo database per test session, SQLite or MariaDB.

Without `ISPYB_FALCON_TEST_DATABASE_URL` the suite runs on a SQLite file made
from `schemas_json/` and filled with the demo data. With it, the suite runs on
that MariaDB database (the official ISPyB schema, loaded by `.ci/run`), after
adding the demo data to it; if that database cannot be reached the tests
fail, they do not skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import falcon.testing
import pytest
import sqlalchemy as sa

from ispyb_falcon.app import create_app
from ispyb_falcon.catalog.store import Catalog
from ispyb_falcon.cli import demo_settings
from ispyb_falcon.demo.files import place as place_demo_files
from ispyb_falcon.demo.generator import fill
from ispyb_falcon.demo.sqlite import create_demo_database

PREFIX = "/ispyb/api/v1"
SECRET = "test-secret-that-is-long-enough-for-hs256-signing"
MARIADB_URL = os.environ.get("ISPYB_FALCON_TEST_DATABASE_URL")


OFFICIAL_SQL = Path(
    os.environ.get("ISPYB_FALCON_TEST_SQL_DIR")
    or Path(__file__).resolve().parents[2] / "shared" / "ispyb-database" / "schemas" / "ispyb"
)
OFFICIAL_SQL_FILES = (  # the load order of ../shared/ispyb-database/README.md
    "tables.sql",
    "lookups.sql",
    "data.sql",
    "routines.sql",
    "updates/2026_04_24_AutoProc_autoProcProgramId.sql",
    "updates/2026_05_08_MillingStep_table.sql",
)


def mariadb_client(url: sa.URL) -> list[str]:
    args = ["mariadb", f"--host={url.host or 'localhost'}", f"--port={url.port or 3306}"]
    if url.username:
        args.append(f"--user={url.username}")
    if url.password:
        args.append(f"--password={url.password}")
    return args


@contextlib.contextmanager
def scratch_database(name: str) -> Iterator[sa.URL]:
    """A fresh database `name` beside the test database, with the official schema; dropped after."""
    url = sa.make_url(MARIADB_URL)
    assert url.database != name, "a scratch database must not be the configured one"
    if shutil.which("mariadb") is None or not (OFFICIAL_SQL / "tables.sql").exists():
        pytest.fail(f"needs the mariadb client and the official ISPyB SQL files in {OFFICIAL_SQL}")
    client = mariadb_client(url)
    subprocess.run(
        [*client, "-e", f"DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}`;"], check=True
    )
    sql = b"".join((OFFICIAL_SQL / f).read_bytes() + b"\n" for f in OFFICIAL_SQL_FILES)
    subprocess.run([*client, "-D", name], input=sql, check=True)
    try:
        yield url.set(database=name)
    finally:
        subprocess.run([*client, "-e", f"DROP DATABASE IF EXISTS `{name}`"], check=True)


needs_mariadb = pytest.mark.skipif(
    not MARIADB_URL, reason="ISPYB_FALCON_TEST_DATABASE_URL is not set"
)


def reachable(url: str) -> sa.Engine:
    """An engine on the test database; an unreachable one fails the run, it does not skip."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        pytest.fail(f"ISPYB_FALCON_TEST_DATABASE_URL is set but unreachable: {exc}")
    return engine


@pytest.fixture(scope="session")
def mariadb_engine():
    engine = reachable(MARIADB_URL)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return Catalog.from_dir()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory, catalog) -> str:
    if MARIADB_URL:
        engine = reachable(MARIADB_URL)
        fill(engine, scale=1)
        engine.dispose()
        return MARIADB_URL
    path = tmp_path_factory.mktemp("db") / "demo.sqlite"
    url = f"sqlite:///{path}"
    create_demo_database(url, catalog.schemas, scale=1)
    return url


@pytest.fixture(scope="session")
def data_root(database_url, tmp_path_factory) -> Path:
    """The demo's files (snapshots, JPEGs, logs), and the rows of its first copy naming them."""
    root = tmp_path_factory.mktemp("data")
    engine = sa.create_engine(database_url)
    try:
        place_demo_files(engine, root)
    finally:
        engine.dispose()
    return root.resolve()


@pytest.fixture(scope="session")
def settings(database_url, data_root, tmp_path_factory):
    base = demo_settings(tmp_path_factory.mktemp("x") / "unused.sqlite", 8080)
    return base.replace(
        database_url=database_url,
        tokens_secret=SECRET,
        server_cors_origins=("https://ui.example.org",),
        files_roots=(str(data_root),),
    )


@pytest.fixture(scope="session")
def app(settings):
    return create_app(settings)


@pytest.fixture(scope="session")
def engine(app, database_url):
    return sa.create_engine(database_url)


@pytest.fixture()
def client(app) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(app)


_TOKENS: dict[str, str] = {}


@pytest.fixture()
def auth(client):
    """auth("pi_anna") -> headers with a bearer token for that demo login (dummy authenticator)."""

    def headers(login: str) -> dict[str, str]:
        if login not in _TOKENS:
            r = client.simulate_post(
                f"{PREFIX}/auth/login", json={"login": login, "password": "demo"}
            )
            assert r.status_code == 200, r.text
            _TOKENS[login] = r.json["token"]
        return {"Authorization": f"Bearer {_TOKENS[login]}"}

    return headers
