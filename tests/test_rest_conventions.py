"""What users expect of a REST API beyond the routes: download links, 406, a root index,
timestamped access lines under any WSGI server."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from .conftest import PREFIX, SECRET


def test_format_csv_is_the_same_export_as_accept_text_csv_with_a_file_name(client, auth):
    h = auth("pi_anna")
    by_header = client.simulate_get(
        f"{PREFIX}/samples", query_string="proposal=mx1001", headers={**h, "Accept": "text/csv"}
    )
    by_link = client.simulate_get(
        f"{PREFIX}/samples", query_string="proposal=mx1001&format=csv", headers=h
    )
    assert by_link.status_code == by_header.status_code == 200
    assert by_link.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert by_link.headers["Content-Disposition"] == 'attachment; filename="samples.csv"'
    assert by_link.text == by_header.text and by_link.text.count("\r\n") > 1


def test_format_ndjson_and_json(client, auth):
    h = auth("pi_anna")
    lines = client.simulate_get(
        f"{PREFIX}/proteins", query_string="proposal=mx1001&format=ndjson", headers=h
    )
    assert lines.headers["Content-Type"] == "application/x-ndjson"
    assert lines.headers["Content-Disposition"] == 'attachment; filename="proteins.ndjson"'
    page = client.simulate_get(
        f"{PREFIX}/proteins",
        query_string="proposal=mx1001&format=json",
        headers={**h, "Accept": "text/csv"},  # ?format= wins over Accept
    )
    assert page.json["total"] == len(lines.text.splitlines())


@pytest.mark.parametrize("value", ["xml", "CSV", ""])
def test_an_unknown_format_is_a_400_naming_the_choices(client, auth, value):
    r = client.simulate_get(
        f"{PREFIX}/proteins", query_string=f"format={value}", headers=auth("pi_anna")
    )
    assert r.status_code == 400
    assert r.json["parameter"] == "format" and "json, csv, ndjson" in r.json["description"]


@pytest.mark.parametrize("path", ["/proteins", "/proposals/mx1001", "/sessions/mx1001-1"])
def test_an_accept_the_route_cannot_serve_is_a_406_in_json(client, auth, path):
    r = client.simulate_get(
        f"{PREFIX}{path}", headers={**auth("pi_anna"), "Accept": "application/xml"}
    )
    assert r.status_code == 406, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert "application/json" in r.json["offered"]


def test_an_item_offers_no_export(client, auth):
    r = client.simulate_get(
        f"{PREFIX}/proposals/mx1001", headers={**auth("pi_anna"), "Accept": "text/csv"}
    )
    assert r.status_code == 406 and r.json["offered"] == ["application/json"]


@pytest.mark.parametrize(
    "accept",
    [
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",  # a browser
        "application/*",
        "application/json; charset=utf-8",
    ],
)
def test_accepts_that_allow_json_get_json(client, auth, accept):
    r = client.simulate_get(
        f"{PREFIX}/proposals/mx1001", headers={**auth("pi_anna"), "Accept": accept}
    )
    assert r.status_code == 200 and r.json["proposalCode"] == "mx"


@pytest.mark.parametrize("path", [PREFIX, PREFIX + "/", "/"])
def test_the_base_url_answers_an_index_of_where_to_go(client, path):
    r = client.simulate_get(path)
    assert r.status_code == 200
    links = r.json["links"]
    assert links["doc"] == f"{PREFIX}/doc" and links["openapi"] == f"{PREFIX}/openapi.json"
    for target in links.values():
        if target.endswith("/login"):
            continue
        assert client.simulate_get(target).status_code == 200, target


def test_under_another_wsgi_server_access_lines_carry_their_time(database_url, tmp_path):
    """ispyb_falcon.wsgi is what gunicorn and mod_wsgi load: its log lines are timestamped."""
    env = {
        **os.environ,
        "ISPYB_FALCON_DATABASE_URL": database_url,
        "ISPYB_FALCON_SERVER_DEBUG": "true",
        "ISPYB_FALCON_TOKENS_SECRET": SECRET,
        "ISPYB_FALCON_AUTH_AUTHENTICATORS": "dummy",
    }
    script = (
        "from wsgiref.util import setup_testing_defaults\n"
        "from ispyb_falcon.wsgi import application\n"
        "environ = {'PATH_INFO': '/ispyb/api/v1/health'}\n"
        "setup_testing_defaults(environ)\n"
        "print(b''.join(application(environ, lambda status, headers: None)).decode())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    access = [line for line in done.stderr.splitlines() if "ispyb_falcon.access" in line]
    assert len(access) == 1, done.stderr
    assert re.match(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO ispyb_falcon\.access \{", access[0]
    )


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_an_export_with_a_limit_streams_that_page_only(client, auth, fmt):
    h = auth("pi_anna")
    page = client.simulate_get(f"{PREFIX}/samples", query_string="limit=2&skip=1", headers=h)
    export = client.simulate_get(
        f"{PREFIX}/samples", query_string=f"limit=2&skip=1&format={fmt}", headers=h
    )
    lines = export.text.splitlines()
    rows = lines[1:] if fmt == "csv" else lines
    assert len(page.json["results"]) == len(rows) == 2


def test_a_stale_etag_on_a_row_the_caller_may_not_change_is_a_403_not_a_412(client, auth):
    """RFC 9110 13.2.1: the precondition is evaluated once the request would otherwise succeed."""
    listed = client.simulate_get(  # pi_anna's closed proposal
        f"{PREFIX}/samples", query_string="proposal=mx1002&limit=1", headers=auth("pi_anna")
    )
    closed = listed.json["results"][0]["blSampleId"]
    r = client.simulate_patch(
        f"{PREFIX}/samples/{closed}",
        headers={**auth("pi_anna"), "If-Match": '"stale"'},
        json={"comments": "x"},
    )
    assert r.status_code == 403, r.text


def test_the_openapi_document_describes_format_406_and_the_index(client):
    doc = client.simulate_get(f"{PREFIX}/openapi.json").json
    listing = doc["paths"]["/samples"]["get"]
    assert {"$ref": "#/components/parameters/format"} in listing["parameters"]
    assert doc["components"]["parameters"]["format"]["schema"]["enum"] == ["json", "csv", "ndjson"]
    assert (
        "406" in listing["responses"] and "406" in doc["paths"]["/samples/{id}"]["get"]["responses"]
    )
    assert "Content-Disposition" in listing["responses"]["200"]["headers"]
    assert doc["paths"]["/"]["get"]["operationId"] == "index"
