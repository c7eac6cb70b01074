"""Query strings and paths no client means well with: a JSON 400 or 404 on every database.

Integers past 64 bits and LIKE patterns past SQLite's limit were 500s on the
SQLite demo (its driver cannot bind them, its LIKE refuses them) where MariaDB
answered; both now give the same answer. So do paging cursors, which anyone
can make: one holding a value no row could hold is a 400.
"""

from __future__ import annotations

import base64
import json

import pytest

from ispyb_falcon.query import keyset
from ispyb_falcon.query.params import MAX_MATCH_TEXT

from .conftest import PREFIX

INT64_MAX = 2**63 - 1


@pytest.fixture()
def get(client, auth):
    headers = auth("pi_anna")

    def call(path: str, **params):
        return client.simulate_get(PREFIX + path, params=params, headers=headers)

    return call


@pytest.mark.parametrize(
    "param",
    [
        {"proposalId": "99999999999999999999999"},
        {"proposalId": f"1,{INT64_MAX + 1}"},
        {"proposalId[gte]": str(-(2**63) - 1)},
        {"proposalId[lt]": str(INT64_MAX + 1)},
        {"visit_number[ne]": "-" + "9" * 40},
    ],
)
def test_an_integer_past_64_bits_is_a_400_naming_the_parameter(get, param):
    r = get("/sessions", **param)
    assert r.status_code == 400, r.text
    assert r.json["parameter"] == next(iter(param))
    assert "64-bit" in r.json["description"]


def test_integers_at_the_64_bit_bounds_are_compared(get):
    assert get("/sessions", proposalId=str(INT64_MAX)).json["total"] == 0
    everything = get("/sessions").json["total"]
    assert get("/sessions", **{"proposalId[gte]": str(-(2**63))}).json["total"] == everything


def test_a_visit_number_past_64_bits_names_no_session(get):
    visit = "mx1001-" + "9" * 20
    r = get(f"/sessions/{visit}")
    assert r.status_code == 404, r.text
    r = get("/datacollections", session=visit)
    assert r.status_code == 400 and r.json["parameter"] == "session", r.text
    assert get(f"/sessions/{visit}/persons").status_code == 404


@pytest.mark.parametrize("name", ["name[like]", "search"])
def test_match_text_past_the_limit_is_a_400_and_at_the_limit_matches_nothing(get, name):
    """100,000 characters were 'LIKE or GLOB pattern too complex' on SQLite: a 500."""
    r = get("/samples", **{name: "a" * 100_000})
    assert r.status_code == 400, r.text
    assert r.json["parameter"] == name
    r = get("/samples", **{name: "%_" * (MAX_MATCH_TEXT // 2)})
    assert r.status_code == 200 and r.json["total"] == 0, r.text


def crafted_cursor(table: str, value) -> str:
    """A cursor of the right query holding `value`, as anyone can make one (it is not signed)."""
    text = json.dumps({"q": keyset.digest(table, {}), "v": [value]})
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "value",
    [10**30, -(2**63) - 1, [1], {"n": "NaN"}, float("inf"), {"td": 1e20}],
    ids=["int past 64 bits", "int below 64 bits", "list", "NaN", "infinity", "huge duration"],
)
def test_a_crafted_cursor_no_row_could_hold_is_a_400(get, value):
    """Its value was bound as it came: a 500 from the driver."""
    r = get("/samples", after=crafted_cursor("BLSample", value))
    assert r.status_code == 400, r.text
    assert r.json["parameter"] == "after"
    first = get("/samples", limit="1").json
    assert get("/samples", after=first["next"]).status_code == 200
