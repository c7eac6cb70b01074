"""Reading every served resource over HTTP (API.md sections 1, 2, 5 and 6).

The first half walks every route declared in `ispyb_falcon.resources.MODULES`:
list envelope, item by id, 404, `fields=`, ETag / If-None-Match, CSV and
NDJSON exports, CORS. The second half reads a few representative resources
in depth: filters and their operators, ordering, paging, search, the
`?proposal=` / `?session=` convenience filters, names in paths and the
serialization formats of section 1.

Expectations are scoped to the demo data (mx1001 and its visits), so the
same tests hold on the SQLite demo file and on a MariaDB that also holds the
official ISPyB test data. Nothing here writes.
"""

from __future__ import annotations

import csv
import io
import json
import re

import falcon.testing
import pytest

from ispyb_falcon.resources import MODULES

from .conftest import PREFIX

ADMIN = "admin1"
ORIGIN = "https://ui.example.org"
MISSING = "999999999"
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")

ROUTES = [r for routes in MODULES.values() for r in routes if r.path]
TOP = [r for r in ROUTES if not r.nested]
ITEMS = [r for r in TOP if r.item]
NESTED = {"/proposals/{id}/persons": "mx1001", "/sessions/{id}/persons": "mx1001-2"}
COMMENTED = "/datacollections/{id}/comments"  # below the first collection of mx1001-1
ATTACHED = "/datacollections/{id}/attachments"  # every demo collection has its log


@pytest.fixture(autouse=True, scope="module")
def commented_collection(app):
    """A data collection has no name: the id of mx1001-1's first one (which holds the
    visit's demo comment) is looked up on the database the suite runs on."""
    client = falcon.testing.TestClient(app)
    r = client.simulate_post(f"{PREFIX}/auth/login", json={"login": ADMIN, "password": "demo"})
    headers = {"Authorization": f"Bearer {r.json['token']}"}
    r = client.simulate_get(
        f"{PREFIX}/datacollections", params={"session": "mx1001-1", "limit": 1}, headers=headers
    )
    NESTED[COMMENTED] = NESTED[ATTACHED] = str(r.json["results"][0]["dataCollectionId"])
    yield
    del NESTED[COMMENTED], NESTED[ATTACHED]


# Reference data hangs from no proposal: `?proposal=` is a 400 there.
UNSCOPED = {
    "/beamlinesetups": {"synchrotronName": "Diamond"},
    "/detectors": {"detectorManufacturer": "Dectris"},
}


def ids(route) -> str:
    return route.path


def url(path: str) -> str:
    return PREFIX + path


def concrete(route) -> str:
    """The route's collection path with `{id}` filled with a demo proposal or visit."""
    return route.path.replace("{id}", NESTED.get(route.path, ""))


def narrow(route) -> dict[str, str]:
    """A filter that scopes a list to demo rows (mx1001), whatever else the database holds."""
    if route.nested:
        return {}
    return dict(UNSCOPED.get(route.path, {"proposal": "mx1001"}))


def key_of(catalog, route) -> str:
    if route.nested:
        return route.nested.key
    return catalog[route.table].primary_key[0]


@pytest.fixture()
def admin(auth):
    return auth(ADMIN)


@pytest.fixture()
def get(client, admin):
    """get(path, **params) as admin1, with extra headers through `headers=`."""

    def call(path: str, headers: dict | None = None, **params):
        return client.simulate_get(url(path), params=params, headers={**admin, **(headers or {})})

    return call


def listed(get, path: str, **params) -> dict:
    r = get(path, **params)
    assert r.status_code == 200, (path, params, r.text)
    return r.json


def every(get, path: str, **params) -> list[dict]:
    """All matching rows in one page (the demo scope is far below max_limit)."""
    body = listed(get, path, limit="1000", **params)
    assert body["total"] == len(body["results"])
    return body["results"]


def person_id(get, login: str) -> int:
    (row,) = every(get, "/persons", login=login)
    return row["personId"]


# --- every route: the list, the item, exports ------------------------------------------------


@pytest.mark.parametrize("route", ROUTES, ids=ids)
def test_list_answers_the_envelope_with_default_paging(get, route):
    body = listed(get, concrete(route))
    assert set(body) == {"total", "skip", "limit", "next", "results"}
    assert body["skip"] == 0 and body["limit"] == 25
    assert (body["next"] is None) == (body["total"] <= 25)
    assert isinstance(body["results"], list) and body["results"]
    assert body["total"] >= len(body["results"])
    assert len(body["results"]) == min(body["total"], 25)


