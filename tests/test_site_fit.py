"""A site's database that differs from the JSON Schemas: the server serves what fits.

On MariaDB, a scratch copy of the official schema with the demo data is drifted
the way sites drift (a served table dropped, a searched column dropped, a
default removed, an enum value added, a column's character set changed), then
served with the shipped schemas. On SQLite, the demo database is drifted the
same way where SQLite can. Every answer is checked through HTTP.
"""

from __future__ import annotations

import json
import logging

import falcon.testing
import pytest
import sqlalchemy as sa

from ispyb_falcon import cli
from ispyb_falcon.app import StartupError, create_app
from ispyb_falcon.catalog.store import Catalog
from ispyb_falcon.demo.generator import fill
from ispyb_falcon.demo.sqlite import create_demo_database

from .conftest import MARIADB_URL, PREFIX, SECRET, needs_mariadb, scratch_database

DRIFT = (
    "SET foreign_key_checks = 0",
    "DROP TABLE XFEFluorescenceSpectrum",
    "ALTER TABLE DataCollection DROP COLUMN comments",
    "ALTER TABLE Detector DROP COLUMN localName",
    # the default removed and a value added: what the database now decides
    "ALTER TABLE Dewar MODIFY type enum('Dewar','Toolbox','Parcel','Puck box') NOT NULL",
    # the shipped schema says latin1
    "ALTER TABLE Protein MODIFY name varchar(255) CHARACTER SET utf8mb4 NULL",
)


def _settings(settings, url: str, **more):
    return settings.replace(database_url=url, tokens_secret=SECRET, **more)


def _login(client, login: str) -> dict[str, str]:
    r = client.simulate_post(f"{PREFIX}/auth/login", json={"login": login, "password": "demo"})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json['token']}"}


@pytest.fixture(scope="module")
def drifted_url():
    if not MARIADB_URL:
        pytest.skip("ISPYB_FALCON_TEST_DATABASE_URL is not set")
    with scratch_database("ispyb_site_fit") as url:
        text = url.render_as_string(hide_password=False)
        engine = sa.create_engine(text)
        fill(engine, scale=1)
        with engine.begin() as conn:
            for statement in DRIFT:
                conn.execute(sa.text(statement))
        engine.dispose()
        yield text


@pytest.fixture(scope="module")
def started(drifted_url, settings):
    """The app on the drifted database with the shipped schemas, and its start-up log."""
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    log = logging.getLogger("ispyb_falcon")
    log.addHandler(handler)
    try:
        app = create_app(_settings(settings, drifted_url, database_schema_check="warn"))
    finally:
        log.removeHandler(handler)
    return app, records


@pytest.fixture()
def site(started):
    client = falcon.testing.TestClient(started[0])
    return client, _login(client, "admin1")


@needs_mariadb
def test_the_start_up_report_names_the_version_what_is_not_served_and_each_difference(started):
    lines = started[1]
    assert any(line.startswith("database schema version 5.0.0:") for line in lines), lines
    assert (
        "not served: /xfespectra (table XFEFluorescenceSpectrum: missing from the database)"
        in lines
    )
    assert (
        "served without: /datacollections: ?search= does not look in DataCollection.comments"
        in lines
    )
    assert "  Dewar: column 'type' allows 'Puck box' only in the database" in lines
    assert any("Dewar: column 'type' has no default in the database" in line for line in lines)
    assert (
        "  Protein: column 'name' stores utf8mb4 in the database but latin1 in the schema" in lines
    )
    assert any("schemas generate" in line and "schemas_dir" in line for line in lines)


@needs_mariadb
def test_a_missing_table_takes_only_its_own_routes_out(site):
    client, admin = site
    assert client.simulate_get(f"{PREFIX}/xfespectra", headers=admin).status_code == 404
    assert client.simulate_get(f"{PREFIX}/energyscans", headers=admin).status_code == 200
    health = client.simulate_get(f"{PREFIX}/health")
    assert health.status_code == 200
    assert health.json["schema"]["version"] == "5.0.0"
    assert health.json["schema"]["notServed"] == ["/xfespectra"]
    paths = client.simulate_get(f"{PREFIX}/openapi.json").json["paths"]
    assert "/xfespectra" not in paths and "/energyscans" in paths


@needs_mariadb
@pytest.mark.parametrize(
    "query",
    ["comments=x", "comments[like]=x", "order_by=comments", "fields=dataCollectionId,comments"],
)
def test_a_column_the_database_lacks_is_refused_by_name_in_queries(site, query):
    client, admin = site
    r = client.simulate_get(f"{PREFIX}/datacollections", query_string=query, headers=admin)
    assert r.status_code == 400, r.text
    assert "comments" in r.json["description"] + r.json.get("parameter", "")


