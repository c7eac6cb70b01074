"""Zero and partial dates (`0000-00-00`, `2020-05-00`), as MariaDB stores them.

The official ISPyB data holds `BLSession.lastUpdate = 0000-00-00 00:00:00`, and
`RobotAction.endTimestamp` gets it from its column default. Such a value is
served as its text in the API's format (`0000-00-00T00:00:00`, a DATE as
`2020-05-00`), and the same text is taken back in filters and bodies, so a
row read can be sent back unchanged.

The rows with zero and partial dates are made here: a visit, a shipment and a
robot action in mx1001 are created through HTTP, and the dates are then
written with SQL as the database stores them (on SQLite, the text MariaDB
would hand over), so what is served does not depend on how the server writes.
They are deleted again when each test ends.
"""

from __future__ import annotations

import csv
import io
import json
import uuid

import falcon.testing
import jsonschema
import pytest
import sqlalchemy as sa

from ispyb_falcon import db
from ispyb_falcon.app import create_app
from ispyb_falcon.resources import MODULES

from .conftest import MARIADB_URL, PREFIX, needs_mariadb

ADMIN = "admin1"
ZERO = "0000-00-00T00:00:00"


def url(path: str) -> str:
    return PREFIX + path


@pytest.fixture()
def admin(auth):
    return auth(ADMIN)


@pytest.fixture()
def get(client, admin):
    def call(path: str, **params):
        r = client.simulate_get(url(path), params=params, headers=admin)
        assert r.status_code == 200, (path, params, r.text)
        return r

    return call


def raw_sql(engine: sa.Engine, sql: str, **values) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(sql), values)


@pytest.fixture()
def zero_rows(client, admin, engine, get):
    """A visit, a shipment and a robot action of mx1001 holding zero and partial dates.

    visit:   lastUpdate (TIMESTAMP) 0000-00-00 00:00:00, startDate (DATETIME) 2020-05-00 10:30:00
    shipment: deliveryAgent_shippingDate (DATE) 2020-05-00, deliveryAgent_deliveryDate
             (DATE) 0000-00-00, dateOfShippingToUser (DATETIME) 2020-00-00 00:00:00
    robot action: endTimestamp (TIMESTAMP) from its column default, 0000-00-00 00:00:00
    """
    proposal = get("/proposals/mx1001").json["proposalId"]
    made: list[str] = []

    def post(path: str, key: str, body: dict) -> dict:
        r = client.simulate_post(url(path), json=body, headers=admin)
        assert r.status_code == 201, r.text
        made.append(f"{path}/{r.json[key]}")
        return r.json

    try:
        visit = post(
            "/sessions",
            "sessionId",
            {
                "proposalId": proposal,
                "visit_number": 90000 + uuid.uuid4().int % 9000,
                "beamLineName": "i03",
                "startDate": "2020-05-01T10:30:00",
            },
        )
        shipment = post(
            "/shippings",
            "shippingId",
            {"proposalId": proposal, "shippingName": f"zero-{uuid.uuid4().hex[:8]}"},
        )
        action = post(
            "/robotactions",
            "robotActionId",
            {"blsessionId": visit["sessionId"], "actionType": "LOAD", "message": "zero dates"},
        )
        raw_sql(
            engine,
            "UPDATE BLSession SET lastUpdate = '0000-00-00 00:00:00',"
            " startDate = '2020-05-00 10:30:00' WHERE sessionId = :id",
            id=visit["sessionId"],
        )
        raw_sql(
            engine,
            "UPDATE Shipping SET deliveryAgent_shippingDate = '2020-05-00',"
            " deliveryAgent_deliveryDate = '0000-00-00',"
            " dateOfShippingToUser = '2020-00-00 00:00:00' WHERE shippingId = :id",
            id=shipment["shippingId"],
        )
        yield {
            "session": visit["sessionId"],
            "shipping": shipment["shippingId"],
            "robotaction": action["robotActionId"],
            "proposal": proposal,
        }
    finally:
        for path in reversed(made):
            r = client.simulate_delete(url(path), headers=admin)
            assert r.status_code in (204, 404), (path, r.text)


def count(engine: sa.Engine, sql: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql)).scalar_one()


# --- served ------------------------------------------------------------------------------------


