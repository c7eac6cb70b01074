"""The visit lists a web page asks for (API.md section 8): `/sessions?when=`,
`?beamLineGroup=` and `?mine=true`, alone, together and with paging.

The demo sessions all lie in early 2026, in the past. This module adds visits
around now through the API (as admin1), registers people on some of them, and
removes all of it afterwards. Dates are days away from now, so the database's
clock and the test's agree whatever their time zones. Visits are named
`mx1001-101`...; the official ISPyB data on MariaDB holds only sessions of
2016-2018 on beamlines of other people, so lists of people who are in no
official row are exact on both databases, and staff's `when=previous` lists
also hold those old official sessions (asserted as a prefix of demo visits).
"""

from __future__ import annotations

import datetime as dt

import falcon.testing
import pytest

from .conftest import MARIADB_URL, PREFIX
from .test_security_visibility import Demo, login

NOW = dt.datetime.now().replace(microsecond=0)


def days(n: float) -> str:
    return (NOW + dt.timedelta(days=n)).isoformat()


# visit -> (beamline, start in days from now, end in days from now or None)
CREATED = {
    "mx1001-101": ("i03", -3, 3),  # current
    "mx1001-102": ("i24", -2, 2),  # current
    "mx1001-103": ("i04", 10, 12),  # upcoming
    "mx1001-104": ("i24", 5, 6),  # upcoming, sooner
    "mx1001-105": ("i03", -6, -4),  # previous, the most recent
    "cm2001-101": ("i03", 20, 21),  # upcoming, of pi_eve's proposal: staff_dan sees it (i03)
    "cm2001-102": ("i24", -1, None),  # started, with no end: in none of the three
}
# who -> the created visit they are registered on (Session_has_Person)
REGISTERED = {"visitor_cara": "mx1001-102", "staff_dan": "mx1001-104", "admin1": "mx1001-101"}
# The demo visits of pi_anna, all previous, most recent first (demo/people.py SESSIONS).
ANNA_DEMO_PREVIOUS = ["mx1001-3", "mx1001-2", "mx1001-1", "mx1002-1"]


@pytest.fixture(scope="module")
def demo(app) -> Demo:
    client = falcon.testing.TestClient(app)
    return Demo(client, login(client, "admin1"))


@pytest.fixture(scope="module")
def visits_now(app, demo):
    """The visits of CREATED, and who is registered on them; deleted afterwards."""
    client = demo.client
    ids: dict[str, int] = {}
    people: list[tuple[str, int]] = []
    try:
        for visit, (beamline, start, end) in CREATED.items():
            proposal, number = visit.split("-")
            r = client.simulate_post(
                f"{PREFIX}/sessions",
                headers=demo.admin,
                json={
                    "proposalId": demo.proposal_id[proposal],
                    "visit_number": int(number),
                    "beamLineName": beamline,
                    "startDate": days(start),
                    "endDate": None if end is None else days(end),
                },
            )
            assert r.status_code == 201, r.text
            ids[visit] = r.json["sessionId"]
        for who, visit in REGISTERED.items():
            person = admin_person(client, demo) if who == "admin1" else demo.person_id[who]
            r = client.simulate_post(
                f"{PREFIX}/sessions/{visit}/persons",
                headers=demo.admin,
                json={"personId": person, "role": "Team Member"},
            )
            assert r.status_code == 201, r.text
            people.append((visit, person))
        yield ids
    finally:
        for visit, person in people:
            r = client.simulate_delete(
                f"{PREFIX}/sessions/{visit}/persons/{person}", headers=demo.admin
            )
            assert r.status_code == 204, r.text
        for sid in ids.values():
            r = client.simulate_delete(f"{PREFIX}/sessions/{sid}", headers=demo.admin)
            assert r.status_code == 204, r.text


def admin_person(client, demo: Demo) -> int:
    r = client.simulate_get(f"{PREFIX}/auth/whoami", headers=demo.admin)
    assert r.status_code == 200, r.text
    return r.json["personId"]


