"""Configuration and the command line: clear messages, exit code 2, the documented keys."""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import falcon.testing
import pytest
import sqlalchemy as sa

from ispyb_falcon.app import StartupError, create_app
from ispyb_falcon.cli import main
from ispyb_falcon.config import KEYS, ConfigError, load_settings

from .conftest import PREFIX
from .servers import demo_server

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "conf" / "ispyb-falcon.example.ini"


def test_example_file_documents_every_key():
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(EXAMPLE)
    documented = {(s, k) for s in parser.sections() for k in parser[s] if s in {x for x, _ in KEYS}}
    assert documented == set(KEYS)


def test_example_file_loads_with_groups_and_plugins():
    s = load_settings(EXAMPLE, environ={})
    assert s[("server", "prefix")] == "/ispyb/api/v1"
    assert s.beamline_groups[0].permission == "mx_admin"
    assert s.authenticator_options["ldap"]["url"].startswith("ldap://")


def test_environment_overrides_the_file():
    s = load_settings(
        EXAMPLE, environ={"ISPYB_FALCON_QUERY_MAX_LIMIT": "50", "ISPYB_FALCON_SERVER_DEBUG": "yes"}
    )
    assert s[("query", "max_limit")] == 50 and s[("server", "debug")] is True


def test_environment_names_the_config_file(tmp_path):
    f = tmp_path / "c.ini"
    f.write_text("[server]\nport = 9999\n")
    assert load_settings(environ={"ISPYB_FALCON_CONFIG": str(f)})[("server", "port")] == 9999


@pytest.mark.parametrize(
    ("text", "env", "named"),
    [
        ("[server]\nport = eighty\n", {}, "[server] port"),
        ("[server]\nthreads = 0\n", {}, "[server] threads"),
        ("[server]\nprefx = /x\n", {}, "prefx"),
        ("[nonsense]\na = 1\n", {}, "[nonsense]"),
        ("", {"ISPYB_FALCON_QUERY_MAX_LIMIT": "-1"}, "ISPYB_FALCON_QUERY_MAX_LIMIT"),
        ("[beamline_groups]\nmx = i03\n", {}, "[beamline_groups] mx"),
        ("[query]\ndefault_limit = 500\nmax_limit = 100\n", {}, "default_limit"),
    ],
)
def test_bad_value_is_one_message_naming_the_key(tmp_path, text, env, named):
    f = tmp_path / "c.ini"
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(f, environ=env)
    assert named in str(err.value)


def test_cli_bad_config_exits_2_without_traceback(tmp_path, capsys):
    f = tmp_path / "c.ini"
    f.write_text("[server]\nport = eighty\n")
    assert main(["--config", str(f), "serve"]) == 2
    err = capsys.readouterr().err
    assert "[server] port" in err and "Traceback" not in err


def test_cli_missing_config_file_exits_2(capsys):
    assert main(["--config", "/nonexistent/ispyb.ini", "serve"]) == 2
    assert "not found" in capsys.readouterr().err


def test_unknown_module_is_refused(settings):
    with pytest.raises(ConfigError, match="modules"):
        create_app(settings.replace(server_modules=("proposals", "nonsense")))


def test_drift_refuses_to_start_with_schema_check_error_and_names_the_column(settings, catalog):
    schemas = json.loads(json.dumps(catalog.schemas))
    schemas["Dewar"]["properties"]["madeUpColumn"] = {
        "type": "string",
        "x-ispyb": {"sqlType": "varchar(5)", "nullable": True},
    }
    from ispyb_falcon.catalog.store import Catalog

    with pytest.raises(StartupError, match="madeUpColumn"):
        create_app(settings.replace(database_schema_check="error"), catalog=Catalog(schemas))
    # warn (the default) serves, without the column the database lacks
    client = falcon.testing.TestClient(create_app(settings, catalog=Catalog(schemas)))
    assert "madeUpColumn" not in client.simulate_get(f"{PREFIX}/schemas/Dewar").text


def test_unreachable_database_is_a_startup_error(settings):
    with pytest.raises(StartupError, match="cannot read the database"):
        create_app(settings.replace(database_url="mysql+pymysql://nobody@127.0.0.1:1/none"))


def test_passwd_then_file_login(tmp_path, settings):
    path = tmp_path / "passwords"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ispyb_falcon.cli",
            "passwd",
            "--file",
            str(path),
            "--login",
            "pi_anna",
            "--password-stdin",
        ],
        input="s3cret-pw\n",
        text=True,
        capture_output=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert path.read_text().startswith("pi_anna:user:pbkdf2_sha256$")
    import falcon.testing

    app = create_app(
        settings.replace(
            auth_authenticators=("file",), authenticator_options={"file": {"path": str(path)}}
        )
    )
    c = falcon.testing.TestClient(app)
    ok = c.simulate_post(
        "/ispyb/api/v1/auth/login", json={"login": "pi_anna", "password": "s3cret-pw"}
    )
    assert ok.status_code == 200 and ok.json["roles"] == ["user"]
    bad = c.simulate_post("/ispyb/api/v1/auth/login", json={"login": "pi_anna", "password": "nope"})
    assert bad.status_code == 401


def test_schemas_check_cli_reports_no_drift_for_the_demo(database_url, capsys):
    assert main(["schemas", "check", "--database", database_url]) == 0
    assert "0 difference(s)" in capsys.readouterr().err


@pytest.mark.skipif(not os.environ.get("ISPYB_FALCON_TEST_DATABASE_URL"), reason="needs MariaDB")
def test_schemas_generate_cli_reproduces_schemas_json(tmp_path, capsys):
    url = os.environ["ISPYB_FALCON_TEST_DATABASE_URL"]
    assert main(["schemas", "generate", "--database", url, "--out", str(tmp_path)]) == 0
    for f in (ROOT / "schemas_json").glob("*.json"):
        assert (tmp_path / f.name).read_bytes() == f.read_bytes(), f.name


def test_demo_data_cli_fills_a_new_sqlite_file(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'd.sqlite'}"
    assert main(["demo-data", "--database", url, "--scale", "2"]) == 0
    with sa.create_engine(url).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM Proposal")).scalar_one() == 8
    assert "inserted" in capsys.readouterr().err


def test_demo_command_serves_health_schemas_and_proposals(tmp_path):
    """The README's first command, end to end: waitress on loopback, real HTTP."""
    with demo_server(tmp_path) as (base, log):
        with urllib.request.urlopen(base + "/schemas/Proposal") as r:
            assert json.load(r)["title"] == "Proposal"
        req = urllib.request.Request(
            base + "/auth/login", headers={"Authorization": "Basic cGlfYW5uYTpkZW1v"}
        )
        with urllib.request.urlopen(req) as r:
            token = json.load(r)["token"]
        req = urllib.request.Request(
            base + "/proposals", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(req) as r:
            names = {p["proposalCode"] + p["proposalNumber"] for p in json.load(r)["results"]}
        assert names == {"mx1001", "mx1002"}
    printed = log.read_text()
    assert "curl" in printed and "Authorization: Bearer" in printed
