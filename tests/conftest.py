"""Shared fixtures: one demo database per test session, SQLite or MariaDB.

Without `ISPYB_FALCON_TEST_DATABASE_URL` the suite runs on a SQLite file made
from `schemas_json/` and filled with the demo data. With it, the suite runs on
that MariaDB database (the official ISPyB schema, loaded by `.ci/run`), after
adding the demo data to it; if that database cannot be reached the tests
fail, they do not skip.
"""

from __future__ import annotations

import os

import falcon.testing
import pytest
import sqlalchemy as sa

from ispyb_falcon.app import create_app
from ispyb_falcon.catalog.store import Catalog
from ispyb_falcon.cli import demo_settings
from ispyb_falcon.demo.generator import fill
from ispyb_falcon.demo.sqlite import create_demo_database

PREFIX = "/ispyb/api/v1"
SECRET = "test-secret-that-is-long-enough-for-hs256-signing"
MARIADB_URL = os.environ.get("ISPYB_FALCON_TEST_DATABASE_URL")


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
def settings(database_url, tmp_path_factory):
    base = demo_settings(tmp_path_factory.mktemp("x") / "unused.sqlite", 8080)
    return base.replace(
        database_url=database_url,
        tokens_secret=SECRET,
        server_cors_origins=("https://ui.example.org",),
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