def names(demo: Demo, ids: dict[str, int], results: list[dict]) -> list[str]:
    """Visit names of the rows, in order; sessions neither demo nor created as `other`."""
    of = {**demo.visit_of, **{v: k for k, v in ids.items()}}
    return [of.get(s["sessionId"], "other") for s in results]


def page(client, headers, **params) -> dict:
    params.setdefault("limit", 1000)
    r = client.simulate_get(f"{PREFIX}/sessions", headers=headers, params=params)
    assert r.status_code == 200, (params, r.text)
    return r.json


# --- when= ---------------------------------------------------------------------------------------


def test_when_current_upcoming_previous_for_a_pi(client, auth, demo, visits_now):
    h = auth("pi_anna")
    current = page(client, h, when="current")
    assert names(demo, visits_now, current["results"]) == ["mx1001-101", "mx1001-102"]
    assert current["total"] == 2
    upcoming = page(client, h, when="upcoming")
    assert names(demo, visits_now, upcoming["results"]) == ["mx1001-104", "mx1001-103"]
    assert upcoming["total"] == 2
    previous = page(client, h, when="previous")
    assert names(demo, visits_now, previous["results"]) == ["mx1001-105", *ANNA_DEMO_PREVIOUS]
    assert previous["total"] == 5


def test_when_lists_by_start_date_in_the_default_direction(client, auth, demo, visits_now):
    h = auth("pi_anna")
    for when, descending in (("current", False), ("upcoming", False), ("previous", True)):
        starts = [s["startDate"] for s in page(client, h, when=when)["results"]]
        assert starts == sorted(starts, reverse=descending), when


def test_order_and_order_by_replace_the_default_order(client, auth, demo, visits_now):
    h = auth("pi_anna")
    r = page(client, h, when="upcoming", order="desc")
    assert names(demo, visits_now, r["results"]) == ["mx1001-103", "mx1001-104"]
    r = page(client, h, when="upcoming", order_by="sessionId")
    assert [s["sessionId"] for s in r["results"]] == sorted(
        visits_now[v] for v in ("mx1001-103", "mx1001-104")
    )
    r = page(client, h, when="previous", order_by="endDate", order="asc")
    assert names(demo, visits_now, r["results"]) == [*reversed(ANNA_DEMO_PREVIOUS), "mx1001-105"]


def test_when_for_staff_and_admin(client, auth, demo, visits_now):
    dan = page(client, auth("staff_dan"), when="upcoming")  # his i24 visit, then i03 and i04
    assert names(demo, visits_now, dan["results"]) == ["mx1001-104", "mx1001-103", "cm2001-101"]
    assert dan["total"] == 3
    admin = page(client, demo.admin, when="upcoming")
    assert names(demo, visits_now, admin["results"]) == [
        "mx1001-104",
        "mx1001-103",
        "cm2001-101",
    ]
    current = page(client, demo.admin, when="current")
    assert names(demo, visits_now, current["results"]) == ["mx1001-101", "mx1001-102"]


def test_when_for_a_visit_member_sees_only_her_visits(client, auth, demo, visits_now):
    h = auth("visitor_cara")
    assert names(demo, visits_now, page(client, h, when="current")["results"]) == ["mx1001-102"]
    assert page(client, h, when="upcoming")["results"] == []
    assert names(demo, visits_now, page(client, h, when="previous")["results"]) == ["mx1001-2"]


@pytest.mark.parametrize("value", ["", "now", "CURRENT", "current,upcoming"])
def test_an_unknown_when_is_a_400_naming_it(client, auth, value):
    r = client.simulate_get(f"{PREFIX}/sessions", headers=auth("pi_anna"), params={"when": value})
    assert r.status_code == 400, r.text
    assert r.json["parameter"] == "when"
    assert "current, upcoming, previous" in r.json["description"]


# --- beamLineGroup= ------------------------------------------------------------------------------


def test_beamline_group_narrows_what_a_pi_sees(client, auth, demo, visits_now):
    r = page(client, auth("pi_anna"), beamLineGroup="mx")
    got = names(demo, visits_now, r["results"])
    # her visits on i03 and i04, by key; cm2001-101 (i03) is not hers, so it stays out
    mine = ["mx1001-1", "mx1001-2", "mx1002-1", "mx1001-101", "mx1001-103", "mx1001-105"]
    assert sorted(got) == sorted(mine)
    assert r["total"] == 6
    assert {s["beamLineName"] for s in r["results"]} == {"i03", "i04"}