@pytest.mark.parametrize("route", ROUTES, ids=ids)
def test_list_rows_carry_the_table_columns_without_blobs(get, catalog, route):
    schema = catalog[route.table]
    row = listed(get, concrete(route))["results"][0]
    assert set(row) == set(schema.columns) - set(schema.blobs)


@pytest.mark.parametrize("route", ITEMS + [r for r in ROUTES if r.nested], ids=ids)
def test_item_by_the_id_taken_from_the_list_is_that_row(get, catalog, route):
    base = concrete(route)
    first = listed(get, base)["results"][0]
    r = get(f"{base}/{first[key_of(catalog, route)]}")
    assert r.status_code == 200, r.text
    assert r.json == first


@pytest.mark.parametrize("route", ITEMS + [r for r in ROUTES if r.nested], ids=ids)
def test_missing_id_is_a_json_404(get, route):
    r = get(f"{concrete(route)}/{MISSING}")
    assert r.status_code == 404
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json["title"] == "404 Not Found"


@pytest.mark.parametrize("route", ITEMS, ids=ids)
def test_id_that_is_no_number_or_name_is_a_404(get, route):
    r = get(f"{route.path}/not-an-id")
    assert r.status_code == 404


def test_image_quality_indicators_have_no_item_route(get):
    assert listed(get, "/imagequalityindicators")["total"] > 0
    r = get("/imagequalityindicators/1")
    assert r.status_code in (404, 405)


@pytest.mark.parametrize("route", ROUTES, ids=ids)
def test_fields_returns_only_the_named_columns(get, catalog, route):
    key = key_of(catalog, route)
    other = next(c for c in listed(get, concrete(route))["results"][0] if c != key)
    body = listed(get, concrete(route), fields=f"{other},{key}")
    assert body["results"]
    assert all(list(row) == [other, key] for row in body["results"])


@pytest.mark.parametrize("route", ITEMS + [r for r in ROUTES if r.nested], ids=ids)
def test_fields_on_an_item(get, catalog, route):
    key = key_of(catalog, route)
    first = listed(get, concrete(route))["results"][0]
    other = next(c for c in first if c != key)
    r = get(f"{concrete(route)}/{first[key]}", fields=f"{key},{other}")
    assert r.status_code == 200
    assert r.json == {key: first[key], other: first[other]}


@pytest.mark.parametrize("route", ROUTES, ids=ids)
def test_fields_naming_an_unknown_column_is_a_400(get, route):
    r = get(concrete(route), fields="noSuchColumn")
    assert r.status_code == 400
    assert r.json["parameter"] == "fields"


@pytest.mark.parametrize("route", ROUTES, ids=ids)
def test_list_etag_and_if_none_match_gives_304(get, route):
    r = get(concrete(route))
    etag = r.headers["ETag"]
    assert etag
    again = get(concrete(route), headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.text == ""
    other = get(concrete(route), headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.json == r.json


@pytest.mark.parametrize("route", ROUTES, ids=ids)
def test_list_etag_follows_the_content(get, route):
    one = get(concrete(route), limit="1")
    two = get(concrete(route), limit="2")
    if two.json["total"] >= 2:
        assert one.headers["ETag"] != two.headers["ETag"]
    assert get(concrete(route), limit="1").headers["ETag"] == one.headers["ETag"]


@pytest.mark.parametrize("route", ITEMS + [r for r in ROUTES if r.nested], ids=ids)
def test_item_etag_and_if_none_match_gives_304(get, catalog, route):
    first = listed(get, concrete(route))["results"][0]
    path = f"{concrete(route)}/{first[key_of(catalog, route)]}"
    r = get(path)
    etag = r.headers["ETag"]
    again = get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.text == ""
    other = get(path, headers={"If-None-Match": '"not-this-one"'})
    assert other.status_code == 200


@pytest.mark.parametrize("route", ROUTES, ids=ids)
def test_csv_export_has_a_header_and_one_line_per_row(get, route):
    params = narrow(route)
    rows = every(get, concrete(route), **params)
    r = get(concrete(route), headers={"Accept": "text/csv"}, **params)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(r.text)))
    assert lines[0] == list(rows[0])
    assert len(lines) - 1 == len(rows)
    expected = [["" if v is None else str(v) for v in row.values()] for row in rows]
    assert lines[1:] == expected


