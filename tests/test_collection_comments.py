"""Comments on data collections (API.md section 8): `/datacollections/{id}/comments`.

Whoever may see a collection lists its comments and adds some, as their own
author (`personId` is the caller's, set by the server); only the author or an
admin changes and deletes a comment; a caller who cannot see the collection
gets a 404 for everything, as if it did not exist, and changes nothing.

Collections are found by visit through the admin's eyes: mx1001-1's are seen
by pi_anna (PI) and member_ben (member), not by visitor_cara (only on
mx1001-2), pi_eve or user_fred. The demo data has one comment per visit, by
the proposal's PI on the visit's first collection; the tests write on the
visit's last collection, which has none, and every comment they write is
deleted again.
"""

from __future__ import annotations

import falcon.testing
import pytest
import sqlalchemy as sa

from ispyb_falcon.app import create_app, make_tokens
from ispyb_falcon.demo.sqlite import create_demo_database

from .conftest import PREFIX
from .test_security_visibility import MISSING, Demo, bearer, login


@pytest.fixture(scope="module")
def demo(app) -> Demo:
    client = falcon.testing.TestClient(app)
    return Demo(client, login(client, "admin1"))


def collection(demo: Demo, visit: str, order: str) -> int:
    """The first (`asc`) or last (`desc`) data collection of a demo visit."""
    rows = demo.list("/datacollections", session=visit, limit=1, order=order)["results"]
    return rows[0]["dataCollectionId"]


@pytest.fixture(scope="module")
def collections(demo) -> dict[str, int]:
    """The last data collection of a few demo visits: none has a demo comment."""
    return {visit: collection(demo, visit, "desc") for visit in ("mx1001-1", "mx1001-2")}


@pytest.fixture()
def comments(engine):
    """The comments url of a collection; the comments a test writes are removed after it."""
    with engine.connect() as conn:
        first = conn.execute(
            sa.text("SELECT COALESCE(MAX(dataCollectionCommentId), 0) FROM DataCollectionComment")
        ).scalar_one()

    def url(dc: int | str, comment: int | None = None) -> str:
        tail = "" if comment is None else f"/{comment}"
        return f"{PREFIX}/datacollections/{dc}/comments{tail}"

    yield url
    with engine.begin() as conn:
        conn.execute(
            sa.text("DELETE FROM DataCollectionComment WHERE dataCollectionCommentId > :first"),
            {"first": first},
        )


def count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT COUNT(*) FROM DataCollectionComment")).scalar_one()


def post(client, url: str, headers: dict, body) -> falcon.testing.Result:
    return client.simulate_post(url, headers=headers, json=body)


# --- listing and adding --------------------------------------------------------------------------


def test_the_demo_comment_of_a_visit_is_seen_by_who_sees_the_collection(
    client, auth, demo, comments
):
    dc = collection(demo, "mx1001-1", "asc")
    for who in ("pi_anna", "member_ben"):
        r = client.simulate_get(comments(dc), headers=auth(who))
        assert r.status_code == 200, r.text
        assert r.json["total"] == 1
        (row,) = r.json["results"]
        assert row["personId"] == demo.person_id["pi_anna"] and row["dataCollectionId"] == dc
        assert row["comments"].endswith(": sharp spots, collect a full sweep")
    for who in ("visitor_cara", "pi_eve", "user_fred"):
        assert client.simulate_get(comments(dc), headers=auth(who)).status_code == 404