def test_a_robot_action_created_without_end_is_served_with_the_zero_default(get, zero_rows):
    row = get(f"/robotactions/{zero_rows['robotaction']}").json
    assert row["endTimestamp"] == ZERO


def test_zero_and_partial_dates_are_served_in_the_api_format(get, zero_rows):
    visit = get(f"/sessions/{zero_rows['session']}").json
    assert visit["lastUpdate"] == ZERO
    assert visit["startDate"] == "2020-05-00T10:30:00"
    shipment = get(f"/shippings/{zero_rows['shipping']}").json
    assert shipment["deliveryAgent_shippingDate"] == "2020-05-00"
    assert shipment["deliveryAgent_deliveryDate"] == "0000-00-00"
    assert shipment["dateOfShippingToUser"] == "2020-00-00T00:00:00"
    # the same in a list, as one of several columns and rows
    listed = get("/shippings", proposal="mx1001", limit="1000").json["results"]
    assert [r for r in listed if r["shippingId"] == zero_rows["shipping"]] == [shipment]
    (visit_listed,) = get("/sessions", sessionId=str(zero_rows["session"])).json["results"]
    assert visit_listed == visit
    fields = get(f"/sessions/{zero_rows['session']}", fields="lastUpdate,startDate").json
    assert fields == {"lastUpdate": ZERO, "startDate": "2020-05-00T10:30:00"}


def test_exports_serve_zero_and_partial_dates_as_lists_do(client, admin, get, zero_rows):
    shipment = get(f"/shippings/{zero_rows['shipping']}").json
    params = {"shippingId": str(zero_rows["shipping"])}
    r = client.simulate_get(
        url("/shippings"), params=params, headers={**admin, "Accept": "text/csv"}
    )
    assert r.status_code == 200, r.text
    (row,) = list(csv.DictReader(io.StringIO(r.text)))
    assert row["deliveryAgent_shippingDate"] == "2020-05-00"
    assert row["deliveryAgent_deliveryDate"] == "0000-00-00"
    assert row["dateOfShippingToUser"] == "2020-00-00T00:00:00"
    r = client.simulate_get(
        url("/shippings"), params=params, headers={**admin, "Accept": "application/x-ndjson"}
    )
    assert r.status_code == 200, r.text
    assert [json.loads(line) for line in r.text.splitlines()] == [shipment]


def test_the_official_data_serves_its_zero_last_updates(get, engine, zero_rows):
    """Every visit whose lastUpdate is zero (on MariaDB, the official data's too)."""
    zero = count(engine, "SELECT COUNT(*) FROM BLSession WHERE lastUpdate < '1000-01-01'")
    assert zero >= (7 if MARIADB_URL else 1)
    listed = get("/sessions", limit="1000").json["results"]
    assert sum(r["lastUpdate"] == ZERO for r in listed) == zero
    assert all(r["lastUpdate"].count("T") == 1 for r in listed)


# --- filtered ----------------------------------------------------------------------------------


def ids(get, path: str, key: str, **params) -> set[int]:
    return {r[key] for r in get(path, limit="1000", **params).json["results"]}


def test_the_text_served_filters_the_rows_that_hold_it(get, engine, zero_rows):
    visit = get(f"/sessions/{zero_rows['session']}").json
    zero = count(engine, "SELECT COUNT(*) FROM BLSession WHERE lastUpdate < '1000-01-01'")
    assert get("/sessions", lastUpdate=visit["lastUpdate"]).json["total"] == zero
    assert get("/sessions", lastUpdate="0000-00-00 00:00:00").json["total"] == zero
    assert get("/sessions", lastUpdate="0000-00-00").json["total"] == zero  # its midnight
    every = get("/sessions", count="exact").json["total"]
    assert get("/sessions", **{"lastUpdate[ne]": ZERO}).json["total"] == every - zero
    assert get("/sessions", **{"lastUpdate[gt]": ZERO}).json["total"] == every - zero
    assert get("/sessions", **{"lastUpdate[lte]": ZERO}).json["total"] == zero
    assert get("/sessions", **{"lastUpdate[lt]": "1970-01-02"}).json["total"] == zero
    assert zero_rows["session"] in ids(
        get, "/sessions", "sessionId", startDate=visit["startDate"], proposal="mx1001"
    )


