"""Paging a list (API.md section 5): `next` cursors, `?after=`, `?count=`, `Link` headers.

Walking a list page by page through its cursors must give exactly the rows of
one big page, in the same order, whatever the sort column (NULLs and ties
included), and never a row the caller may not see.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from .conftest import PREFIX

# (route, filter, order_by, order): nullable columns, ties, dates, text, composite keys.
WALKS = [
    ("/datacollections", {"proposal": "mx1001"}, None, "asc"),
    ("/datacollections", {"proposal": "mx1001"}, None, "desc"),
    ("/datacollections", {"proposal": "mx1001"}, "comments", "asc"),
    ("/datacollections", {"proposal": "mx1001"}, "comments", "desc"),
    ("/datacollections", {"proposal": "mx1001"}, "startTime", "desc"),
    ("/datacollections", {"proposal": "mx1001"}, "runStatus", "asc"),
    ("/samples", {"proposal": "mx1001"}, "name", "desc"),
    ("/sessions", {"proposal": "mx1001"}, "endDate", "asc"),
    ("/imagequalityindicators", {"proposal": "mx1001"}, "spotTotal", "desc"),
    ("/imagequalityindicators", {"proposal": "mx1001"}, None, "desc"),
    ("/proteins", {}, "acronym", "asc"),
]


def _get(client, headers, path, **params):
    return client.simulate_get(PREFIX + path, params=params, headers=headers)


def _walk(client, headers, path, params, size) -> tuple[list[dict], int]:
    """Every row, following `next`; and the number of pages."""
    rows, after, pages = [], None, 0
    while True:
        page = dict(params, limit=str(size), **({"after": after} if after else {}))
        r = _get(client, headers, path, **page)
        assert r.status_code == 200, r.text
        pages += 1
        rows += r.json["results"]
        after = r.json["next"]
        if after is None:
            return rows, pages
        assert len(r.json["results"]) == size
        assert pages < 500, "the cursor does not advance"


@pytest.mark.parametrize("path,scope,order_by,order", WALKS)
def test_walking_the_cursors_gives_the_rows_of_one_page(client, auth, path, scope, order_by, order):
    h = auth("admin1")
    params = dict(scope, order=order, **({"order_by": order_by} if order_by else {}))
    whole = _get(client, h, path, limit="1000", **params).json
    assert whole["next"] is None and whole["total"] == len(whole["results"]) >= 3
    walked, pages = _walk(client, h, path, params, 2)
    assert walked == whole["results"]
    assert pages == (whole["total"] + 1) // 2


def test_a_page_of_exactly_the_remaining_rows_has_no_next(client, auth):
    h = auth("admin1")
    total = _get(client, h, "/datacollections", proposal="mx1001").json["total"]
    r = _get(client, h, "/datacollections", proposal="mx1001", limit=str(total))
    assert len(r.json["results"]) == total and r.json["next"] is None
    r = _get(client, h, "/datacollections", proposal="mx1001", limit=str(total - 1))
    assert r.json["next"] is not None


def test_the_cursor_works_with_fields_that_omit_the_sort_columns(client, auth):
    h = auth("admin1")
    params = {"proposal": "mx1001", "order_by": "startTime", "fields": "imagePrefix"}
    whole = _get(client, h, "/datacollections", limit="1000", **params).json["results"]
    walked, _ = _walk(client, h, "/datacollections", params, 3)
    assert walked == whole and set(walked[0]) == {"imagePrefix"}


def test_skip_pages_carry_a_cursor_to_the_rest(client, auth):
    h = auth("admin1")
    params = {"proposal": "mx1001"}
    whole = _get(client, h, "/datacollections", limit="1000", **params).json["results"]
    first = _get(client, h, "/datacollections", skip="2", limit="2", **params).json
    rest, _ = _walk(client, h, "/datacollections", dict(params, after=first["next"]), 1000)
    assert first["results"] + rest == whole[2:]


def test_a_cursor_reaches_only_rows_the_caller_may_see(client, auth):
    """A cursor positions a page; it never widens what the caller sees."""
    admin_page = _get(client, auth("admin1"), "/datacollections", limit="1").json
    mine = _get(client, auth("pi_anna"), "/datacollections", limit="1000").json
    theirs = _get(
        client, auth("pi_anna"), "/datacollections", limit="1000", after=admin_page["next"]
    ).json
    first = admin_page["results"][0]["dataCollectionId"]
    expected = [r for r in mine["results"] if r["dataCollectionId"] > first]
    assert theirs["results"] == expected
    assert theirs["total"] == mine["total"]


@pytest.mark.parametrize(
    "params,other",
    [
        ({"proposal": "mx1001"}, {"proposal": "mx1002"}),
        ({"proposal": "mx1001"}, {"proposal": "mx1001", "order": "desc"}),
        ({"proposal": "mx1001"}, {"proposal": "mx1001", "order_by": "startTime"}),
        ({"proposal": "mx1001"}, {"proposal": "mx1001", "runStatus[null]": "false"}),
    ],
)
def test_a_cursor_from_another_query_is_a_400(client, auth, params, other):
    h = auth("admin1")
    cursor = _get(client, h, "/datacollections", limit="1", **params).json["next"]
    assert cursor
    r = _get(client, h, "/datacollections", after=cursor, **other)
    assert r.status_code == 400, r.text
    assert r.json["parameter"] == "after"
    assert "another query" in r.json["description"]


def test_a_cursor_of_another_table_is_a_400(client, auth):
    h = auth("admin1")
    cursor = _get(client, h, "/datacollections", limit="1").json["next"]
    assert _get(client, h, "/samples", after=cursor).status_code == 400


@pytest.mark.parametrize("cursor", ["x", "", "e30", "!!!", "eyJxIjoxfQ", "W10"])
def test_a_cursor_that_is_not_one_is_a_400(client, auth, cursor):
    r = _get(client, auth("admin1"), "/datacollections", after=cursor)
    assert r.status_code == 400, r.text


def test_skip_and_after_together_are_a_400(client, auth):
    h = auth("admin1")
    cursor = _get(client, h, "/datacollections", limit="1").json["next"]
    r = _get(client, h, "/datacollections", after=cursor, skip="1")
    assert r.status_code == 400 and "skip or after" in r.json["description"]


def test_count_none_planned_and_exact(client, auth):
    h = auth("admin1")
    exact = _get(client, h, "/datacollections", proposal="mx1001").json
    none = _get(client, h, "/datacollections", proposal="mx1001", count="none").json
    planned = _get(client, h, "/datacollections", proposal="mx1001", count="planned").json
    assert none["total"] is None and none["results"] == exact["results"]
    assert none["next"] == exact["next"]
    assert isinstance(planned["total"], int) and planned["total"] >= 0
    assert planned["results"] == exact["results"]
    r = _get(client, h, "/datacollections", count="some")
    assert r.status_code == 400 and r.json["parameter"] == "count"


def _links(r) -> dict[str, str]:
    found = {}
    for part in r.headers["Link"].split(","):
        m = re.match(r'\s*<([^>]*)>;\s*rel="(\w+)"', part)
        assert m, r.headers["Link"]
        found[m.group(2)] = m.group(1)
    return found


def test_link_headers_lead_to_the_first_next_and_previous_pages(client, auth):
    h = auth("admin1")
    r = _get(client, h, "/datacollections", proposal="mx1001", skip="4", limit="2")
    links = _links(r)
    assert set(links) == {"first", "next", "prev"}
    for rel, expected in (("first", {"limit": ["2"]}), ("prev", {"skip": ["2"], "limit": ["2"]})):
        u = urlsplit(links[rel])
        assert u.path == PREFIX + "/datacollections"
        assert parse_qs(u.query) == {"proposal": ["mx1001"], **expected}
    nxt = urlsplit(links["next"])
    assert parse_qs(nxt.query)["after"] == [r.json["next"]]
    followed = client.simulate_get(nxt.path, query_string=nxt.query, headers=h)
    whole = _get(client, h, "/datacollections", proposal="mx1001", limit="1000").json["results"]
    assert followed.json["results"] == whole[6:8]
    last = _get(client, h, "/datacollections", proposal="mx1001", limit="1000")
    assert set(_links(last)) == {"first"}


@pytest.mark.parametrize(
    "login,params",
    [
        ("admin1", {"proposal": "mx1001"}),  # counted by the page statement (a window count)
        ("pi_anna", {}),  # a restricted caller: likewise
        ("admin1", {}),  # every row of the table: a separate count
    ],
)
def test_the_total_is_the_same_on_every_page_and_past_the_end(client, auth, login, params):
    h = auth(login)
    whole = _get(client, h, "/datacollections", limit="1000", **params).json
    total = whole["total"]
    assert total == len(whole["results"]) > 0
    for skip in (0, 1, total - 1, total, total + 5):
        page = _get(client, h, "/datacollections", skip=str(skip), limit="3", **params).json
        assert page["total"] == total, skip
        assert page["results"] == whole["results"][skip : skip + 3]
