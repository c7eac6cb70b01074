"""The API's own description: OpenAPI 3.1, offline Swagger UI, and site-chosen modules."""

from __future__ import annotations

import gzip
import json

import falcon.testing
import pytest
import sqlalchemy as sa
from openapi_spec_validator import validate

from ispyb_falcon.app import create_app
from ispyb_falcon.resources import MODULES

from .conftest import PREFIX


@pytest.fixture(scope="module")
def document(app):
    return falcon.testing.TestClient(app).simulate_get(f"{PREFIX}/openapi.json").json


def test_openapi_document_is_valid_openapi_3_1(document):
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_every_route_is_described_with_its_docstring(document):
    for routes in MODULES.values():
        for route in routes:
            if not route.path:
                continue
            ops = document["paths"][route.path]
            assert ops["get"]["summary"] == route.summary
            assert ops["get"]["description"] == route.description
            assert ops["post"]["requestBody"]["content"]["application/json"]["schema"]["oneOf"][
                0
            ] == {"$ref": f"#/components/schemas/{route.table}"}
            if route.item:
                item = route.path + ("/{key}" if route.nested else "/{id}")
                assert set(document["paths"][item]) == {"get", "patch", "put", "delete"}


def test_components_are_the_validating_schemas(document, catalog):
    proposal = document["components"]["schemas"]["Proposal"]
    expected = {k: v for k, v in catalog.schemas["Proposal"].items() if k not in ("$schema", "$id")}
    assert proposal == expected
    assert "required" not in document["components"]["schemas"]["ProposalPatch"]


def test_list_operators_and_errors_are_documented(document):
    params = {p["name"] for p in document["paths"]["/samples"]["get"]["parameters"]}
    assert {
        "skip",
        "limit",
        "order_by",
        "order",
        "fields",
        "search",
        "proposal",
        "name",
        "name[like]",
        "blSampleId[gte]",
        "comments[null]",
    } <= params
    assert "session" not in params  # samples hang from proposals, not sessions
    dc = {p["name"] for p in document["paths"]["/datacollections"]["get"]["parameters"]}
    assert {"session", "proposal"} <= dc
    responses = document["paths"]["/samples/{id}"]["patch"]["responses"]
    assert {"200", "400", "401", "403", "404", "409", "412", "413", "415", "422", "503"} <= set(
        responses
    )
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert document["paths"]["/health"]["get"]["security"] == []


def test_swagger_ui_is_served_from_the_package(client):
    page = client.simulate_get(f"{PREFIX}/doc")
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert "https://" not in page.text.split("<body>")[1]  # no CDN
    assert f"{PREFIX}/openapi.json" in page.text
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        r = client.simulate_get(f"{PREFIX}/doc/static/{name}")
        assert r.status_code == 200 and len(r.content) > 10000


def test_docs_can_be_switched_off(settings):
    client = falcon.testing.TestClient(create_app(settings.replace(server_docs=False)))
    assert client.simulate_get(f"{PREFIX}/openapi.json").status_code == 404
    assert client.simulate_get(f"{PREFIX}/doc").status_code == 404


def test_a_site_can_serve_only_some_modules(settings, auth, tmp_path, catalog):
    """Disabled modules answer 404 and vanish from /openapi.json and /schemas; their tables may be absent."""
    from ispyb_falcon.demo.sqlite import create_tables

    url = f"sqlite:///{tmp_path / 'subset.sqlite'}"
    engine = sa.create_engine(url)
    keep = [n for n in catalog.schemas if not n.startswith("AutoProc") and n != "ProcessingJob"]
    create_tables(engine, {n: catalog.schemas[n] for n in keep})
    app = create_app(
        settings.replace(database_url=url, server_modules=("proposals", "people", "reference"))
    )
    c = falcon.testing.TestClient(app)
    token = c.simulate_post(f"{PREFIX}/auth/login", json={"login": "admin1", "password": "x"}).json[
        "token"
    ]
    h = {"Authorization": f"Bearer {token}"}
    assert c.simulate_get(f"{PREFIX}/proposals", headers=h).status_code == 200
    assert c.simulate_get(f"{PREFIX}/autoprocs", headers=h).status_code == 404
    assert c.simulate_get(f"{PREFIX}/samples", headers=h).status_code == 404
    doc = c.simulate_get(f"{PREFIX}/openapi.json").json
    assert (
        "/proposals" in doc["paths"]
        and "/samples" not in doc["paths"]
        and "/autoprocs" not in doc["paths"]
    )
    names = {s["name"] for s in c.simulate_get(f"{PREFIX}/schemas").json["schemas"]}
    assert "Proposal" in names and "BLSample" not in names and "AutoProc" not in names


@pytest.mark.parametrize(
    ("accept", "gzipped"),
    [
        ("gzip, deflate, br", True),
        ("br;q=1.0, gzip;q=0.5", True),
        ("*", True),
        ("gzip;q=0", False),
        ("identity", False),
        (None, False),
    ],
)
def test_openapi_document_is_sent_gzipped_to_clients_that_accept_it(app, accept, gzipped):
    headers = {"Accept-Encoding": accept} if accept else {}
    r = falcon.testing.TestClient(app).simulate_get(f"{PREFIX}/openapi.json", headers=headers)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert "Accept-Encoding" in r.headers["Vary"]
    body = gzip.decompress(r.content) if gzipped else r.content
    assert r.headers.get("Content-Encoding") == ("gzip" if gzipped else None)
    assert json.loads(body)["openapi"] == "3.1.0"


def test_openapi_document_varies_on_origin_and_encoding(app):
    r = falcon.testing.TestClient(app).simulate_get(
        f"{PREFIX}/openapi.json",
        headers={"Origin": "https://ui.example.org", "Accept-Encoding": "gzip"},
    )
    vary = {v.strip().lower() for v in r.headers["Vary"].split(",")}
    assert {"origin", "accept-encoding"} <= vary
    assert r.headers["Access-Control-Allow-Origin"] == "https://ui.example.org"