@pytest.mark.parametrize(
    "params",
    [
        {"deliveryAgent_shippingDate": "2020-05-00"},
        {"deliveryAgent_shippingDate": "2021-01-01,2020-05-00"},
        {"deliveryAgent_shippingDate[gte]": "2020-05-00"},
        {
            "deliveryAgent_shippingDate[gt]": "2020-04-30",
            "deliveryAgent_shippingDate[lt]": "2020-05-01",
        },
        {"deliveryAgent_deliveryDate": "0000-00-00"},
        {"deliveryAgent_deliveryDate[lt]": "1000-01-01"},
        {"dateOfShippingToUser": "2020-00-00T00:00:00"},
        {"dateOfShippingToUser": "2020-00-00 00:00"},
        {"dateOfShippingToUser[lte]": "2020-00-00"},
        {"dateOfShippingToUser[lt]": "2020-01-01T00:00:00"},
        {"dateOfShippingToUser[like]": "2020-00-00T00"},
    ],
    ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()),
)
def test_partial_dates_are_filtered_by_value_and_by_range(get, zero_rows, params):
    found = ids(get, "/shippings", "shippingId", proposal="mx1001", **params)
    assert zero_rows["shipping"] in found


@pytest.mark.parametrize(
    "params",
    [
        {"deliveryAgent_shippingDate": "2020-05-01"},
        {"deliveryAgent_shippingDate[gt]": "2020-05-00"},
        {"deliveryAgent_shippingDate[ne]": "2020-05-00"},
        {"deliveryAgent_deliveryDate[gt]": "0000-00-00"},
        {"dateOfShippingToUser[gt]": "2020-00-00T00:00:00"},
    ],
    ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()),
)
def test_partial_dates_are_left_out_by_filters_they_do_not_match(get, zero_rows, params):
    found = ids(get, "/shippings", "shippingId", proposal="mx1001", **params)
    assert zero_rows["shipping"] not in found


@pytest.mark.parametrize(
    ("param", "value", "says"),
    [
        ("lastUpdate", "2020-05-00T00:00:00", "TIMESTAMP holds no partial date"),
        ("lastUpdate[lt]", "2020-00-00", "TIMESTAMP holds no partial date"),
        ("startDate", "2020-13-00", "month"),
        ("startDate", "2020-05-00T24:00", "hour"),
        ("startDate[gte]", "2020-00-32", "day"),
        ("startDate", "0000-00-00X", "expected"),
    ],
)
def test_a_date_no_column_holds_is_a_400_in_a_filter(client, admin, param, value, says):
    r = client.simulate_get(url("/sessions"), params={param: value}, headers=admin)
    assert r.status_code == 400, r.text
    assert r.json["parameter"] == param
    assert says in r.json["description"]


def test_pages_sorted_by_a_zero_date_follow_their_cursors(get, zero_rows):
    """A page ending on a zero date has a cursor holding it; the next page starts after it."""
    listed = get("/sessions", order_by="lastUpdate", limit="1000").json["results"]
    whole = [r["sessionId"] for r in listed]
    walked, params = [], {"order_by": "lastUpdate", "limit": "2"}
    while True:
        page = get("/sessions", **params).json
        walked += [r["sessionId"] for r in page["results"]]
        if page["next"] is None:
            break
        params = {"order_by": "lastUpdate", "limit": "2", "after": page["next"]}
    assert walked == whole
    zero = [r["sessionId"] for r in listed if r["lastUpdate"] == ZERO]
    assert zero_rows["session"] in zero
    assert whole[: len(zero)] == zero  # the zero date sorts before any other


# --- written -----------------------------------------------------------------------------------


def test_a_row_with_zero_dates_is_sent_back_unchanged(client, admin, get, zero_rows, catalog):
    for path in (
        f"/sessions/{zero_rows['session']}",
        f"/shippings/{zero_rows['shipping']}",
        f"/robotactions/{zero_rows['robotaction']}",
    ):
        assert_round_trip(client, admin, path, catalog)