def test_a_member_adds_and_lists_comments_as_their_author(
    client, auth, demo, collections, comments
):
    dc = collections["mx1001-1"]
    ben = auth("member_ben")
    r = client.simulate_get(comments(dc), headers=ben)
    assert r.status_code == 200, r.text
    assert r.json["total"] == 0
    r = post(client, comments(dc), ben, {"comments": "Ice rings from image 300"})
    assert r.status_code == 201, r.text
    row = r.json
    assert row["personId"] == demo.person_id["member_ben"]
    assert row["dataCollectionId"] == dc
    assert row["comments"] == "Ice rings from image 300"
    assert row["createTime"] is not None and row["modTime"] is None
    assert r.headers["location"].endswith(
        f"/datacollections/{dc}/comments/{row['dataCollectionCommentId']}"
    )
    r = post(client, comments(dc), auth("pi_anna"), {"comments": "Agreed: recollect"})
    assert r.status_code == 201, r.text
    anna_comment = r.json["dataCollectionCommentId"]
    for who in ("member_ben", "pi_anna"):
        listed = client.simulate_get(comments(dc), headers=auth(who)).json
        assert listed["total"] == 2
        assert [(c["personId"], c["comments"]) for c in listed["results"]] == [
            (demo.person_id["member_ben"], "Ice rings from image 300"),
            (demo.person_id["pi_anna"], "Agreed: recollect"),
        ]
    r = client.simulate_get(
        comments(dc), headers=ben, params={"personId": demo.person_id["pi_anna"]}
    )
    assert [c["dataCollectionCommentId"] for c in r.json["results"]] == [anna_comment]
    r = client.simulate_get(comments(dc), headers=ben, params={"search": "ICE RINGS"})
    assert [c["dataCollectionCommentId"] for c in r.json["results"]] == [
        row["dataCollectionCommentId"]
    ]
    one = client.simulate_get(comments(dc, row["dataCollectionCommentId"]), headers=ben)
    assert one.status_code == 200 and one.json == row


def test_an_array_adds_every_comment_or_none(client, auth, engine, collections, comments):
    dc = collections["mx1001-1"]
    anna = auth("pi_anna")
    before = count(engine)
    r = post(client, comments(dc), anna, [{"comments": "one"}, {"comments": "x" * 4001}])
    assert r.status_code == 422, r.text
    assert [e["path"] for e in r.json["errors"]] == ["$[1].comments"]
    assert count(engine) == before
    r = post(client, comments(dc), anna, [{"comments": "one"}, {"comments": "two"}])
    assert r.status_code == 201, r.text
    assert [c["comments"] for c in r.json] == ["one", "two"]
    assert count(engine) == before + 2


def test_a_visit_member_comments_only_where_she_sees(client, auth, demo, collections, comments):
    cara = auth("visitor_cara")
    r = post(client, comments(collections["mx1001-2"]), cara, {"comments": "mine"})
    assert r.status_code == 201, r.text
    assert r.json["personId"] == demo.person_id["visitor_cara"]
    other = collections["mx1001-1"]
    assert client.simulate_get(comments(other), headers=cara).status_code == 404
    assert post(client, comments(other), cara, {"comments": "x"}).status_code == 404


def test_comments_on_a_closed_proposal_are_allowed(client, auth, demo, comments):
    """Comments are notes on what was measured, not experiment data: mx1002 is Closed."""
    dc = demo.list("/datacollections", session="mx1002-1", limit=1)["results"][0]
    r = post(client, comments(dc["dataCollectionId"]), auth("pi_anna"), {"comments": "late"})
    assert r.status_code == 201, r.text


# --- the author's body ---------------------------------------------------------------------------


def test_a_body_naming_another_author_is_refused(client, auth, demo, engine, collections, comments):
    dc = collections["mx1001-1"]
    ben = auth("member_ben")
    before = count(engine)
    r = post(
        client, comments(dc), ben, {"comments": "as anna", "personId": demo.person_id["pi_anna"]}
    )
    assert r.status_code == 422, r.text
    assert r.json["errors"] == [
        {
            "path": "$.personId",
            "message": "is set by the server: the row's author (on a new row, you)",
        }
    ]
    assert count(engine) == before
    # naming oneself is only saying what the server sets
    r = post(
        client, comments(dc), ben, {"comments": "as me", "personId": demo.person_id["member_ben"]}
    )
    assert r.status_code == 201, r.text
    assert r.json["personId"] == demo.person_id["member_ben"]


