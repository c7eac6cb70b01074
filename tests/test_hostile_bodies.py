"""Bodies no client means well with: every one a JSON 4xx (API.md section 2), never a 500.

Deep nesting, arrays, objects and strings past the budget of README "Request
bodies", keys given twice, text that is not text, and bodies past the size
limit through a real server (waitress), with or without a token.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse

import falcon.testing
import pytest

from ispyb_falcon.app import create_app
from ispyb_falcon.auth.passwords import set_password
from ispyb_falcon.resources import bodies

from .conftest import PREFIX
from .servers import Client, app_server

LOGIN = "/auth/login"


def post(client, path: str, text: str, headers: dict | None = None, method: str = "POST"):
    return client.simulate_request(
        method,
        PREFIX + path,
        body=text,
        headers={**(headers or {}), "Content-Type": "application/json"},
    )


def is_json_error(r, status: int) -> bool:
    """The section 2 body: JSON with a title naming the status and a description."""
    body = r.json
    return (
        r.status_code == status
        and r.headers["Content-Type"].startswith("application/json")
        and body["title"].startswith(f"{status} ")
        and bool(body["description"])
    )


@pytest.fixture()
def admin(auth):
    return auth("admin1")


@pytest.fixture()
def protein_path(client, admin):
    r = client.simulate_get(f"{PREFIX}/proteins", params={"proposal": "mx1001"}, headers=admin)
    return f"/proteins/{r.json['results'][0]['proteinId']}"


def json_routes(protein_path: str) -> list[tuple[str, str, bool]]:
    """(method, path, needs a token) of each kind of route that reads a JSON body."""
    return [
        ("POST", LOGIN, False),
        ("POST", "/proteins", True),
        ("PATCH", protein_path, True),
        ("PUT", protein_path, True),
        ("POST", "/proposals/mx1001/persons", True),
    ]


def test_deep_nesting_is_a_400_on_every_json_route(client, admin, protein_path):
    """`[` x 1000 exhausted the parser's stack: a RecursionError and a 500, even without a token."""
    deep = "[" * 1000 + "]" * 1000
    for method, path, token in json_routes(protein_path):
        r = post(client, path, deep, admin if token else None, method)
        assert is_json_error(r, 400), (method, path, r.status_code, r.text)
        assert f"deeper than {bodies.MAX_DEPTH}" in r.json["description"]


def test_nesting_is_measured_before_parsing_and_brackets_in_strings_do_not_count(client, admin):
    inside = {"login": "[{" * 100, "password": '"]}\\"[' * 100}
    r = post(client, LOGIN, json.dumps(inside))
    assert r.status_code == 200, r.text
    at_limit = "[" * bodies.MAX_DEPTH + "]" * bodies.MAX_DEPTH
    r = post(client, "/proteins", at_limit, admin)
    assert r.status_code == 422, r.text  # parsed: an array of one array is not a protein
    assert bodies.nesting('{"a": [1, {"b": "]]]]"}], "c": {}}') == 3
    assert bodies.nesting('"[[["') == 0


def test_arrays_and_objects_past_the_budget_are_a_422_with_their_path(client, admin):
    many = bodies.MAX_ITEMS + 1
    r = post(client, "/proteins", json.dumps({"proposalId": 1, "name": [0] * many}), admin)
    assert is_json_error(r, 422), r.text
    assert r.json["errors"] == [
        {"path": "$.name", "message": f"more than {bodies.MAX_ITEMS} elements"}
    ]
    r = post(client, LOGIN, json.dumps({f"k{i}": 0 for i in range(many)}))
    assert is_json_error(r, 422), r.text
    assert r.json["errors"] == [{"path": "$", "message": f"more than {bodies.MAX_ITEMS} members"}]
    r = post(client, "/proteins", json.dumps([{"name": "p"}] * many), admin)
    assert is_json_error(r, 422) and [e["path"] for e in r.json["errors"]] == ["$"]


def test_strings_past_the_budget_are_listed_with_their_path():
    """A site may raise the body limit past the string budget; keys are strings too."""
    long = "x" * (bodies.MAX_STRING + 1)
    body = [{"name": long, "ok": "x" * bodies.MAX_STRING}, {long: 1}]
    assert bodies.over_budget(body) == [
        {"path": "$[0].name", "message": f"longer than {bodies.MAX_STRING} characters"},
        {"path": f"$[1].{long}", "message": f"longer than {bodies.MAX_STRING} characters"},
    ]