@pytest.mark.parametrize(
    ("column", "value", "served"),
    [
        ("deliveryAgent_shippingDate", "2021-00-00", "2021-00-00"),
        ("deliveryAgent_shippingDate", "0000-00-00", "0000-00-00"),
        ("deliveryAgent_deliveryDate", "2021-07-00", "2021-07-00"),
        ("deliveryAgent_deliveryDate", "2021-07-14", "2021-07-14"),
        ("dateOfShippingToUser", "2021-07-00T08:15:00", "2021-07-00T08:15:00"),
        ("dateOfShippingToUser", "0000-00-00 00:00", ZERO),
        ("dateOfShippingToUser", "2021-07-14T08:15", "2021-07-14T08:15:00"),
    ],
)
def test_zero_and_partial_dates_are_written_as_given(
    client, admin, get, engine, zero_rows, column, value, served
):
    path = url(f"/shippings/{zero_rows['shipping']}")
    r = client.simulate_patch(path, json={column: value}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json[column] == served
    assert get(f"/shippings/{zero_rows['shipping']}").json[column] == served
    assert zero_rows["shipping"] in ids(get, "/shippings", "shippingId", **{column: served})


def test_a_robot_action_takes_the_zero_end_back_and_a_real_one(client, admin, get, zero_rows):
    path = url(f"/robotactions/{zero_rows['robotaction']}")
    r = client.simulate_patch(path, json={"endTimestamp": "2021-07-14T08:15:00"}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json["endTimestamp"] == "2021-07-14T08:15:00"
    r = client.simulate_patch(path, json={"endTimestamp": ZERO}, headers=admin)
    assert r.status_code == 200, r.text
    assert get(f"/robotactions/{zero_rows['robotaction']}").json["endTimestamp"] == ZERO


def test_a_robot_action_is_created_with_a_zero_end(client, admin, get, zero_rows):
    body = {"blsessionId": zero_rows["session"], "endTimestamp": ZERO, "actionType": "UNLOAD"}
    r = client.simulate_post(url("/robotactions"), json=body, headers=admin)
    assert r.status_code == 201, r.text
    try:
        assert r.json["endTimestamp"] == ZERO
    finally:
        client.simulate_delete(url(f"/robotactions/{r.json['robotActionId']}"), headers=admin)


@pytest.mark.parametrize(
    ("path", "column", "value", "says"),
    [
        ("robotaction", "endTimestamp", "2020-05-00T00:00:00", "TIMESTAMP holds no partial date"),
        ("robotaction", "endTimestamp", "0000-00-00T00:00:01", "TIMESTAMP holds no partial date"),
        ("robotaction", "endTimestamp", "0000-05-12T00:00:00", "year"),
        ("shipping", "deliveryAgent_shippingDate", "2020-13-00", "month"),
        ("shipping", "deliveryAgent_shippingDate", "2020-00-32", "day"),
        ("shipping", "deliveryAgent_shippingDate", "0000-00-00T00:00:00", "does not match"),
        ("shipping", "dateOfShippingToUser", "2020-00-00T24:00", "hour"),
        ("shipping", "dateOfShippingToUser", "2020-02-30T00:00", "day"),
    ],
)
def test_a_date_no_column_holds_is_a_422_in_a_body(
    client, admin, get, zero_rows, path, column, value, says
):
    item = f"/{path}s/{zero_rows[path]}"
    before = get(item).json
    r = client.simulate_patch(url(item), json={column: value}, headers=admin)
    assert r.status_code == 422, r.text
    (error,) = r.json["errors"]
    assert error["path"] == f"$.{column}"
    assert says in error["message"]
    assert get(item).json == before


def test_the_schemas_and_the_api_document_take_what_is_served(client, catalog):
    """A client validating with /schemas or /openapi.json accepts the rows it is served."""
    document = client.simulate_get(url("/openapi.json")).json
    components = document["components"]["schemas"]
    for table, column, value in [
        ("RobotAction", "endTimestamp", ZERO),
        ("BLSession", "lastUpdate", ZERO),
        ("BLSession", "startDate", "2020-05-00T10:30:00"),
        ("Shipping", "deliveryAgent_shippingDate", "2020-05-00"),
        ("Shipping", "deliveryAgent_deliveryDate", "0000-00-00"),
    ]:
        served = client.simulate_get(url(f"/schemas/{table}")).json["properties"][column]
        jsonschema.validate(value, served)
        jsonschema.validate(value, components[f"{table}Row"]["properties"][column])
        jsonschema.validate(value, components[f"{table}Patch"]["properties"][column])


# --- every row of the database, read and sent back ---------------------------------------------

ITEM_ROUTES = [r for routes in MODULES.values() for r in routes if r.path and r.item]
BY_PATH = {r.path: r for r in ITEM_ROUTES}


def assert_round_trip(client, admin, path: str, catalog, table: str | None = None) -> None:
    """GET the row, PUT back what may be written (If-Match its ETag), GET it again: the same."""
    got = client.simulate_get(url(path), headers=admin)
    assert got.status_code == 200, (path, got.text)
    row = got.json
    if table is None:
        table = BY_PATH["/" + path.split("/")[1]].table
    props = catalog.schemas[table]["properties"]
    body = {k: v for k, v in row.items() if not props[k].get("readOnly")}
    headers = {**admin, "If-Match": got.headers["ETag"]}
    put = client.simulate_put(url(path), json=body, headers=headers)
    assert put.status_code == 200, (path, body, put.text)
    assert put.json == row, path
    again = client.simulate_get(url(path), headers=admin)
    assert again.json == row, path
    assert again.headers["ETag"] == got.headers["ETag"], path


def every_item(get, catalog, route) -> list[str]:
    """The item path of every row of this route's table (a nested route: under every parent)."""
    if route.nested:
        parent = BY_PATH[route.nested.parent]
        parent_key = catalog[parent.table].primary_key[0]
        below = [route.path.replace("{id}", str(p[parent_key])) for p in all_rows(get, parent.path)]
        return [f"{path}/{r[route.nested.key]}" for path in below for r in all_rows(get, path)]
    key = catalog[route.table].primary_key[0]
    return [f"{route.path}/{r[key]}" for r in all_rows(get, route.path)]


def all_rows(get, path: str) -> list[dict]:
    found, params = [], {"limit": "1000", "count": "none"}
    while True:
        page = get(path, **params).json
        found += page["results"]
        if page["next"] is None:
            return found
        params = {**params, "after": page["next"]}


@pytest.mark.parametrize("route", ITEM_ROUTES, ids=lambda r: r.path)
def test_every_row_read_is_taken_back_unchanged(client, admin, get, catalog, zero_rows, route):
    """On MariaDB: the official ISPyB data (zero lastUpdates), the demo data, and the rows
    with zero and partial dates made here; on SQLite, the last two."""
    paths = every_item(get, catalog, route)
    assert paths
    for path in paths:
        assert_round_trip(client, admin, path, catalog, route.table)


# --- a database whose sql_mode refuses zero dates ----------------------------------------------


@pytest.fixture()
def strict_client(settings):
    """An app on the same database whose connections refuse to write zero and partial dates."""
    engine = db.make_engine(settings)

    @sa.event.listens_for(engine, "connect")
    def _no_zero_dates(dbapi_conn, _record) -> None:
        with dbapi_conn.cursor() as cursor:
            cursor.execute(
                "SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_ZERO_DATE,NO_ZERO_IN_DATE')"
            )

    yield falcon.testing.TestClient(create_app(settings, engine=engine))
    engine.dispose()


@needs_mariadb
def test_a_server_refusing_zero_dates_takes_rows_back_and_refuses_new_ones(
    strict_client, admin, catalog, get, zero_rows
):
    for path in (
        f"/sessions/{zero_rows['session']}",
        f"/shippings/{zero_rows['shipping']}",
        f"/robotactions/{zero_rows['robotaction']}",
    ):
        assert_round_trip(strict_client, admin, path, catalog)
    item = url(f"/shippings/{zero_rows['shipping']}")
    r = strict_client.simulate_patch(
        item, json={"deliveryAgent_deliveryDate": "2021-07-00"}, headers=admin
    )
    assert r.status_code == 422, r.text
    (error,) = r.json["errors"]
    assert error["path"] == "$.deliveryAgent_deliveryDate"
    assert "'2021-07-00'" in error["message"] and "NO_ZERO_IN_DATE" in error["message"]
    r = strict_client.simulate_post(
        url("/robotactions"), json={"blsessionId": zero_rows["session"]}, headers=admin
    )
    assert r.status_code == 422, r.text
    (error,) = r.json["errors"]
    assert error["path"] == "$.endTimestamp"
    assert f"default '{ZERO}'" in error["message"] and "give a value" in error["message"]
    assert (
        get(f"/shippings/{zero_rows['shipping']}").json["deliveryAgent_deliveryDate"]
        == "0000-00-00"
    )