@pytest.mark.parametrize(
    "body, path",
    [
        ({"comments": "x" * 4001}, "$.comments"),
        ({"comments": 12}, "$.comments"),
        ({"comments": "x", "bogus": 1}, "$.bogus"),
        ({"comments": "x", "dataCollectionCommentId": 5}, "$.dataCollectionCommentId"),
        ({"comments": "x", "createTime": "2026-01-01T00:00:00"}, "$.createTime"),
        ({"comments": "x", "modTime": "2026-02-30"}, "$.modTime"),
        ({"comments": "x", "dataCollectionId": MISSING}, "$.dataCollectionId"),
        ("just text", "$"),
    ],
)
def test_bad_bodies_are_a_422_and_write_nothing(
    client, auth, engine, collections, comments, body, path
):
    before = count(engine)
    r = post(client, comments(collections["mx1001-1"]), auth("pi_anna"), body)
    assert r.status_code == 422, r.text
    assert path in [e["path"] for e in r.json["errors"]]
    assert count(engine) == before


def test_malformed_json_is_a_400(client, auth, collections, comments):
    r = client.simulate_post(
        comments(collections["mx1001-1"]),
        headers={**auth("pi_anna"), "Content-Type": "application/json"},
        body="{not json",
    )
    assert r.status_code == 400, r.text


# --- changing and deleting ------------------------------------------------------------------------


def test_the_author_changes_and_deletes_others_get_403(
    client, auth, demo, engine, collections, comments
):
    dc = collections["mx1001-1"]
    ben = auth("member_ben")
    created = post(client, comments(dc), ben, {"comments": "draft"}).json
    url = comments(dc, created["dataCollectionCommentId"])
    r = client.simulate_patch(url, headers=ben, json={"comments": "final"})
    assert r.status_code == 200, r.text
    assert r.json["comments"] == "final" and r.json["personId"] == demo.person_id["member_ben"]
    r = client.simulate_put(url, headers=ben, json={"comments": "final, really"})
    assert r.status_code == 200, r.text
    # pi_anna sees the collection (and is the proposal's PI) but is not the author
    anna = auth("pi_anna")
    for method, body in (("PATCH", {"comments": "hers"}), ("PUT", {"comments": "hers"})):
        r = client.simulate_request(method, url, headers=anna, json=body)
        assert r.status_code == 403, r.text
    assert client.simulate_delete(url, headers=anna).status_code == 403
    assert client.simulate_get(url, headers=ben).json["comments"] == "final, really"
    # the author cannot hand the comment to someone else
    r = client.simulate_patch(url, headers=ben, json={"personId": demo.person_id["pi_anna"]})
    assert r.status_code == 422, r.text
    assert r.json["errors"][0]["path"] == "$.personId"
    before = count(engine)
    assert client.simulate_delete(url, headers=ben).status_code == 204
    assert count(engine) == before - 1
    assert client.simulate_get(url, headers=ben).status_code == 404


def test_an_admin_edits_and_deletes_any_comment_keeping_its_author(
    client, auth, demo, collections, comments
):
    dc = collections["mx1001-1"]
    created = post(client, comments(dc), auth("member_ben"), {"comments": "rude"}).json
    url = comments(dc, created["dataCollectionCommentId"])
    r = client.simulate_patch(url, headers=demo.admin, json={"comments": "(removed)"})
    assert r.status_code == 200, r.text
    assert r.json["personId"] == demo.person_id["member_ben"]
    assert r.json["comments"] == "(removed)"
    assert client.simulate_delete(url, headers=demo.admin).status_code == 204
    # and comments as themselves
    r = post(client, comments(dc), demo.admin, {"comments": "from the facility"})
    assert r.status_code == 201, r.text
    whoami = client.simulate_get(f"{PREFIX}/auth/whoami", headers=demo.admin).json
    assert r.json["personId"] == whoami["personId"]