@needs_mariadb
def test_a_column_the_database_lacks_is_refused_by_name_in_bodies(site):
    client, admin = site
    one = client.simulate_get(f"{PREFIX}/datacollections", query_string="limit=1", headers=admin)
    key = one.json["results"][0]["dataCollectionId"]
    assert "comments" not in one.json["results"][0]
    r = client.simulate_patch(
        f"{PREFIX}/datacollections/{key}", json={"comments": "x"}, headers=admin
    )
    assert r.status_code == 422
    assert r.json["errors"] == [{"path": "$.comments", "message": "unknown field 'comments'"}]


@needs_mariadb
@pytest.mark.parametrize("path", ["/datacollections", "/detectors"])
def test_search_looks_in_the_columns_the_database_still_has(site, path):
    client, admin = site
    r = client.simulate_get(f"{PREFIX}{path}", query_string="search=a", headers=admin)
    assert r.status_code == 200, r.text


def _shipping(client, admin) -> int:
    r = client.simulate_get(f"{PREFIX}/shippings", query_string="limit=1", headers=admin)
    return r.json["results"][0]["shippingId"]


@needs_mariadb
def test_a_default_the_database_removed_makes_the_column_required(site):
    client, admin = site
    body = {"shippingId": _shipping(client, admin), "code": "fit-1"}
    r = client.simulate_post(f"{PREFIX}/dewars", json=body, headers=admin)
    assert r.status_code == 422, r.text
    assert any("'type' is a required property" in e["message"] for e in r.json["errors"])


@needs_mariadb
def test_an_enum_value_the_database_added_is_accepted_and_served(site):
    client, admin = site
    body = {"shippingId": _shipping(client, admin), "code": "fit-2", "type": "Puck box"}
    r = client.simulate_post(f"{PREFIX}/dewars", json=body, headers=admin)
    assert r.status_code == 201, r.text
    again = client.simulate_get(r.headers["Location"], headers=admin)
    assert again.json["type"] == "Puck box"
    schema = client.simulate_get(f"{PREFIX}/schemas/Dewar").json
    assert "Puck box" in schema["properties"]["type"]["enum"]