@pytest.mark.parametrize("route", ROUTES, ids=ids)
def test_ndjson_export_streams_every_matching_row_in_order(get, route):
    params = narrow(route)
    rows = every(get, concrete(route), **params)
    r = get(concrete(route), headers={"Accept": "application/x-ndjson"}, **params)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/x-ndjson")
    assert [json.loads(line) for line in r.text.splitlines()] == rows


def test_exports_are_not_capped_by_the_default_limit(get):
    total = listed(get, "/images", proposal="mx1001")["total"]
    assert total > 25
    r = get("/images", headers={"Accept": "application/x-ndjson"}, proposal="mx1001")
    assert len(r.text.splitlines()) == total
    r = get("/images", headers={"Accept": "text/csv"}, proposal="mx1001")
    assert len(list(csv.reader(io.StringIO(r.text)))) == total + 1


def test_exports_honour_fields_and_order(get):
    r = get(
        "/samples",
        headers={"Accept": "text/csv"},
        proposal="mx1001",
        fields="name,location",
        order_by="name",
        order="desc",
    )
    lines = list(csv.reader(io.StringIO(r.text)))
    assert lines[0] == ["name", "location"]
    names = [line[0] for line in lines[1:]]
    assert len(names) == 16
    assert names == sorted(names, reverse=True)


# --- CORS -----------------------------------------------------------------------------------


def vary(r) -> list[str]:
    return [v.strip().lower() for v in r.headers.get("Vary", "").split(",")]


@pytest.mark.parametrize("route", ROUTES, ids=ids)
def test_cors_preflight_allows_the_configured_origin(client, route):
    r = client.simulate_options(
        url(concrete(route)),
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"},
    )
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_cors_preflight_ignores_other_origins(client):
    r = client.simulate_options(
        url("/samples"),
        headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "GET"},
    )
    assert "Access-Control-Allow-Origin" not in r.headers


@pytest.mark.parametrize("route", ROUTES, ids=ids)
def test_cors_headers_on_a_401(client, route):
    r = client.simulate_get(url(concrete(route)), headers={"Origin": ORIGIN})
    assert r.status_code == 401
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "origin" in vary(r)


@pytest.mark.parametrize("route", ROUTES, ids=ids)
def test_cors_headers_on_a_404(client, admin, route):
    r = client.simulate_get(
        url(f"{concrete(route)}/{MISSING}"), headers={**admin, "Origin": ORIGIN}
    )
    assert r.status_code == 404
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "origin" in vary(r)


@pytest.mark.parametrize("route", ROUTES, ids=ids)
def test_cors_headers_on_a_422(client, admin, route):
    r = client.simulate_post(url(concrete(route)), json=[], headers={**admin, "Origin": ORIGIN})
    assert r.status_code == 422
    assert r.json["errors"] == [{"path": "$", "message": "0 objects"}]
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "origin" in vary(r)


# --- nested routes --------------------------------------------------------------------------


def test_proposal_members_list_names_member_ben(get):
    ben = person_id(get, "member_ben")
    body = listed(get, "/proposals/mx1001/persons")
    assert body["total"] == 1
    (row,) = body["results"]
    assert row["personId"] == ben and row["role"] == "Co-Investigator"
    proposal = listed(get, "/proposals", proposalCode="mx", proposalNumber="1001")["results"][0]
    assert row["proposalId"] == proposal["proposalId"]


def test_proposal_members_by_id_and_by_name_agree(get):
    proposal = get("/proposals/mx1001").json
    by_name = listed(get, "/proposals/mx1001/persons")
    by_id = listed(get, f"/proposals/{proposal['proposalId']}/persons")
    assert by_id == by_name


def test_proposal_member_item_is_the_membership(get):
    ben = person_id(get, "member_ben")
    r = get(f"/proposals/mx1001/persons/{ben}")
    assert r.status_code == 200
    assert r.json["personId"] == ben and r.json["role"] == "Co-Investigator"


def test_proposal_member_who_is_no_member_is_a_404(get):
    cara = person_id(get, "visitor_cara")
    assert get(f"/proposals/mx1001/persons/{cara}").status_code == 404
    assert get("/proposals/mx1001/persons/ben").status_code == 404


def test_members_of_a_missing_proposal_are_a_404(get):
    assert get("/proposals/mx999999/persons").status_code == 404
    assert get(f"/proposals/{MISSING}/persons").status_code == 404
    assert get("/proposals/no-such-name/persons").status_code == 404