def test_beamline_group_for_staff_and_a_stranger(client, auth, demo, visits_now):
    r = page(client, auth("staff_dan"), beamLineGroup="mx", when="upcoming")
    assert names(demo, visits_now, r["results"]) == ["mx1001-103", "cm2001-101"]
    assert page(client, auth("user_fred"), beamLineGroup="mx") == {
        "total": 0,
        "skip": 0,
        "limit": 1000,
        "next": None,
        "results": [],
    }
    # a visit member: only her own i04 visit, not the other i03/i04 visits of her proposal
    r = page(client, auth("visitor_cara"), beamLineGroup="mx")
    assert names(demo, visits_now, r["results"]) == ["mx1001-2"]


def test_an_unknown_beamline_group_is_a_400_listing_the_known_ones(client, auth):
    r = client.simulate_get(
        f"{PREFIX}/sessions", headers=auth("staff_dan"), params={"beamLineGroup": "i03"}
    )
    assert r.status_code == 400, r.text
    assert r.json["parameter"] == "beamLineGroup"
    assert r.json["description"] == "beamLineGroup: no group 'i03'; known: mx"


# --- mine= ---------------------------------------------------------------------------------------


def test_mine_for_admin_and_staff_is_only_their_own(client, auth, demo, visits_now):
    r = page(client, demo.admin, mine="true")
    assert names(demo, visits_now, r["results"]) == ["mx1001-101"]
    assert r["total"] == 1
    r = page(client, auth("staff_dan"), mine="true")
    assert names(demo, visits_now, r["results"]) == ["mx1001-104"]
    assert r["total"] == 1
    assert page(client, auth("manager1"), mine="true")["total"] == 0


def test_mine_for_a_pi_a_member_and_a_visitor(client, auth, demo, visits_now):
    anna = page(client, auth("pi_anna"), mine="true")
    assert sorted(names(demo, visits_now, anna["results"])) == sorted(
        [*ANNA_DEMO_PREVIOUS, *(v for v in CREATED if v.startswith("mx1001"))]
    )
    ben = page(client, auth("member_ben"), mine="true")
    assert sorted(names(demo, visits_now, ben["results"])) == sorted(
        ["mx1001-1", "mx1001-2", "mx1001-3", *(v for v in CREATED if v.startswith("mx1001"))]
    )
    cara = page(client, auth("visitor_cara"), mine="true")
    assert names(demo, visits_now, cara["results"]) == ["mx1001-2", "mx1001-102"]
    assert page(client, auth("user_fred"), mine="true")["total"] == 0


def test_mine_false_is_no_filter(client, auth, demo, visits_now):
    h = auth("staff_dan")
    assert page(client, h, mine="false") == page(client, h)


@pytest.mark.parametrize("value", ["1", "yes", "", "TRUE"])
def test_a_malformed_mine_is_a_400(client, auth, value):
    r = client.simulate_get(f"{PREFIX}/sessions", headers=auth("pi_anna"), params={"mine": value})
    assert r.status_code == 400, r.text
    assert r.json["parameter"] == "mine"


# --- together, and with the other list parameters --------------------------------------------------


def test_the_filters_combine(client, auth, demo, visits_now):
    dan = auth("staff_dan")
    assert names(demo, visits_now, page(client, dan, mine="true", when="upcoming")["results"]) == [
        "mx1001-104"
    ]
    # his own visit is on i24, outside the group: nothing
    assert page(client, dan, mine="true", beamLineGroup="mx")["total"] == 0
    r = page(client, demo.admin, when="current", beamLineGroup="mx", mine="true")
    assert names(demo, visits_now, r["results"]) == ["mx1001-101"]
    r = page(client, auth("pi_anna"), when="previous", beamLineGroup="mx", proposal="mx1001")
    assert names(demo, visits_now, r["results"]) == ["mx1001-105", "mx1001-2", "mx1001-1"]
    r = page(client, auth("pi_anna"), when="previous", beamLineName="i24")
    assert names(demo, visits_now, r["results"]) == ["mx1001-3"]


