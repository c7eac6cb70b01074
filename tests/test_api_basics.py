"""The API's frame: health, schemas, login, and JSON errors for everything that goes wrong."""

from __future__ import annotations

import json
import logging

import falcon.testing

from ispyb_falcon.app import create_app
from ispyb_falcon.db import make_engine

from .conftest import PREFIX


def test_health_reports_database_ok(client):
    r = client.simulate_get(f"{PREFIX}/health")
    assert r.status_code == 200
    assert r.json["status"] == "ok" and r.json["database"] == "ok"
    assert "version" in r.json


def test_data_routes_need_a_token(client):
    for path in ("/proposals", "/sessions/1", "/datacollections", "/auth/whoami"):
        r = client.simulate_get(PREFIX + path)
        assert r.status_code == 401, path
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert r.json["title"] == "401 Unauthorized"


def test_every_served_route_refuses_anonymous_calls(app, client):
    """No data route is reachable without a token, whatever the method."""
    from ispyb_falcon.resources import MODULES

    for routes in MODULES.values():
        for route in routes:
            if not route.path:
                continue
            path = PREFIX + route.path.replace("{id}", "1")
            for method in ("GET", "POST"):
                r = client.simulate_request(method, path, json={})
                assert r.status_code == 401, (method, path, r.status_code)
            if route.item and not route.nested:
                for method in ("GET", "PATCH", "PUT", "DELETE"):
                    r = client.simulate_request(method, path + "/1", json={})
                    assert r.status_code == 401, (method, path)


def test_schemas_list_names_every_served_table(client, catalog):
    r = client.simulate_get(f"{PREFIX}/schemas")
    assert r.status_code == 200
    names = {s["name"] for s in r.json["schemas"]}
    assert {"Proposal", "BLSession", "DataCollection", "BLSample", "Detector"} <= names
    proposal = next(s for s in r.json["schemas"] if s["name"] == "Proposal")
    assert proposal["url"] == f"{PREFIX}/schemas/Proposal"
    assert proposal["resource"] == f"{PREFIX}/proposals"
    assert "UserGroup" not in names  # needed for permissions, not served


def test_schema_is_the_validating_schema_with_etag(client, catalog):
    r = client.simulate_get(f"{PREFIX}/schemas/Proposal")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/schema+json"
    assert r.json == catalog.schemas["Proposal"]
    etag = r.headers["ETag"]
    assert "max-age" in r.headers["Cache-Control"]
    again = client.simulate_get(f"{PREFIX}/schemas/Proposal", headers={"If-None-Match": etag})
    assert again.status_code == 304


def test_unknown_schema_is_json_404(client):
    r = client.simulate_get(f"{PREFIX}/schemas/NoSuchTable")
    assert r.status_code == 404
    assert r.json["title"] == "404 Not Found"


def test_unknown_route_is_json_404(client):
    r = client.simulate_get(f"{PREFIX}/no-such-thing", headers={"Accept": "application/xml"})
    assert r.status_code == 404
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json["title"] == "404 Not Found"


def test_method_not_offered_is_405_with_allow(client, auth):
    r = client.simulate_delete(f"{PREFIX}/proposals", headers=auth("admin1"))
    assert r.status_code == 405
    assert "GET" in r.headers["Allow"] and "POST" in r.headers["Allow"]
    assert r.json["title"] == "405 Method Not Allowed"


def test_malformed_json_is_400(client, auth):
    r = client.simulate_post(
        f"{PREFIX}/proteins",
        body="{not json",
        headers={**auth("admin1"), "Content-Type": "application/json"},
    )
    assert r.status_code == 400
    assert "not valid JSON" in r.json["description"]


def test_numbers_a_column_cannot_hold_are_422_with_their_path(client, auth):
    """NaN, Infinity and 1e999 (past a DOUBLE) are refused before the database sees them."""
    for literal in ("NaN", "Infinity", "-Infinity", "1e999"):
        r = client.simulate_post(
            f"{PREFIX}/proteins",
            body='{"proposalId": 1, "name": "p", "molecularMass": ' + literal + "}",
            headers={**auth("admin1"), "Content-Type": "application/json"},
        )
        assert r.status_code == 422, (literal, r.text)
        assert [e["path"] for e in r.json["errors"]] == ["$.molecularMass"]