def test_session_members_list_names_visitor_cara(get):
    cara = person_id(get, "visitor_cara")
    body = listed(get, "/sessions/mx1001-2/persons")
    assert body["total"] == 1
    (row,) = body["results"]
    assert row["personId"] == cara and row["role"] == "Team Member" and row["remote"] == 1
    r = get(f"/sessions/mx1001-2/persons/{cara}")
    assert r.status_code == 200 and r.json == row


def test_session_without_members_lists_none(get):
    body = listed(get, "/sessions/mx1001-1/persons")
    assert body["total"] == 0 and body["results"] == []


def test_members_of_a_missing_session_are_a_404(get):
    assert get("/sessions/mx1001-99/persons").status_code == 404
    assert get("/sessions/mx999999-1/persons").status_code == 404


# --- filters: equality, lists, operators -----------------------------------------------------


def names(rows: list[dict], column: str = "name") -> list:
    return sorted(r[column] for r in rows)


def test_proposal_scope_gives_the_demo_samples(get):
    rows = every(get, "/samples", proposal="mx1001")
    assert len(rows) == 16
    assert names(rows) == sorted(
        [f"lyso-x1-{i}" for i in range(1, 9)] + [f"thau-x1-{i}" for i in range(1, 9)]
    )


def test_equality_filter(get):
    rows = every(get, "/samples", proposal="mx1001", name="lyso-x1-3")
    assert names(rows) == ["lyso-x1-3"]


def test_comma_list_means_any_of_them(get):
    rows = every(get, "/samples", proposal="mx1001", name="lyso-x1-1,lyso-x1-2,thau-x1-5")
    assert names(rows) == ["lyso-x1-1", "lyso-x1-2", "thau-x1-5"]


def test_comma_list_on_an_integer_column(get):
    ids_ = [r["blSampleId"] for r in every(get, "/samples", proposal="mx1001")][:3]
    rows = every(get, "/samples", blSampleId=",".join(map(str, ids_)))
    assert [r["blSampleId"] for r in rows] == ids_


def test_equality_on_a_text_column_of_numbers(get):
    rows = every(get, "/samples", proposal="mx1001", location="1,2")
    assert len(rows) == 8
    assert {r["location"] for r in rows} == {"1", "2"}


def test_equality_on_a_float_column(get):
    assert len(every(get, "/samples", proposal="mx1001", loopLength="0.1")) == 16


def test_equality_on_an_enum_column(get):
    rows = every(get, "/proposals", proposalCode="mx", state="Closed")
    assert [r["proposalNumber"] for r in rows] == ["1002"]


@pytest.mark.parametrize(
    ("op", "expected"), [("gte", 11), ("gt", 10), ("lte", 6), ("lt", 5), ("ne", 15)]
)
def test_comparison_operators_on_the_key(get, op, expected):
    ordered = [r["blSampleId"] for r in every(get, "/samples", proposal="mx1001")]
    pivot = ordered[5]
    rows = every(get, "/samples", proposal="mx1001", **{f"blSampleId[{op}]": str(pivot)})
    want = {
        "gte": [i for i in ordered if i >= pivot],
        "gt": [i for i in ordered if i > pivot],
        "lte": [i for i in ordered if i <= pivot],
        "lt": [i for i in ordered if i < pivot],
        "ne": [i for i in ordered if i != pivot],
    }[op]
    assert [r["blSampleId"] for r in rows] == want
    assert len(rows) == expected


def test_ne_on_a_text_column(get):
    rows = every(get, "/samples", proposal="mx1001", **{"name[ne]": "lyso-x1-1"})
    assert len(rows) == 15 and "lyso-x1-1" not in names(rows)


def test_like_is_a_substring_match(get):
    rows = every(get, "/samples", proposal="mx1001", **{"name[like]": "x1-1"})
    assert names(rows) == ["lyso-x1-1", "thau-x1-1"]


def test_like_takes_percent_literally(get):
    assert every(get, "/samples", proposal="mx1001", **{"name[like]": "lyso%1"}) == []
    assert every(get, "/samples", proposal="mx1001", **{"name[like]": "%"}) == []


def test_like_takes_underscore_literally(get):
    assert every(get, "/datacollections", session="mx1001-1", **{"imagePrefix[like]": "x1_1"}) == []
    assert every(get, "/datacollections", session="mx1001-1", **{"imagePrefix[like]": "_"}) == []
    rows = every(get, "/datacollections", session="mx1001-1", **{"fileTemplate[like]": "-1_1_"})
    assert names(rows, "fileTemplate") == ["lyso-x1-1_1_#####.cbf", "thau-x1-1_1_#####.cbf"]