@needs_mariadb
def test_text_the_database_can_store_is_accepted_whatever_the_schema_file_said(site):
    client, admin = site
    protein = client.simulate_get(f"{PREFIX}/proteins", query_string="limit=1", headers=admin)
    key = protein.json["results"][0]["proteinId"]
    r = client.simulate_patch(
        f"{PREFIX}/proteins/{key}", json={"name": "β-lactamase"}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert (
        client.simulate_get(f"{PREFIX}/proteins/{key}", headers=admin).json["name"] == "β-lactamase"
    )
    # acronym is still latin1: refused by the server's own check, not by the database
    r = client.simulate_patch(f"{PREFIX}/proteins/{key}", json={"acronym": "β"}, headers=admin)
    assert r.status_code == 422
    assert "latin1" in r.text and "ispyb_site_fit" not in r.text


@needs_mariadb
def test_schema_check_error_refuses_to_start_and_names_every_difference(drifted_url, settings):
    with pytest.raises(StartupError) as refused:
        create_app(_settings(settings, drifted_url, database_schema_check="error"))
    text = str(refused.value)
    assert "missing table: XFEFluorescenceSpectrum" in text
    assert "'Puck box' only in the database" in text
    assert "schemas_dir" in text


@needs_mariadb
def test_generated_schemas_serve_the_drifted_database_with_schema_check_error(
    drifted_url, settings, tmp_path, capsys
):
    out = tmp_path / "schemas"
    assert cli.main(["schemas", "generate", "--database", drifted_url, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "not written: XFEFluorescenceSpectrum (missing from the database)" in err
    assert "Traceback" not in err
    config = tmp_path / "site.ini"
    config.write_text(
        f"[server]\ndebug = true\n[database]\nurl = {drifted_url}\nschemas_dir = {out}\n"
    )
    assert cli.main(["--config", str(config), "schemas", "check"]) == 0
    assert (
        f"0 difference(s) between the database (schema version 5.0.0) and the 36 schemas in {out}"
        in capsys.readouterr().err
    )
    app = create_app(
        _settings(
            settings, drifted_url, database_schema_check="error", database_schemas_dir=str(out)
        )
    )
    client = falcon.testing.TestClient(app)
    admin = _login(client, "admin1")
    assert client.simulate_get(f"{PREFIX}/xfespectra", headers=admin).status_code == 404
    assert client.simulate_get(f"{PREFIX}/dewars", headers=admin).status_code == 200


@needs_mariadb
def test_a_table_the_database_user_may_not_read_takes_only_its_routes_out(drifted_url, settings):
    url = sa.make_url(drifted_url)
    root = sa.create_engine(drifted_url)
    user, password = "ispyb_fit_reader", "fit-reader-password"
    with root.begin() as conn:
        conn.execute(sa.text(f"DROP USER IF EXISTS '{user}'@'%'"))
        conn.execute(sa.text(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"))
        for (table,) in conn.execute(sa.text("SHOW TABLES")):
            if table != "EnergyScan":
                conn.execute(sa.text(f"GRANT SELECT ON `{url.database}`.`{table}` TO '{user}'@'%'"))
    try:
        reader = url.set(username=user, password=password).render_as_string(hide_password=False)
        records: list[str] = []
        handler = logging.Handler()
        handler.emit = lambda record: records.append(record.getMessage())
        logging.getLogger("ispyb_falcon").addHandler(handler)
        try:
            app = create_app(_settings(settings, reader, database_schema_check="warn"))
        finally:
            logging.getLogger("ispyb_falcon").removeHandler(handler)
        assert (
            "not served: /energyscans (table EnergyScan: the database user has no SELECT"
            " privilege on it)" in records
        )
        client = falcon.testing.TestClient(app)
        admin = _login(client, "admin1")
        assert client.simulate_get(f"{PREFIX}/energyscans", headers=admin).status_code == 404
        assert client.simulate_get(f"{PREFIX}/datacollections", headers=admin).status_code == 200
        # reading is all it may do: a write is a 403 naming the command, not a 500
        body = {"shippingId": _shipping(client, admin), "code": "fit-3", "type": "Dewar"}
        r = client.simulate_post(f"{PREFIX}/dewars", json=body, headers=admin)
        assert r.status_code == 403, r.text
        assert "INSERT on table Dewar" in r.json["description"]
        assert user not in r.text and url.database not in r.text
    finally:
        with root.begin() as conn:
            conn.execute(sa.text(f"DROP USER IF EXISTS '{user}'@'%'"))
        root.dispose()


def _changed_while_serving(client, admin, drop, gone: str) -> None:
    assert client.simulate_get(f"{PREFIX}/images", headers=admin).status_code == 200
    drop()
    r = client.simulate_get(f"{PREFIX}/images", headers=admin)
    assert r.status_code == 503, r.text
    assert gone in r.json["description"]
    health = client.simulate_get(f"{PREFIX}/health")
    assert health.status_code == 503
    assert health.json["schema"]["changed"] == [f"{gone} is gone"]
    assert client.simulate_get(f"{PREFIX}/proposals", headers=admin).status_code == 200


@needs_mariadb
def test_a_column_dropped_while_serving_is_a_503_naming_it_and_health_says_so(started, drifted_url):
    # last of the MariaDB tests: it changes the module's database under the server
    client = falcon.testing.TestClient(started[0])
    engine = sa.create_engine(drifted_url)

    def drop() -> None:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE Image DROP COLUMN jpegFileFullPath"))

    try:
        _changed_while_serving(
            client, _login(client, "admin1"), drop, "column Image.jpegFileFullPath"
        )
    finally:
        engine.dispose()


def test_sqlite_demo_database_drifted_serves_what_fits(settings, tmp_path, catalog):
    path = tmp_path / "drifted.sqlite"
    url = f"sqlite:///{path}"
    create_demo_database(url, catalog.schemas, scale=1)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE XFEFluorescenceSpectrum"))
        conn.execute(sa.text("ALTER TABLE DataCollection DROP COLUMN comments"))
    app = create_app(_settings(settings, url, database_schema_check="warn"))
    client = falcon.testing.TestClient(app)
    admin = _login(client, "admin1")
    assert client.simulate_get(f"{PREFIX}/xfespectra", headers=admin).status_code == 404
    r = client.simulate_get(f"{PREFIX}/datacollections", query_string="comments=x", headers=admin)
    assert r.status_code == 400 and "comments" in r.text
    ok = client.simulate_get(f"{PREFIX}/datacollections", query_string="search=a", headers=admin)
    assert ok.status_code == 200

    def drop() -> None:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE Image DROP COLUMN jpegFileFullPath"))

    _changed_while_serving(client, admin, drop, "column Image.jpegFileFullPath")
    with pytest.raises(StartupError, match="missing table: XFEFluorescenceSpectrum"):
        create_app(_settings(settings, url, database_schema_check="error"))


@needs_mariadb
def test_with_schema_check_off_a_value_the_database_refuses_is_a_422_without_its_text(
    drifted_url, settings, catalog
):
    """The file says utf8mb4, the database's column is latin1, and nothing compared them:
    the database refuses, and the 422 names the field, not the database or its table."""
    schemas = json.loads(json.dumps(catalog.schemas))
    schemas["Protein"]["properties"]["acronym"]["x-ispyb"]["charset"] = "utf8mb4"
    app = create_app(
        _settings(settings, drifted_url, database_schema_check="off"), catalog=Catalog(schemas)
    )
    client = falcon.testing.TestClient(app)
    admin = _login(client, "admin1")
    protein = client.simulate_get(f"{PREFIX}/proteins", query_string="limit=1", headers=admin)
    key = protein.json["results"][0]["proteinId"]
    r = client.simulate_patch(f"{PREFIX}/proteins/{key}", json={"acronym": "βlac"}, headers=admin)
    assert r.status_code == 422, r.text
    assert r.json["errors"] == [
        {"path": "$.acronym", "message": "holds characters the database's column cannot store"}
    ]
    assert "ispyb_site_fit" not in r.text and "Protein`" not in r.text