def test_a_stranger_gets_404_everywhere_and_changes_nothing(
    client, auth, engine, collections, comments
):
    dc = collections["mx1001-1"]
    created = post(client, comments(dc), auth("pi_anna"), {"comments": "private"}).json
    url = comments(dc, created["dataCollectionCommentId"])
    before = count(engine)
    for who in ("user_fred", "pi_eve", "visitor_cara"):
        h = auth(who)
        assert client.simulate_get(comments(dc), headers=h).status_code == 404
        assert client.simulate_get(url, headers=h).status_code == 404
        assert post(client, comments(dc), h, {"comments": "x"}).status_code == 404
        assert client.simulate_patch(url, headers=h, json={"comments": "x"}).status_code == 404
        assert client.simulate_put(url, headers=h, json={"comments": "x"}).status_code == 404
        assert client.simulate_delete(url, headers=h).status_code == 404
    assert count(engine) == before
    assert client.simulate_get(url, headers=auth("pi_anna")).json["comments"] == "private"


def test_a_comment_is_reached_only_below_its_own_collection(client, auth, collections, comments):
    created = post(
        client, comments(collections["mx1001-1"]), auth("pi_anna"), {"comments": "here"}
    ).json
    elsewhere = comments(collections["mx1001-2"], created["dataCollectionCommentId"])
    assert client.simulate_get(elsewhere, headers=auth("pi_anna")).status_code == 404
    r = client.simulate_patch(elsewhere, headers=auth("pi_anna"), json={"comments": "moved"})
    assert r.status_code == 404


def test_a_collection_that_does_not_exist_is_a_404(client, auth, demo, engine, comments):
    before = count(engine)
    for dc in (MISSING, "abc", "-1"):
        url = f"{PREFIX}/datacollections/{dc}/comments"
        assert client.simulate_get(url, headers=demo.admin).status_code == 404
        r = client.simulate_post(url, headers=demo.admin, json={"comments": "x"})
        assert r.status_code == 404, r.text
        assert client.simulate_get(url + "/1", headers=demo.admin).status_code == 404
    assert count(engine) == before


def test_a_login_without_a_person_row_cannot_author(client, settings, collections, comments):
    token, _ = make_tokens(settings).issue("svc-pipeline", ["processing"])
    h = bearer(token)
    dc = collections["mx1001-1"]
    assert client.simulate_get(comments(dc), headers=h).status_code == 200  # sees every row
    r = post(client, comments(dc), h, {"comments": "x"})
    assert r.status_code == 403, r.text
    assert "no Person row" in r.json["description"]


def test_the_openapi_document_describes_the_comment_routes(client):
    paths = client.simulate_get(f"{PREFIX}/openapi.json").json["paths"]
    assert set(paths["/datacollections/{id}/comments"]) == {"get", "post"}
    item = paths["/datacollections/{id}/comments/{key}"]
    assert set(item) == {"get", "patch", "put", "delete"}
    assert item["delete"]["summary"].endswith("delete (its author or an admin)")
    post = paths["/datacollections/{id}/comments"]["post"]
    assert "`personId` is set to the caller" in post["description"]


def test_a_site_without_the_table_serves_everything_else(settings, catalog, tmp_path):
    """A database lacking DataCollectionComment (a site's own SQLite copy here): the
    comment routes are not served (404, listed in /health), the collections are."""
    url = f"sqlite:///{tmp_path / 'no-comments.sqlite'}"
    create_demo_database(url, catalog.schemas, scale=1)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE DataCollectionComment"))
    engine.dispose()
    client = falcon.testing.TestClient(create_app(settings.replace(database_url=url)))
    admin = login(client, "admin1")
    dc = client.simulate_get(f"{PREFIX}/datacollections?limit=1", headers=admin)
    assert dc.status_code == 200, dc.text
    comments = f"{PREFIX}/datacollections/{dc.json['results'][0]['dataCollectionId']}/comments"
    assert client.simulate_get(comments, headers=admin).status_code == 404
    assert client.simulate_post(comments, headers=admin, json={"comments": "x"}).status_code == 404
    health = client.simulate_get(f"{PREFIX}/health").json
    assert health["schema"]["notServed"] == ["/datacollections/{id}/comments"]