def test_null_true_and_false(get):
    assert len(every(get, "/samples", proposal="mx1001", **{"comments[null]": "true"})) == 16
    assert every(get, "/samples", proposal="mx1001", **{"comments[null]": "false"}) == []
    assert len(every(get, "/samples", proposal="mx1001", **{"crystalId[null]": "false"})) == 16
    assert every(get, "/samples", proposal="mx1001", **{"crystalId[null]": "true"}) == []


def test_null_needs_true_or_false(get):
    r = get("/samples", **{"comments[null]": "yes"})
    assert r.status_code == 400
    assert r.json["parameter"] == "comments[null]"


def test_filters_combine_with_and(get):
    rows = every(
        get, "/datacollections", session="mx1001-1", experimenttype="OSC", dataCollectionNumber="2"
    )
    assert names(rows, "fileTemplate") == ["lyso-x1-1_2_#####.cbf"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"name": "名前"}, []),
        ({"name": "lyso-x1-1,名前"}, ["lyso-x1-1"]),
        ({"name[ne]": "\U0001f9ea", "location": "1", "name[like]": "x1-1"}, ["lyso-x1-1"]),
        ({"name[like]": "名前"}, []),
        ({"search": "名前"}, []),
        ({"search": "\\"}, []),
        ({"name[like]": "\\"}, []),
    ],
    ids=["eq", "list", "ne", "like", "search", "search-backslash", "like-backslash"],
)
def test_filter_text_outside_the_column_charset_matches_nothing(get, params, expected):
    rows = every(get, "/samples", proposal="mx1001", **params)
    assert names(rows) == expected


def test_proposal_title_filter_outside_latin1_matches_nothing(get):
    assert every(get, "/proposals", title="名前") == []


# --- date-time values ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("param", "value", "expected"),
    [
        ("startTime[gte]", "2026-01-12T10:05", 3),
        ("startTime[gte]", "2026-01-12 10:05", 3),
        ("startTime[gte]", "2026-01-12T10:05:00", 3),
        ("startTime[gte]", "2026-01-12 10:05:00", 3),
        ("startTime[gt]", "2026-01-12T10:05:00", 2),
        ("startTime[lte]", "2026-01-12 10:05:00", 2),
        ("startTime[lt]", "2026-01-12T10:05", 1),
        ("startTime", "2026-01-12T11:40:00", 1),
        ("startTime", "2026-01-12 11:40", 1),
        ("startTime[ne]", "2026-01-12T11:40:00", 3),
        ("startTime[gte]", "2026-01-13", 0),
        ("startTime[gte]", "2026-01-12", 4),
    ],
)
def test_datetime_filters_accept_t_and_space(get, param, value, expected):
    rows = every(get, "/datacollections", session="mx1001-1", **{param: value})
    assert len(rows) == expected


def test_datetime_filters_on_sessions(get):
    rows = every(get, "/sessions", proposal="mx1001", **{"startDate[gte]": "2026-01-26 09:00"})
    assert [r["visit_number"] for r in rows] == [2, 3]
    rows = every(get, "/sessions", proposal="mx1001", startDate="2026-01-26T09:00:00")
    assert [r["visit_number"] for r in rows] == [2]


def test_timestamp_filters(get):
    assert (
        every(get, "/samples", proposal="mx1001", **{"recordTimeStamp[lt]": "2025-12-26T09:00"})
        == []
    )
    rows = every(
        get, "/samples", proposal="mx1001", **{"recordTimeStamp[lte]": "2025-12-26 09:00:00"}
    )
    assert len(rows) == 16


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("blSampleId", "abc"),
        ("blSampleId[gte]", "1.5"),
        ("blSampleId", "1,x"),
        ("loopLength", "thin"),
        ("loopLength", "nan"),
        ("isInSampleChanger", "yes"),
        ("recordTimeStamp[gte]", "yesterday"),
        ("recordTimeStamp", "2026-02-30T10:00"),
        ("recordTimeStamp", "2026-13-01"),
    ],
)
def test_a_value_that_does_not_parse_is_a_400_naming_the_parameter(get, param, value):
    r = get("/samples", **{param: value})
    assert r.status_code == 400, r.text
    assert r.json["title"] == "400 Bad Request"
    assert r.json["parameter"] == param
    assert param in r.json["description"]