def test_paging_with_cursor_and_skip_keeps_the_default_order(client, auth, demo, visits_now):
    h = auth("pi_anna")
    expected = ["mx1001-105", *ANNA_DEMO_PREVIOUS]
    seen, params = [], {"when": "previous", "limit": 2}
    for _ in range(5):
        r = page(client, h, **params)
        assert r["total"] == 5
        seen += names(demo, visits_now, r["results"])
        if r["next"] is None:
            break
        params = {"when": "previous", "limit": 2, "after": r["next"]}
    assert seen == expected
    r = page(client, h, when="previous", limit=2, skip=2)
    assert names(demo, visits_now, r["results"]) == expected[2:4]
    r = page(client, h, when="previous", limit=2, count="none")
    assert r["total"] is None
    assert names(demo, visits_now, r["results"]) == expected[:2]


def test_a_cursor_of_another_when_is_a_400(client, auth, visits_now):
    h = auth("pi_anna")
    cursor = page(client, h, when="previous", limit=1)["next"]
    assert cursor is not None
    r = client.simulate_get(
        f"{PREFIX}/sessions",
        headers=h,
        params={"when": "upcoming", "limit": 1, "after": cursor},
    )
    assert r.status_code == 400, r.text
    assert r.json["parameter"] == "after"


def test_an_export_honours_the_filters(client, auth, demo, visits_now):
    r = client.simulate_get(
        f"{PREFIX}/sessions",
        headers=auth("pi_anna"),
        params={"when": "upcoming", "format": "csv", "fields": "sessionId"},
    )
    assert r.status_code == 200, r.text
    rows = r.text.split()[1:]
    assert rows == [str(visits_now["mx1001-104"]), str(visits_now["mx1001-103"])]


def test_the_filters_are_not_offered_on_other_lists(client, auth):
    for params in ({"when": "current"}, {"mine": "true"}, {"beamLineGroup": "mx"}):
        r = client.simulate_get(f"{PREFIX}/proposals", headers=auth("pi_anna"), params=params)
        assert r.status_code == 400, r.text


def test_official_old_sessions_count_as_previous_for_staff(client, auth, demo, visits_now):
    r = page(client, auth("staff_dan"), when="previous")
    got = [n for n in names(demo, visits_now, r["results"]) if n != "other"]
    assert got == ["mx1001-105", "cm2001-2", "mx1001-2", "mx1001-1", "mx1002-1"]
    # MariaDB's official data: two i03 sessions of 2016 (three others have no dates)
    assert len(r["results"]) - len(got) == (2 if MARIADB_URL else 0)


def test_a_visit_without_an_end_is_in_no_when(client, auth, demo, visits_now):
    eve = auth("pi_eve")
    assert "cm2001-102" in names(demo, visits_now, page(client, eve)["results"])
    seen = {
        when: names(demo, visits_now, page(client, eve, when=when)["results"])
        for when in ("current", "upcoming", "previous")
    }
    assert seen == {
        "current": [],
        "upcoming": ["cm2001-101"],
        "previous": ["cm2001-2", "cm2001-1", "in2002-1"],
    }


def test_the_openapi_document_describes_the_filters(client):
    doc = client.simulate_get(f"{PREFIX}/openapi.json").json
    params = {p["name"]: p for p in doc["paths"]["/sessions"]["get"]["parameters"] if "name" in p}
    assert params["when"]["schema"] == {
        "type": "string",
        "enum": ["current", "upcoming", "previous"],
    }
    assert params["beamLineGroup"]["schema"] == {"type": "string", "enum": ["mx"]}
    assert params["mine"]["schema"] == {"type": "string", "enum": ["true", "false"]}
    assert "startDate descending" in params["when"]["description"]
    proposals = doc["paths"]["/proposals"]["get"]["parameters"]
    assert not {"when", "mine", "beamLineGroup"} & {p.get("name") for p in proposals}