def test_body_that_is_not_json_is_415(client, auth):
    r = client.simulate_post(
        f"{PREFIX}/proteins",
        body="name=x",
        headers={**auth("admin1"), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 415
    assert r.json["title"] == "415 Unsupported Media Type"


def test_body_over_the_limit_is_413(client, auth, settings):
    limit = settings[("server", "max_body_bytes")]
    r = client.simulate_post(
        f"{PREFIX}/proteins",
        body=json.dumps({"name": "x" * (limit + 10)}),
        headers={**auth("admin1"), "Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json["title"].startswith("413 ")


def test_unknown_query_parameter_is_400_naming_it(client, auth):
    r = client.simulate_get(f"{PREFIX}/proposals", params={"titel": "x"}, headers=auth("admin1"))
    assert r.status_code == 400
    assert r.json["parameter"] == "titel"


def test_database_down_is_503_with_retry_after(settings, catalog, tmp_path, database_url):
    """An app whose database disappears answers 503 (data and health), never 500."""
    path = tmp_path / "gone.sqlite"
    from ispyb_falcon.demo.sqlite import create_demo_database

    create_demo_database(f"sqlite:///{path}", catalog.schemas, scale=1)
    local = settings.replace(database_url=f"sqlite:///{path}")
    engine = make_engine(local)
    client = falcon.testing.TestClient(create_app(local, engine=engine))
    token = client.simulate_get(
        f"{PREFIX}/auth/login", headers={"Authorization": "Basic YWRtaW4xOng="}
    ).json["token"]
    path.unlink()
    path.mkdir()  # a directory where the file was: SQLite cannot open it
    engine.dispose()  # drop pooled connections that still hold the old file
    r = client.simulate_get(f"{PREFIX}/proposals", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 503, r.text
    assert r.headers["Retry-After"]
    h = client.simulate_get(f"{PREFIX}/health")
    assert h.status_code == 503 and h.json["database"] == "unavailable"


def test_unexpected_error_is_json_500_with_request_id_only(app, client, auth, monkeypatch, caplog):
    from ispyb_falcon.resources import generic

    def boom(*a, **k):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(generic.statements, "bind_values", boom)
    r = client.simulate_get(f"{PREFIX}/proposals", headers=auth("admin1"))
    assert r.status_code == 500
    assert "secret internal detail" not in r.text
    assert r.json["requestId"] == r.headers["X-Request-Id"]
    assert any(
        "secret internal detail" in (rec.exc_text or "") or rec.exc_info for rec in caplog.records
    )


def test_login_returns_token_and_identity(client):
    r = client.simulate_post(f"{PREFIX}/auth/login", json={"login": "pi_anna", "password": "demo"})
    assert r.status_code == 200
    body = r.json
    assert body["tokenType"] == "Bearer" and body["login"] == "pi_anna"
    assert body["roles"] == ["user"] and isinstance(body["personId"], int)
    who = client.simulate_get(
        f"{PREFIX}/auth/whoami", headers={"Authorization": f"Bearer {body['token']}"}
    )
    assert who.status_code == 200
    assert who.json["login"] == "pi_anna" and who.json["personId"] == body["personId"]


def test_basic_login_works_like_curl_u(client):
    r = client.simulate_get(
        f"{PREFIX}/auth/login", headers={"Authorization": "Basic c3RhZmZfZGFuOnB3"}
    )
    assert r.status_code == 200
    assert r.json["login"] == "staff_dan"
    assert "mx_admin" in r.json["permissions"]
    assert r.json["beamlines"] == ["i03", "i04"]


def test_access_log_is_one_json_line_without_secrets(client, caplog):
    """Each request logs id, login, method, path, status, rows and ms; never a password or token."""
    password = "Very-Secret-Pw-8731"
    with caplog.at_level(logging.DEBUG):
        login = client.simulate_post(
            f"{PREFIX}/auth/login", json={"login": "pi_anna", "password": password}
        )
        token = login.json["token"]
        r = client.simulate_get(f"{PREFIX}/proposals", headers={"Authorization": f"Bearer {token}"})
        client.simulate_get(
            f"{PREFIX}/auth/login",
            headers={"Authorization": "Basic cGlfYW5uYTpWZXJ5LVNlY3JldC1Qdy04NzMx"},
        )
    text = "\n".join(rec.getMessage() for rec in caplog.records)
    assert password not in text and token not in text and "Bearer" not in text
    assert "cGlfYW5uYTpWZXJ5" not in text
    lines = [
        json.loads(rec.getMessage()) for rec in caplog.records if rec.name == "ispyb_falcon.access"
    ]
    mine = next(line for line in lines if line["requestId"] == r.headers["X-Request-Id"])
    assert mine == {
        **mine,
        "login": "pi_anna",
        "method": "GET",
        "path": f"{PREFIX}/proposals",
        "status": 200,
        "rows": 2,
    }
    assert isinstance(mine["ms"], float)


def test_login_plugin_must_be_a_known_name(client):
    """Found by contract fuzzing: a non-string or unknown plugin was a 500."""
    r = client.simulate_post(
        f"{PREFIX}/auth/login", json={"login": "a", "password": "b", "plugin": []}
    )
    assert r.status_code == 422 and r.json["errors"][0]["path"] == "$.plugin"
    r = client.simulate_get(
        f"{PREFIX}/auth/login",
        params={"plugin": "nope"},
        headers={"Authorization": "Basic cGlfYW5uYTp4"},
    )
    assert r.status_code == 400 and r.json["parameter"] == "plugin"


def test_login_outside_the_person_charset_is_nobody_not_a_500(client):
    """Found by contract fuzzing on MariaDB: Person.login is latin1; '✓' cannot be one."""
    r = client.simulate_post(f"{PREFIX}/auth/login", json={"login": "✓", "password": "x"})
    assert r.status_code == 200 and r.json["personId"] is None
    who = client.simulate_get(
        f"{PREFIX}/auth/whoami", headers={"Authorization": f"Bearer {r.json['token']}"}
    )
    assert who.status_code == 200 and who.json["login"] == "✓"
    lists = client.simulate_get(
        f"{PREFIX}/proposals", headers={"Authorization": f"Bearer {r.json['token']}"}
    )
    assert lists.status_code == 200 and lists.json["total"] == 0