def test_a_date_value_that_does_not_parse_on_sessions(get):
    r = get("/sessions", **{"startDate[gte]": "26/01/2026"})
    assert r.status_code == 400
    assert r.json["parameter"] == "startDate[gte]"


def test_unknown_operator_is_a_400(get):
    r = get("/samples", **{"name[contains]": "lyso"})
    assert r.status_code == 400
    assert r.json["parameter"] == "name[contains]"
    assert "contains" in r.json["description"]


@pytest.mark.parametrize("param", ["nosuchcolumn", "limt", "Name", "name[like", "sessionId"])
def test_unknown_parameter_is_a_400(get, param):
    r = get("/samples", **{param: "1"})
    assert r.status_code == 400
    assert r.json["parameter"] == param


def test_unknown_parameter_on_an_item_is_a_400(get):
    first = listed(get, "/samples", proposal="mx1001")["results"][0]
    r = get(f"/samples/{first['blSampleId']}", name="x")
    assert r.status_code == 400
    assert r.json["parameter"] == "name"


def test_a_parameter_given_twice_is_a_400(client, admin):
    r = client.simulate_get(url("/samples"), query_string="limit=2&limit=3", headers=admin)
    assert r.status_code == 400
    assert r.json["parameter"] == "limit"


# --- order, paging -----------------------------------------------------------------------------


def test_default_order_is_the_primary_key_ascending(get):
    rows = every(get, "/samples", proposal="mx1001")
    keys = [r["blSampleId"] for r in rows]
    assert keys == sorted(keys)


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_order_by_a_column(get, order):
    rows = every(get, "/samples", proposal="mx1001", order_by="name", order=order)
    got = [r["name"] for r in rows]
    assert got == sorted(got, reverse=order == "desc")
    assert len(got) == 16


def test_order_desc_without_order_by_reverses_the_key(get):
    rows = every(get, "/samples", proposal="mx1001", order="desc")
    keys = [r["blSampleId"] for r in rows]
    assert keys == sorted(keys, reverse=True)


def test_order_by_ties_are_broken_by_the_key(get):
    rows = every(get, "/samples", proposal="mx1001", order_by="location")
    pairs = [(r["location"], r["blSampleId"]) for r in rows]
    assert pairs == sorted(pairs)


def test_order_by_a_datetime_desc(get):
    rows = every(get, "/sessions", proposal="mx1001", order_by="startDate", order="desc")
    assert [r["visit_number"] for r in rows] == [3, 2, 1]


def test_order_by_an_unknown_column_is_a_400(get):
    r = get("/samples", order_by="nosuchcolumn")
    assert r.status_code == 400
    assert r.json["parameter"] == "order_by"


def test_order_other_than_asc_or_desc_is_a_400(get):
    r = get("/samples", order_by="name", order="sideways")
    assert r.status_code == 400
    assert r.json["parameter"] == "order"


def test_skip_and_limit_page_through_with_the_exact_total(get):
    everything = every(get, "/samples", proposal="mx1001")
    seen = []
    for skip in range(0, 16, 5):
        body = listed(get, "/samples", proposal="mx1001", skip=str(skip), limit="5")
        assert body["total"] == 16
        assert body["skip"] == skip and body["limit"] == 5
        assert len(body["results"]) == min(5, 16 - skip)
        seen += body["results"]
    assert seen == everything


def test_skip_past_the_end_gives_an_empty_page_with_the_total(get):
    body = listed(get, "/samples", proposal="mx1001", skip="100")
    assert body["total"] == 16 and body["results"] == []


def test_limit_up_to_max_limit_is_accepted(get, settings):
    max_limit = settings[("query", "max_limit")]
    body = listed(get, "/samples", proposal="mx1001", limit=str(max_limit))
    assert body["limit"] == max_limit and body["total"] == 16


def test_limit_above_max_limit_is_a_400(get, settings):
    r = get("/samples", limit=str(settings[("query", "max_limit")] + 1))
    assert r.status_code == 400
    assert r.json["parameter"] == "limit"


@pytest.mark.parametrize(
    ("param", "value"),
    [("limit", "0"), ("limit", "-1"), ("limit", "ten"), ("skip", "-1"), ("skip", "x")],
)
def test_bad_skip_or_limit_is_a_400(get, param, value):
    r = get("/samples", **{param: value})
    assert r.status_code == 400
    assert r.json["parameter"] == param


# --- search ------------------------------------------------------------------------------------


def test_search_on_sample_names_ignores_case(get):
    rows = every(get, "/samples", proposal="mx1001", search="LYSO")
    assert names(rows) == [f"lyso-x1-{i}" for i in range(1, 9)]