def test_a_key_given_twice_is_a_400_and_writes_nothing(client, admin, protein_path):
    """The last of two values was taken silently: `{"acronym": "a", "acronym": "b"}` wrote b."""
    before = client.simulate_get(PREFIX + protein_path, headers=admin).json
    r = post(client, protein_path, '{"acronym": "a", "acronym": "b"}', admin, "PATCH")
    assert is_json_error(r, 400), r.text
    assert "'acronym'" in r.json["description"]
    assert client.simulate_get(PREFIX + protein_path, headers=admin).json == before
    r = post(client, "/proteins", '[{"name": "a"}, {"name": "b", "x": 1, "name": "c"}]', admin)
    assert is_json_error(r, 400) and "'name'" in r.json["description"]
    r = post(client, LOGIN, '{"login": "admin1", "password": "x", "login": "pi_anna"}')
    assert is_json_error(r, 400) and "'login'" in r.json["description"]


@pytest.fixture(scope="module")
def password_app(settings, tmp_path_factory):
    """The API with the `file` authenticator only (pi_anna's password is "right")."""
    passwords = tmp_path_factory.mktemp("auth") / "passwords"
    set_password(passwords, "pi_anna", "right", ["user"])
    return create_app(
        settings.replace(
            auth_authenticators=("file",),
            authenticator_options={"file": {"path": str(passwords)}},
        )
    )


@pytest.mark.parametrize("field", ["login", "password"])
def test_half_a_surrogate_pair_in_a_login_is_a_422_not_a_500(password_app, field):
    """`"\\ud800"` is valid JSON but no text: the file authenticator raised UnicodeEncodeError."""
    client = falcon.testing.TestClient(password_app)
    body = {"login": "pi_anna", "password": "right", field: "pi\ud800"}
    r = post(client, LOGIN, json.dumps(body))
    assert is_json_error(r, 422), r.text
    assert [e["path"] for e in r.json["errors"]] == [f"$.{field}"]
    r = post(client, LOGIN, json.dumps({"login": "pi_anna", "password": "right"}))
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def served(app, settings):
    """The session's app under waitress, with the options `serve` gives it."""
    with app_server(app, settings) as base:
        yield base


def oversized(settings) -> bytes:
    return json.dumps({"name": "x" * (2 * settings[("server", "max_body_bytes")])}).encode()


@pytest.mark.parametrize(("path", "login"), [(LOGIN, None), ("/proteins", "admin1")])
def test_a_body_over_the_limit_is_the_apis_json_413_through_waitress(served, settings, path, login):
    """waitress refused it first, with its own text/plain 413."""
    client = Client(served).login(login) if login else Client(served)
    answer = client.call("POST", path, data=oversized(settings))
    assert answer.status == 413, answer.text
    assert answer.headers["Content-Type"].startswith("application/json"), answer.text
    assert answer.json["title"].startswith("413 ")
    assert str(settings[("server", "max_body_bytes")]) in answer.json["description"]


def _raw(served: str, request: bytes) -> tuple[str, str]:
    """(head, body) of the answer to bytes sent as they are."""
    url = urllib.parse.urlsplit(served)
    with socket.create_connection((url.hostname, url.port), timeout=30) as s:
        s.sendall(request)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    head, _, body = reply.decode().partition("\r\n\r\n")
    return head, body


def test_a_body_past_what_waitress_reads_is_a_json_413_from_waitress(served, settings):
    """waitress refuses it from its Content-Length, before the app sees it: JSON too."""
    size = 5 * settings[("server", "max_body_bytes")]
    path = urllib.parse.urlsplit(served).path + LOGIN
    head, body = _raw(
        served,
        f"POST {path} HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
        f"Content-Length: {size}\r\n\r\n".encode(),
    )
    assert head.startswith("HTTP/1.1 413"), head
    assert "Content-Type: application/json" in head
    assert json.loads(body)["title"] == "413 Request Entity Too Large"


def test_a_malformed_request_is_a_json_400_from_waitress(served):
    head, body = _raw(served, b"GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: nope\r\n\r\n")
    assert head.startswith("HTTP/1.1 400"), head
    assert "Content-Type: application/json" in head
    assert json.loads(body)["title"] == "400 Bad Request"


def test_a_chunked_body_over_the_limit_is_a_json_413_too(served, settings):
    """Without a Content-Length the app stops reading at the limit."""
    url = urllib.parse.urlsplit(served)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    body = oversized(settings)
    chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
    connection.request(
        "POST",
        url.path + LOGIN,
        body=chunks,
        headers={"Content-Type": "application/json"},
        encode_chunked=True,
    )
    response = connection.getresponse()
    assert response.status == 413
    assert response.getheader("Content-Type").startswith("application/json")
    assert json.loads(response.read())["title"].startswith("413 ")
    connection.close()
