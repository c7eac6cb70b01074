"""The API's own description: OpenAPI 3.1, offline Swagger UI, and site-chosen modules."""

from __future__ import annotations

import configparser
import gzip
import json
import socket
import urllib.parse
from pathlib import Path

import falcon.testing
import jsonschema
import pytest
import sqlalchemy as sa
from openapi_spec_validator import validate

from ispyb_falcon.app import create_app
from ispyb_falcon.resources import MODULES

from .conftest import PREFIX
from .servers import app_server


@pytest.fixture(scope="module")
def document(app):
    return falcon.testing.TestClient(app).simulate_get(f"{PREFIX}/openapi.json").json


def references(node) -> set[str]:
    """Every `$ref` in a part of the document."""
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(references(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(references(v) for v in node))
    return set()


def components(document: dict) -> set[str]:
    """Every component but the security schemes (named by `security`, not by `$ref`)."""
    return {
        f"#/components/{kind}/{name}"
        for kind, group in document["components"].items()
        if kind != "securitySchemes"
        for name in group
    }


def parameters(document: dict, operation: dict) -> dict[str, dict]:
    """An operation's parameters by name, those shared by reference looked up."""
    shared = document["components"]["parameters"]
    found = [
        shared[p["$ref"].rsplit("/", 1)[1]] if "$ref" in p else p
        for p in operation.get("parameters", [])
    ]
    return {p["name"]: p for p in found}


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


def test_changes_and_rows_name_columns_without_the_create_rules(document, catalog):
    """A PATCH body and a served row are any subset of the columns: nothing required, and no
    `default` (a generated client would send it, and a change would reset the column)."""
    schemas = document["components"]["schemas"]
    embedded = {"ProposalPatch": set(), "ProposalRow": {"sessions"}}  # a row's ?embed=sessions
    for name in ("ProposalPatch", "ProposalRow"):
        assert "required" not in schemas[name]
        assert (
            set(schemas[name]["properties"])
            == set(catalog.schemas["Proposal"]["properties"]) | embedded[name]
        )
        assert not any("default" in c for c in schemas[name]["properties"].values())
    state = schemas["ProposalPatch"]["properties"]["state"]
    assert state == {"enum": ["Open", "Closed", "Cancelled", None]}


def test_blob_columns_can_be_changed_but_are_not_served_nor_filtered(catalog):
    """No served table has one today; a site's database may (API.md section 1)."""
    from ispyb_falcon.catalog.store import Catalog
    from ispyb_falcon.openapi import build

    schemas = json.loads(json.dumps(catalog.schemas))
    schemas["Protein"]["properties"]["picture"] = {
        "type": ["string", "null"],
        "x-ispyb": {"sqlType": "longblob", "nullable": True, "blob": True},
    }
    routes = [r for declared in MODULES.values() for r in declared]
    doc = build(routes, Catalog(schemas), PREFIX, 100, {})
    components = doc["components"]["schemas"]
    assert "picture" in components["ProteinPatch"]["properties"]
    assert "picture" not in components["ProteinRow"]["properties"]
    listed = parameters(doc, doc["paths"]["/proteins"]["get"])
    assert "picture" not in listed["order_by"]["schema"]["enum"]
    check = jsonschema.Draft202012Validator(listed["filters"]["schema"]).is_valid
    assert check({"name[null]": "true"}) and not check({"picture[null]": "true"})


def test_every_component_has_a_name_of_its_own_and_is_used(document):
    """Generators name classes by `title`: two components with one title lose one of them."""
    schemas = document["components"]["schemas"]
    assert all(s.get("title", name) == name for name, s in schemas.items())
    assert references(document) == components(document)


def test_every_operation_documents_its_client_errors_and_the_licence(document):
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            assert any(code.startswith("4") for code in op["responses"]), (method, path)
    setup = configparser.ConfigParser()
    setup.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    assert document["info"]["license"]["identifier"] == setup["metadata"]["license"]
    # Swagger UI supports only the default dialect, and says so in a red box otherwise.
    assert "jsonSchemaDialect" not in document


def test_list_filters_are_one_parameter_naming_every_column_and_operator(document):
    params = parameters(document, document["paths"]["/samples"]["get"])
    assert {"skip", "limit", "after", "count", "order_by", "order", "fields", "search"} <= set(
        params
    )
    assert "proposal" in params and "session" not in params  # samples hang from proposals
    dc = parameters(document, document["paths"]["/datacollections"]["get"])
    assert {"session", "proposal"} <= set(dc)
    filters = params["filters"]
    assert (filters["in"], filters["style"], filters["explode"]) == ("query", "form", True)
    check = jsonschema.Draft202012Validator(filters["schema"]).is_valid
    assert check(
        {"name": "a,b", "name[like]": "x", "blSampleId[gte]": "3", "comments[null]": "true"}
    )
    assert not check({"comments[null]": "maybe"})
    assert not check({"nosuch": "1"}) and not check({"name[near]": "x"})
    # No operation's parameters grow with its table's columns.
    assert all(
        len(op.get("parameters", [])) < 20
        for ops in document["paths"].values()
        for op in ops.values()
    )


def test_the_documented_filters_are_the_ones_the_server_reads(document, client, auth, catalog):
    filters = parameters(document, document["paths"]["/samples"]["get"])["filters"]
    check = jsonschema.Draft202012Validator(filters["schema"]).is_valid
    keys = [f"{c}[null]" for c in catalog.schemas["BLSample"]["properties"]]
    for key in [*keys, "nosuch", "name[near]", "name[]", "[like]", "name[null]x"]:
        r = client.simulate_get(f"{PREFIX}/samples", params={key: "true"}, headers=auth("admin1"))
        assert (r.status_code == 200) == check({key: "true"}), (key, r.status_code, r.text)


def test_reads_and_writes_document_their_etags(document):
    item = document["paths"]["/samples/{id}"]
    assert {"If-None-Match", "fields"} <= set(parameters(document, item["get"]))
    for method in ("patch", "put", "delete"):
        assert "If-Match" in parameters(document, item[method])
    assert "ETag" in item["get"]["responses"]["200"]["headers"]
    assert "Location" in document["paths"]["/samples"]["post"]["responses"]["201"]["headers"]
    responses = item["patch"]["responses"]
    assert {"200", "400", "401", "403", "404", "409", "412", "413", "415", "422", "503"} <= set(
        responses
    )
    bearer = document["components"]["securitySchemes"]["bearer"]
    assert bearer["scheme"] == "bearer"
    assert "/auth/login" in bearer["description"] and "OpenID Connect" in bearer["description"]
    assert document["paths"]["/health"]["get"]["security"] == []


def test_each_module_has_a_document_and_together_they_are_the_whole(app, document):
    client = falcon.testing.TestClient(app)
    seen: dict = {}
    for module in MODULES:
        r = client.simulate_get(f"{PREFIX}/openapi.json", params={"module": module})
        assert r.status_code == 200
        part = r.json
        validate(part)
        tags = {t for ops in part["paths"].values() for op in ops.values() for t in op["tags"]}
        assert tags == {module, "auth", "meta"}
        assert references(part) == components(part)
        for path, ops in part["paths"].items():
            assert ops == document["paths"][path]
        seen.update(part["paths"])
    assert seen.keys() == document["paths"].keys()
    r = client.simulate_get(f"{PREFIX}/openapi.json", params={"module": "nosuch"})
    assert r.status_code == 404 and "proposals" in r.json["description"]


def test_a_malformed_request_to_health_is_the_documented_4xx(app, settings, document):
    """/health and /schemas document the refusals of the HTTP server itself."""
    refused = {"$ref": "#/components/responses/Refused"}
    assert document["paths"]["/health"]["get"]["responses"]["4XX"] == refused
    with app_server(app, settings) as base:
        url = urllib.parse.urlsplit(base)
        with socket.create_connection((url.hostname, url.port), timeout=10) as s:
            request = f"GET {url.path}/health HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n"
            s.sendall(request.encode())
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split()[1] == b"400"
    error = document["components"]["schemas"]["Error"]
    jsonschema.validate(json.loads(body), error)


def test_swagger_ui_is_served_from_the_package(client):
    page = client.simulate_get(f"{PREFIX}/doc")
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert "https://" not in page.text.split("<body>")[1]  # no CDN
    assert f"{PREFIX}/openapi.json" in page.text
    for module in MODULES:
        assert f'<option value="{module}">' in page.text
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        r = client.simulate_get(f"{PREFIX}/doc/static/{name}")
        assert r.status_code == 200 and len(r.content) > 10000
    assert client.simulate_get(f"{PREFIX}/doc/static/nosuch.js").status_code == 404


@pytest.mark.parametrize(
    ("name", "kind"),
    [("swagger-ui-bundle.js", "text/javascript"), ("swagger-ui.css", "text/css")],
)
def test_swagger_ui_files_are_compressed_and_cacheable(client, name, kind):
    page = client.simulate_get(f"{PREFIX}/doc").text
    (url,) = [u for u in page.split('"') if f"/doc/static/{name}?v=" in u]
    plain = client.simulate_get(url)
    assert plain.headers["Content-Type"].startswith(kind)
    assert plain.headers.get("Content-Encoding") is None
    r = client.simulate_get(url, headers={"Accept-Encoding": "gzip, deflate, br"})
    assert r.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(r.content) == plain.content
    assert len(r.content) < len(plain.content) / 3
    assert "accept-encoding" in r.headers["Vary"].lower()
    assert "max-age=" in r.headers["Cache-Control"] and "public" in r.headers["Cache-Control"]
    etag = r.headers["ETag"]
    assert etag == f'"{url.rsplit("?v=", 1)[1]}-gzip"'  # a new file is a new URL
    assert plain.headers["ETag"] == f'"{url.rsplit("?v=", 1)[1]}"'  # each encoding its tag
    again = client.simulate_get(url, headers={"If-None-Match": etag, "Accept-Encoding": "gzip"})
    assert again.status_code == 304 and again.content == b""
    other = client.simulate_get(url, headers={"If-None-Match": etag})
    assert other.status_code == 200 and other.content == plain.content


def test_docs_can_be_switched_off(settings):
    client = falcon.testing.TestClient(create_app(settings.replace(server_docs=False)))
    assert client.simulate_get(f"{PREFIX}/openapi.json").status_code == 404
    assert client.simulate_get(f"{PREFIX}/doc").status_code == 404
    assert client.simulate_get(f"{PREFIX}/doc/static/swagger-ui.css").status_code == 404


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
    validate(doc)
    assert references(doc) == components(doc)  # nothing left of the modules not served
    assert "BLSample" not in doc["components"]["schemas"]
    names = {s["name"] for s in c.simulate_get(f"{PREFIX}/schemas").json["schemas"]}
    assert "Proposal" in names and "BLSample" not in names and "AutoProc" not in names
    page = c.simulate_get(f"{PREFIX}/doc").text
    assert '<option value="people">' in page and '<option value="shipping">' not in page


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