def test_search_matches_the_proposal_name(get):
    rows = every(get, "/proposals", search="mx1001")
    assert [(r["proposalCode"], r["proposalNumber"]) for r in rows] == [("mx", "1001")]
    rows = every(get, "/proposals", search="MX100")
    assert sorted(r["proposalNumber"] for r in rows) == ["1001", "1002"]


def test_search_matches_the_proposal_title(get):
    rows = every(get, "/proposals", search="lysozyme inhibition")
    assert [r["title"] for r in rows] == ["Structural basis of lysozyme inhibition"]


def test_search_takes_wildcards_literally(get):
    assert every(get, "/proposals", search="mx%1") == []
    assert every(get, "/samples", proposal="mx1001", search="lyso_x1") == []


def test_search_on_sessions_and_datacollections(get):
    rows = every(get, "/sessions", proposal="mx1001", search="i24")
    assert [r["visit_number"] for r in rows] == [3]
    rows = every(get, "/datacollections", session="mx1001-1", search="thau")
    assert names(rows, "fileTemplate") == ["thau-x1-1_1_#####.cbf", "thau-x1-1_2_#####.cbf"]


def test_search_combines_with_filters(get):
    rows = every(get, "/samples", proposal="mx1001", search="thau", location="4")
    assert names(rows) == ["thau-x1-2", "thau-x1-4", "thau-x1-6", "thau-x1-8"]


def test_search_where_a_resource_has_no_text_columns_is_a_400(get):
    r = get("/autoprocintegrations", search="x")
    assert r.status_code == 400
    assert r.json["parameter"] == "search"


# --- convenience filters, names in paths ----------------------------------------------------------


def test_sessions_of_a_proposal_by_name(get):
    rows = every(get, "/sessions", proposal="mx1001")
    assert [(r["visit_number"], r["beamLineName"]) for r in rows] == [
        (1, "i03"),
        (2, "i04"),
        (3, "i24"),
    ]


def test_proposal_filter_by_id_equals_by_name(get):
    proposal = get("/proposals/mx1001").json
    assert every(get, "/sessions", proposal=str(proposal["proposalId"])) == every(
        get, "/sessions", proposal="mx1001"
    )


def test_datacollections_of_a_visit(get):
    rows = every(get, "/datacollections", session="mx1001-1")
    assert names(rows, "fileTemplate") == [
        "lyso-x1-1_1_#####.cbf",
        "lyso-x1-1_2_#####.cbf",
        "thau-x1-1_1_#####.cbf",
        "thau-x1-1_2_#####.cbf",
    ]
    session = get("/sessions/mx1001-1").json
    assert {r["SESSIONID"] for r in rows} == {session["sessionId"]}


def test_session_filter_by_id_equals_by_name(get):
    session = get("/sessions/mx1001-1").json
    assert every(get, "/datacollections", session=str(session["sessionId"])) == every(
        get, "/datacollections", session="mx1001-1"
    )


def test_proposal_filter_on_datacollections(get):
    assert len(every(get, "/datacollections", proposal="mx1001")) == 12


def test_session_filter_on_a_proposal_level_table_is_a_400(get):
    r = get("/proteins", session="mx1001-1")
    assert r.status_code == 400
    assert r.json["parameter"] == "session"
    assert get("/samples", session="mx1001-1").status_code == 400


@pytest.mark.parametrize("path", sorted(UNSCOPED))
def test_proposal_filter_on_reference_data_is_a_400(get, path):
    r = get(path, proposal="mx1001")
    assert r.status_code == 400
    assert r.json["parameter"] == "proposal"


@pytest.mark.parametrize("route", [r for r in TOP if r.path not in UNSCOPED], ids=ids)
def test_every_resource_below_a_proposal_takes_the_proposal_filter(get, route):
    scoped = listed(get, route.path, proposal="mx1001")
    assert 0 < scoped["total"] <= listed(get, route.path)["total"]


def test_convenience_filters_with_a_malformed_name_are_a_400(get):
    r = get("/sessions", proposal="mx-1001")
    assert r.status_code == 400 and r.json["parameter"] == "proposal"
    r = get("/datacollections", session="mx1001")
    assert r.status_code == 400 and r.json["parameter"] == "session"


def test_convenience_filter_naming_an_unknown_proposal_lists_nothing(get):
    body = listed(get, "/sessions", proposal="mx999999")
    assert body["total"] == 0 and body["results"] == []


