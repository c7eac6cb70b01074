"""Signed links (API.md section 9): `POST /auth/sign`, then the file without a token.

A link is good for one path, its signer and until `exp`; what it shows is what
its signer may see when it is used. The last test loads a signed snapshot and
thumbnail in headless Chromium from a page of another origin, as a web UI would.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import tempfile
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from ispyb_falcon.app import make_tokens
from ispyb_falcon.auth.principal import Principal
from ispyb_falcon.files.links import MAX_PATHS, Links, link_key

from .conftest import PREFIX
from .servers import app_server
from .test_doc_browser import CHROMIUM, Browser


def url(path: str) -> str:
    return PREFIX + path


def rows(client, headers, path: str, **params) -> list[dict]:
    r = client.simulate_get(url(path), params={"limit": "1000", **params}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json["results"]


@pytest.fixture()
def admin(auth):
    return auth("admin1")


def first_collection(client, admin, visit: str) -> int:
    found = rows(client, admin, "/datacollections", session=visit, order_by="dataCollectionId")
    return found[0]["dataCollectionId"]


@pytest.fixture()
def snapshot(client, admin) -> str:
    """The path of the first snapshot of mx1001-1 (pi_anna's)."""
    return f"/datacollections/{first_collection(client, admin, 'mx1001-1')}/snapshots/1"


def sign(client, headers, *paths):
    return client.simulate_post(url("/auth/sign"), json={"paths": list(paths)}, headers=headers)


def signed(client, headers, *paths) -> list[str]:
    r = sign(client, headers, *paths)
    assert r.status_code == 200, r.text
    return r.json["urls"]


def get(client, link: str, headers: dict | None = None):
    """GET a URL as the sign answer gives it (path?sig=...&exp=...), without a token."""
    path, _, query = link.partition("?")
    return client.simulate_get(path, query_string=query, headers=headers or {})


def parts(link: str) -> tuple[str, dict[str, str]]:
    split = urlsplit(link)
    return split.path, {k: v[0] for k, v in parse_qs(split.query).items()}


def with_params(path: str, params: dict[str, str]) -> str:
    return path + "?" + "&".join(f"{k}={v}" for k, v in params.items())


def test_a_signed_link_sends_the_file_without_a_token(client, auth, snapshot):
    anna = auth("pi_anna")
    by_token = client.simulate_get(url(snapshot), headers=anna)
    assert by_token.status_code == 200
    before = time.time()
    r = sign(client, anna, snapshot, url(snapshot) + "")  # below the prefix, or with it
    assert r.status_code == 200
    first, second = r.json["urls"]
    assert first == second and first.startswith(url(snapshot) + "?sig=")
    path, params = parts(first)
    assert set(params) == {"sig", "exp"}
    assert before < int(params["exp"]) <= time.time() + 5 * 60  # [files] link_minutes = 5
    assert r.json["expiresAt"].endswith("Z")
    r = get(client, first)
    assert r.status_code == 200 and r.content == by_token.content
    assert r.headers["content-type"] == "image/png"
    r = get(client, first, {"Range": "bytes=0-7"})
    assert r.status_code == 206 and r.content == by_token.content[:8]
    r = get(client, first + "&download=1")
    assert r.headers["content-disposition"].startswith("attachment; filename=")


def test_a_link_works_for_its_own_path_only(client, auth, admin, snapshot):
    anna = auth("pi_anna")
    other = f"/datacollections/{first_collection(client, admin, 'mx1001-3')}/snapshots/1"
    assert client.simulate_get(url(other), headers=anna).status_code == 200
    _, params = parts(signed(client, anna, snapshot)[0])
    for path in (other, snapshot.replace("/snapshots/1", "/snapshots/2")):
        r = client.simulate_get(url(path), params=params)
        assert r.status_code == 401 and "does not match" in r.json["description"]
        assert r.headers["www-authenticate"].startswith("Bearer")
    # Nor for a list, an item or anything that is not a file route: a token is needed there.
    for path in ("/datacollections", snapshot.rsplit("/snapshots", 1)[0], "/auth/whoami"):
        r = client.simulate_get(url(path), params=params)
        assert r.status_code == 401 and r.headers["content-type"] == "application/json", path


def test_a_tampered_or_expired_link_is_a_401(client, auth, snapshot, settings):
    link = signed(client, auth("pi_anna"), snapshot)[0]
    path, params = parts(link)
    who, mac = params["sig"].split(".")
    login, roles, limit = json.loads(base64.urlsafe_b64decode(who + "=" * (-len(who) % 4)))
    assert login == "pi_anna"
    forged = base64.urlsafe_b64encode(json.dumps(["admin1", ["admin"], None]).encode())
    tampered = {
        "mac": {**params, "sig": f"{who}.{mac[:-2]}{'AA' if mac[-2:] != 'AA' else 'BB'}"},
        "login": {**params, "sig": f"{forged.decode().rstrip('=')}.{mac}"},
        "exp": {**params, "exp": str(int(params["exp"]) + 3600)},
        "no exp": {"sig": params["sig"]},
        "exp not a number": {**params, "exp": "soon"},
        "exp of other digits": {**params, "exp": "\u00b2" * 10},
        "exp past 64 bits": {**params, "exp": "9" * 5000},
        "no mac": {**params, "sig": who},
        "two sigs": None,
    }
    for name, query in tampered.items():
        if query is None:
            r = client.simulate_get(path, query_string=f"sig=a&sig=b&exp={params['exp']}")
        else:
            r = client.simulate_get(path, params=query)
        assert r.status_code == 401, name
        assert r.headers["content-type"] == "application/json" and r.json["title"].startswith("401")
    # A link signed with the server's own key an hour ago: the signature holds, the time not.
    links = Links(link_key(make_tokens(settings)), PREFIX, 5, principals=None, templates=[])
    old, exp = links.sign(snapshot, Principal("pi_anna", frozenset({"user"})), time.time() - 3600)
    assert exp < time.time()
    r = get(client, old)
    assert r.status_code == 401 and "expired" in r.json["description"]


def test_a_bearer_token_wins_over_a_bad_signature(client, auth, snapshot):
    anna = auth("pi_anna")
    r = client.simulate_get(url(snapshot), params={"sig": "x.y", "exp": "1"}, headers=anna)
    assert r.status_code == 200


def test_a_link_shows_only_what_its_signer_may_see_when_it_is_used(client, auth, admin, engine):
    other = f"/datacollections/{first_collection(client, admin, 'mx1001-1')}/snapshots/1"
    for login in ("pi_eve", "user_fred"):  # signing is allowed; the file stays hidden
        r = get(client, signed(client, auth(login), other)[0])
        assert r.status_code == 404 and r.json["description"] == "No such resource.", login
    # A manager sees every proposal by role: the link carries the role.
    assert get(client, signed(client, auth("manager1"), other)[0]).status_code == 200
    # visitor_cara sees mx1001-2 as a Session_has_Person of it: removed, her link shows nothing.
    visit = f"/datacollections/{first_collection(client, admin, 'mx1001-2')}/snapshots/1"
    link = signed(client, auth("visitor_cara"), visit)[0]
    assert get(client, link).status_code == 200
    shp = sa.Table("Session_has_Person", sa.MetaData(), autoload_with=engine)
    person = sa.Table("Person", sa.MetaData(), autoload_with=engine)
    with engine.begin() as conn:
        cara = conn.execute(
            sa.select(person.c.personId).where(person.c.login == "visitor_cara")
        ).scalar_one()
        kept = [
            dict(r) for r in conn.execute(shp.select().where(shp.c.personId == cara)).mappings()
        ]
        conn.execute(shp.delete().where(shp.c.personId == cara))
    try:
        r = get(client, link)
        assert r.status_code == 404 and r.json["description"] == "No such resource."
    finally:
        with engine.begin() as conn:
            conn.execute(shp.insert(), kept)
    assert get(client, link).status_code == 200


def test_only_file_routes_are_signed_and_the_body_is_checked(client, auth, snapshot):
    anna = auth("pi_anna")
    r = sign(client, anna, snapshot, "/datacollections", "/datacollections/1", "/etc/passwd",
             "/datacollections/1/snapshots/9", snapshot + "?x=1", f"/v0{snapshot}")  # fmt: skip
    assert r.status_code == 422
    assert [e["path"] for e in r.json["errors"]] == [f"$.paths[{i}]" for i in range(1, 7)]
    assert "only files are signed" in r.json["errors"][0]["message"]
    for body in ({"paths": []}, {"paths": [snapshot] * (MAX_PATHS + 1)}, {"paths": snapshot},
                 {"paths": [snapshot], "more": 1}, [snapshot], {"paths": [3]}):  # fmt: skip
        r = client.simulate_post(url("/auth/sign"), json=body, headers=anna)
        assert r.status_code == 422, body
        assert r.json["errors"], body
    assert len(signed(client, anna, *[snapshot] * MAX_PATHS)) == MAX_PATHS
    r = client.simulate_post(url("/auth/sign"), json={"paths": [snapshot]})
    assert r.status_code == 401
    r = client.simulate_post(url("/auth/sign"), body="paths", headers=anna)
    assert r.status_code == 415
    r = client.simulate_get(url("/auth/sign"), headers=anna)
    assert r.status_code == 405


# --- in a browser ------------------------------------------------------------------------------

PAGE = """<!DOCTYPE html><html><body>
<img id="snapshot" src="{snapshot}"><img id="thumbnail" src="{thumbnail}">
<img id="forged" src="{forged}"></body></html>"""
LOADED = """new Promise(r => setTimeout(r, 50)).then(() => Array.from(document.images).map(
  i => [i.id, i.complete, i.naturalWidth, i.naturalHeight]))"""


@pytest.mark.skipif(
    not CHROMIUM and not os.environ.get("ISPYB_FALCON_TEST_REQUIRE_CHROMIUM"),
    reason="chromium is not installed",
)
def test_a_page_of_another_origin_shows_signed_images(app, settings, client, auth, admin, snapshot):
    assert CHROMIUM, "ISPYB_FALCON_TEST_REQUIRE_CHROMIUM is set but chromium is missing"
    image = rows(client, admin, "/images", session="mx1001-1")[0]
    anna = auth("pi_anna")
    with app_server(app, settings) as base, tempfile.TemporaryDirectory() as profile:
        origin = base[: -len(PREFIX)]
        snap, thumb = signed(client, anna, snapshot, f"/images/{image['imageId']}/thumbnail")
        forged = snap.replace("sig=", "sig=x")
        page = PAGE.format(snapshot=origin + snap, thumbnail=origin + thumb, forged=origin + forged)

        class Page(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the name http.server calls
                body = page.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        browser = Browser(profile)
        try:
            browser.visit(f"http://127.0.0.1:{server.server_address[1]}/page.html")
            deadline = time.monotonic() + 30
            while True:
                state = {i[0]: i[1:] for i in browser.evaluate(LOADED) or []}
                if state and all(done for done, _, _ in state.values()):
                    break
                assert time.monotonic() < deadline, state
                time.sleep(0.1)
        finally:
            browser.close()
            server.shutdown()
            thread.join(10)
    assert state["snapshot"] == [True, 160, 120]  # the demo snapshot, decoded by the browser
    assert state["thumbnail"] == [True, 64, 64]  # the demo thumbnail (a JPEG)
    assert state["forged"][1] == 0  # a forged signature loads nothing