def test_proposal_by_name_in_the_path(get):
    r = get("/proposals/mx1001")
    assert r.status_code == 200
    assert (r.json["proposalCode"], r.json["proposalNumber"]) == ("mx", "1001")
    assert r.json["title"] == "Structural basis of lysozyme inhibition"
    assert get(f"/proposals/{r.json['proposalId']}").json == r.json


def test_session_by_visit_in_the_path(get):
    r = get("/sessions/mx1001-2")
    assert r.status_code == 200
    assert r.json["visit_number"] == 2 and r.json["beamLineName"] == "i04"
    assert r.json["proposalId"] == get("/proposals/mx1001").json["proposalId"]
    assert get(f"/sessions/{r.json['sessionId']}").json == r.json


@pytest.mark.parametrize(
    "path",
    ["/proposals/mx999999", "/proposals/zz1001", "/sessions/mx1001-99", "/sessions/mx999999-1"],
)
def test_unknown_names_in_paths_are_a_404(get, path):
    assert get(path).status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/samples/\u00b2",  # '²'.isdigit() is true, int('²') is not
        "/samples/\u0661",  # ARABIC-INDIC DIGIT ONE
        "/proposals/mx\u0661\u0660\u0660\u0661",
        "/sessions/mx1001-\u0661",
        "/sessions/mx\u0661\u0660\u0660\u0661-1",
        "/proposals/mx\u0661\u0660\u0660\u0661/persons",
    ],
)
def test_ids_and_names_with_non_ascii_digits_are_a_404(get, path):
    r = get(path)
    assert r.status_code == 404, r.text


@pytest.mark.parametrize(
    ("param", "value"), [("proposal", "mx\u0661\u0660\u0660\u0661"), ("session", "mx1001-\u0661")]
)
def test_convenience_filters_with_non_ascii_digits_match_no_demo_row(get, param, value):
    r = get("/datacollections", **{param: value})
    assert r.status_code in (200, 400), r.text
    if r.status_code == 200:
        assert r.json["total"] == 0


# --- serialization (section 1) ---------------------------------------------------------------


def test_datetimes_are_served_without_zone_or_fraction(get):
    session = get("/sessions/mx1001-2").json
    assert session["startDate"] == "2026-01-26T09:00:00"
    assert session["endDate"] == "2026-01-28T09:00:00"
    assert DATETIME.match(session["bltimeStamp"])
    proposal = get("/proposals/mx1001").json
    assert proposal["startDate"] == "2025-12-06T09:00:00"


def test_timestamps_are_served_like_datetimes(get):
    rows = every(get, "/samples", proposal="mx1001")
    assert {r["recordTimeStamp"] for r in rows} == {"2025-12-26T09:00:00"}


def test_dates_are_served_as_yyyy_mm_dd(get):
    (shipping,) = every(get, "/shippings", proposal="mx1001")
    assert shipping["deliveryAgent_shippingDate"] == "2025-12-26"
    assert shipping["deliveryAgent_deliveryDate"] == "2025-12-28"


def test_tinyint_is_served_as_an_integer(get):
    session = get("/sessions/mx1001-1").json
    for column, value in (("scheduled", 1), ("usedFlag", 1), ("archived", 0)):
        assert session[column] == value
        assert type(session[column]) is int
    sample = every(get, "/samples", proposal="mx1001")[0]
    assert sample["isInSampleChanger"] == 0 and type(sample["isInSampleChanger"]) is int


def test_enums_are_served_as_their_strings(get):
    assert get("/proposals/mx1001").json["state"] == "Open"
    assert get("/proposals/mx1002").json["state"] == "Closed"
    dewars = every(get, "/dewars", proposal="mx1001")
    assert {d["type"] for d in dewars} == {"Dewar"}
    proteins = every(get, "/proteins", proposal="mx1001")
    assert {p["safetyLevel"] for p in proteins} == {"GREEN"}


def test_numbers_are_json_numbers(get):
    rows = every(get, "/datacollections", session="mx1001-1", experimenttype="OSC")
    assert {r["wavelength"] for r in rows} == {0.9763}
    assert {r["numberOfImages"] for r in rows} == {3600}


def test_blob_columns_are_not_served(get, catalog):
    blobs = {(name, c) for name in catalog.tables for c in catalog[name].blobs}
    for route in TOP:
        row = listed(get, route.path)["results"][0]
        assert not {(route.table, c) for c in row} & blobs
