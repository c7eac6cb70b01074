"""`GET /events`, a visit's timeline (API.md section 8), through HTTP.

The demo data gives every visit two data collection groups of two collections,
a robot load and unload, an XRF spectrum and an energy scan; in the visits
numbered 2 (mx1001-2, cm2001-2) the second collection of the SAD group was
stopped and its processing failed, and the unload failed. Each entry is checked
against the lists of its own table: the same rows, counted two ways.
"""

from __future__ import annotations

import falcon.testing
import pytest
import sqlalchemy as sa

from ispyb_falcon.app import create_app
from ispyb_falcon.demo.sqlite import create_demo_database

from .conftest import PREFIX

VISIT = "mx1001-2"
PER_VISIT = {"dc": 2, "robot": 2, "xrf": 1, "energyscan": 1}
ITEMS = {  # type -> (list route, key)
    "robot": ("/robotactions", "robotActionId"),
    "xrf": ("/xfespectra", "xfeFluorescenceSpectrumId"),
    "energyscan": ("/energyscans", "energyScanId"),
}
FIELDS = {
    "type", "id", "startTime", "endTime", "session", "sessionId", "blSampleId", "count",
    "images", "experimentType", "firstCollectionStartTime", "lastCollectionEndTime", "item",
}  # fmt: skip


def get(client, headers, path="/events", **params):
    return client.simulate_get(PREFIX + path, params=params, headers=headers)


def events(client, headers, **params) -> dict:
    r = get(client, headers, limit="1000", **params)
    assert r.status_code == 200, r.text
    return r.json


def rows(client, headers, path, **params) -> list[dict]:
    r = get(client, headers, path, limit="1000", **params)
    assert r.status_code == 200, r.text
    return r.json["results"]


def kinds(page: dict) -> dict[str, int]:
    found: dict[str, int] = {}
    for e in page["results"]:
        found[e["type"]] = found.get(e["type"], 0) + 1
    return found


def order_key(e: dict):
    return (e["startTime"] or "", ["dc", "robot", "xrf", "energyscan"].index(e["type"]), e["id"])


# -- entries ----------------------------------------------------------------------------


def test_a_visits_events_are_its_groups_robot_actions_spectra_and_scans(client, auth):
    page = events(client, auth("pi_anna"), session=VISIT)
    assert page["total"] == len(page["results"]) == sum(PER_VISIT.values())
    assert kinds(page) == PER_VISIT
    assert {"total", "skip", "limit", "next", "results"} == set(page) and page["next"] is None
    for e in page["results"]:
        assert set(e) == FIELDS
        assert e["session"] == VISIT and isinstance(e["sessionId"], int)
        assert isinstance(e["id"], int) and e["startTime"][10] == "T"
    # Newest first, and ties in a fixed order; oldest first with order=asc.
    keys = [order_key(e) for e in page["results"]]
    assert keys == sorted(keys, reverse=True)
    asc = events(client, auth("pi_anna"), session=VISIT, order="asc")["results"]
    assert asc == page["results"][::-1]


def test_dc_entries_are_the_visits_groups_with_their_collections(client, auth):
    h = auth("pi_anna")
    dc = [e for e in events(client, h, session=VISIT)["results"] if e["type"] == "dc"]
    groups = {
        g["dataCollectionGroupId"]: g
        for g in rows(client, h, "/datacollectiongroups", session=VISIT)
    }
    assert {e["id"] for e in dc} == set(groups)
    for e in dc:
        group = groups[e["id"]]
        collections = rows(client, h, "/datacollections", dataCollectionGroupId=str(e["id"]))
        total = get(client, h, "/datacollections", dataCollectionGroupId=str(e["id"])).json["total"]
        assert e["count"] == total == len(collections) == 2
        assert e["startTime"] == group["startTime"] and e["endTime"] == group["endTime"]
        assert e["blSampleId"] == group["blSampleId"]
        assert e["experimentType"] == group["experimentType"]
        assert e["images"] == sum(c["numberOfImages"] for c in collections)
        assert e["firstCollectionStartTime"] == min(c["startTime"] for c in collections)
        assert e["lastCollectionEndTime"] == max(c["endTime"] for c in collections)
        last = max(collections, key=lambda c: c["dataCollectionId"])
        assert e["item"] == last  # the row as /datacollections serves it, every field
        one = get(client, h, f"/datacollections/{last['dataCollectionId']}").json
        assert e["item"] == one


@pytest.mark.parametrize("kind", sorted(ITEMS))
def test_other_entries_are_the_rows_of_their_tables(client, auth, kind):
    h = auth("pi_anna")
    path, key = ITEMS[kind]
    listed = rows(client, h, path, session=VISIT)
    found = [e for e in events(client, h, session=VISIT)["results"] if e["type"] == kind]
    assert sorted((e["item"] for e in found), key=lambda r: r[key]) == listed
    for e in found:
        assert e["id"] == e["item"][key] and e["count"] == 1
        assert e["images"] is None and e["experimentType"] is None
        assert e["blSampleId"] == e["item"]["blSampleId" if kind != "robot" else "blsampleId"]


def test_a_group_given_lists_its_collections_one_entry_each(client, auth):
    h = auth("pi_anna")
    group = rows(client, h, "/datacollectiongroups", session=VISIT)[1]
    gid = str(group["dataCollectionGroupId"])
    page = events(client, h, dataCollectionGroupId=gid)
    collections = rows(client, h, "/datacollections", dataCollectionGroupId=gid)
    assert page["total"] == len(collections) == 2 and kinds(page) == {"dc": 2}
    by_id = {c["dataCollectionId"]: c for c in collections}
    for e in page["results"]:
        c = by_id[e["id"]]
        assert e["item"] == c and e["count"] == 1 and e["images"] == c["numberOfImages"]
        assert (e["startTime"], e["endTime"]) == (c["startTime"], c["endTime"])
        assert e["experimentType"] == group["experimentType"]
    # The group's collections only: other kinds asked for add nothing.
    assert events(client, h, dataCollectionGroupId=gid, eventType="robot")["total"] == 0


# -- filters ----------------------------------------------------------------------------


def test_event_type_picks_kinds(client, auth):
    h = auth("pi_anna")
    assert kinds(events(client, h, session=VISIT, eventType="robot")) == {"robot": 2}
    both = events(client, h, session=VISIT, eventType="xrf,energyscan")
    assert kinds(both) == {"xrf": 1, "energyscan": 1} and both["total"] == 2


def test_sample_protein_proposal_and_time_filters(client, auth):
    h = auth("pi_anna")
    everything = events(client, h, session=VISIT)["results"]
    sample = everything[0]["blSampleId"]
    by_sample = events(client, h, session=VISIT, blSampleId=str(sample))["results"]
    assert by_sample == [e for e in everything if e["blSampleId"] == sample] != []

    sample_row = get(client, h, f"/samples/{sample}").json
    protein = get(client, h, f"/crystals/{sample_row['crystalId']}").json["proteinId"]
    of_protein = {
        s["blSampleId"] for s in rows(client, h, "/samples", proposal="mx1001")
        if get(client, h, f"/crystals/{s['crystalId']}").json["proteinId"] == protein
    }  # fmt: skip
    by_protein = events(client, h, session=VISIT, proteinId=str(protein))["results"]
    assert by_protein == [e for e in everything if e["blSampleId"] in of_protein] != []

    proposal = events(client, h, proposal="mx1001")
    assert proposal["total"] == 3 * sum(PER_VISIT.values())
    assert {e["session"] for e in proposal["results"]} == {"mx1001-1", "mx1001-2", "mx1001-3"}

    times = sorted(e["startTime"] for e in everything)
    low, high = times[2], times[-3]
    ranged = events(client, h, session=VISIT, **{"startTime[gte]": low, "startTime[lte]": high})
    assert [e["startTime"] for e in ranged["results"]] == sorted(
        (t for t in times if low <= t <= high), reverse=True
    )
    assert ranged["total"] == len(times) - 4
    day = events(client, h, session=VISIT, **{"startTime[lte]": times[0][:10]})
    assert day["total"] == 0  # a date alone is its midnight, before the visit's first event


def test_status_filters_follow_run_robot_and_processing_status(client, auth):
    h = auth("pi_anna")
    groups = rows(client, h, "/datacollectiongroups", session=VISIT)
    by_status: dict[str, set] = {
        s: set() for s in ("successful", "failed", "processed", "processingFailed")
    }
    for g in groups:
        for c in rows(
            client, h, "/datacollections", dataCollectionGroupId=str(g["dataCollectionGroupId"])
        ):
            key = "successful" if "success" in c["runStatus"].lower() else "failed"
            by_status[key].add(g["dataCollectionGroupId"])
            # its programs, reached by an integration or a processing job, as the
            # processing view lists them (a running one, status null, is neither)
            (processing,) = get(
                client,
                h,
                "/datacollections/processing",
                dataCollectionId=str(c["dataCollectionId"]),
            ).json["results"]
            for program in processing["programs"]:
                status = {1: "processed", 0: "processingFailed"}.get(program["processingStatus"])
                if status:
                    by_status[status].add(g["dataCollectionGroupId"])
    robots = rows(client, h, "/robotactions", session=VISIT)
    assert by_status["failed"] and by_status["processingFailed"]  # the demo's stopped collection
    for status, expected_groups in by_status.items():
        page = events(client, h, session=VISIT, status=status)
        assert {e["id"] for e in page["results"] if e["type"] == "dc"} == expected_groups, status
        robot = {e["id"] for e in page["results"] if e["type"] == "robot"}
        expected_robot = {
            r["robotActionId"] for r in robots
            if (status == "successful" and r["status"] == "SUCCESS")
            or (status == "failed" and r["status"] not in (None, "SUCCESS"))
        }  # fmt: skip
        assert robot == expected_robot, status
        assert set(kinds(page)) <= {"dc", "robot"}  # spectra and scans have no status
    failed = events(
        client,
        h,
        session=VISIT,
        status="failed",
        dataCollectionGroupId=str(min(by_status["failed"])),
    )
    assert [e["item"]["runStatus"] for e in failed["results"]] == ["DataCollection Stopped"]


# -- paging -----------------------------------------------------------------------------


def test_paging_by_skip_and_by_cursor_gives_every_entry_once(client, auth):
    h = auth("pi_anna")
    whole = events(client, h, proposal="mx1001")["results"]
    by_skip = []
    for skip in range(0, len(whole), 4):
        r = get(client, h, proposal="mx1001", limit="4", skip=str(skip))
        assert r.json["total"] == len(whole)
        by_skip += r.json["results"]
    assert by_skip == whole
    walked, after, pages = [], None, 0
    while True:
        params = {"proposal": "mx1001", "limit": "5", **({"after": after} if after else {})}
        r = get(client, h, **params)
        assert r.status_code == 200, r.text
        assert 'rel="first"' in r.headers["Link"]
        walked += r.json["results"]
        pages += 1
        after = r.json["next"]
        if after is None:
            break
        assert f"after={after}" in r.headers["Link"] and r.json["total"] == len(whole)
    assert walked == whole and pages == -(-len(whole) // 5)
    asc = events(client, h, proposal="mx1001", order="asc")["results"]
    first = get(client, h, proposal="mx1001", order="asc", limit="7").json
    rest = get(client, h, proposal="mx1001", order="asc", after=first["next"], limit="1000").json
    assert first["results"] + rest["results"] == asc


def test_a_group_without_a_start_time_is_last_and_the_cursor_walks_past_it(client, auth):
    """A group with no startTime (nor a collection yet): last newest first, first oldest
    first, and a cursor that stops on it (a NULL sort value) still walks every entry once."""
    admin = auth("admin1")
    session_id = get(client, admin, "/sessions/mx1001-3").json["sessionId"]
    r = client.simulate_post(
        f"{PREFIX}/datacollectiongroups",
        json={"sessionId": session_id, "comments": "timeline probe"},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    probe = r.json["dataCollectionGroupId"]
    try:
        h = auth("pi_anna")
        for order in ("desc", "asc"):
            whole = events(client, h, proposal="mx1001", order=order)["results"]
            assert len(whole) == 3 * sum(PER_VISIT.values()) + 1
            at = 0 if order == "asc" else -1
            assert (whole[at]["id"], whole[at]["startTime"], whole[at]["item"]) == (
                probe,
                None,
                None,
            )
            assert whole[at]["count"] == 0
            for size in (1, 3):
                walked, after = [], None
                while True:
                    extra = {"after": after} if after else {}
                    page = get(client, h, proposal="mx1001", order=order, limit=str(size), **extra)
                    assert page.status_code == 200, page.text
                    walked += page.json["results"]
                    after = page.json["next"]
                    if after is None:
                        break
                assert walked == whole, (order, size)
    finally:
        current = get(client, admin, f"/datacollectiongroups/{probe}").headers["ETag"]
        deleted = client.simulate_delete(
            f"{PREFIX}/datacollectiongroups/{probe}", headers={**admin, "If-Match": current}
        )
        assert deleted.status_code == 204, deleted.text


def test_an_unchanged_timeline_is_a_304(client, auth):
    h = auth("pi_anna")
    first = get(client, h, session=VISIT)
    again = get(client, {**h, "If-None-Match": first.headers["ETag"]}, session=VISIT)
    assert again.status_code == 304


def test_count_none_and_a_cursor_of_another_query(client, auth):
    h = auth("pi_anna")
    r = get(client, h, session=VISIT, count="none", limit="2")
    assert r.status_code == 200 and r.json["total"] is None and len(r.json["results"]) == 2
    assert get(client, h, session=VISIT, count="planned").json["total"] is not None
    other = get(client, h, session="mx1001-1", after=r.json["next"])
    assert other.status_code == 400 and other.json["parameter"] == "after"
    both = get(client, h, session=VISIT, after=r.json["next"], skip="2")
    assert both.status_code == 400


# -- visibility -------------------------------------------------------------------------


def test_each_caller_sees_the_events_of_their_visits_only(client, auth):
    expected = {
        "pi_anna": {"mx1001-1", "mx1001-2", "mx1001-3", "mx1002-1"},
        "member_ben": {"mx1001-1", "mx1001-2", "mx1001-3"},
        "visitor_cara": {"mx1001-2"},
        "pi_eve": {"cm2001-1", "cm2001-2", "in2002-1"},
    }
    for login, visits in expected.items():
        page = events(client, auth(login))
        assert {e["session"] for e in page["results"]} == visits, login
        assert page["total"] == len(visits) * sum(PER_VISIT.values()), login
    staff = {e["session"] for e in events(client, auth("staff_dan"))["results"]}
    assert {"mx1001-1", "mx1001-2", "mx1002-1", "cm2001-2"} <= staff  # i03 and i04
    assert not staff & {"mx1001-3", "cm2001-1", "in2002-1"}  # i24
    admin = {e["session"] for e in events(client, auth("admin1"))["results"]}
    assert {"mx1001-1", "cm2001-1", "in2002-1"} <= admin


def test_a_stranger_sees_nothing_and_another_visit_is_empty_not_an_error(client, auth):
    assert events(client, auth("user_fred"))["total"] == 0
    assert events(client, auth("user_fred"), session=VISIT)["total"] == 0
    assert events(client, auth("member_ben"), session="mx1002-1")["total"] == 0
    assert events(client, auth("member_ben"), proposal="mx1002")["total"] == 0
    group = rows(client, auth("pi_anna"), "/datacollectiongroups", session="mx1002-1")[0]
    gid = str(group["dataCollectionGroupId"])
    assert events(client, auth("member_ben"), dataCollectionGroupId=gid)["total"] == 0
    assert events(client, auth("pi_anna"), dataCollectionGroupId=gid)["total"] == 2
    assert get(client, {}, session=VISIT).status_code == 401


# -- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"eventType": "dc,photo"}, "eventType"),
        ({"eventType": ""}, "eventType"),
        ({"status": "done"}, "status"),
        ({"sesion": VISIT}, "sesion"),
        ({"startTime[gt]": "2026-01-01"}, "startTime[gt]"),
        ({"startTime[gte]": "yesterday"}, "startTime[gte]"),
        ({"startTime[lte]": "2026-02-30T10:00"}, "startTime[lte]"),
        ({"blSampleId": "abc"}, "blSampleId"),
        ({"dataCollectionGroupId": "-1"}, "dataCollectionGroupId"),
        ({"session": "not a visit"}, "session"),
        ({"order": "newest"}, "order"),
        ({"count": "some"}, "count"),
        ({"limit": "0"}, "limit"),
        ({"after": "garbage"}, "after"),
        ({"fields": "id"}, "fields"),
    ],
)
def test_bad_input_is_a_400_naming_the_parameter(client, auth, params, parameter):
    r = get(client, auth("pi_anna"), **params)
    assert r.status_code == 400, r.text
    assert r.json["parameter"] == parameter


def test_csv_is_not_offered(client, auth):
    r = client.simulate_get(f"{PREFIX}/events", headers={**auth("pi_anna"), "Accept": "text/csv"})
    assert r.status_code == 406


def test_the_openapi_document_describes_events(client):
    doc = client.simulate_get(f"{PREFIX}/openapi.json").json
    op = doc["paths"]["/events"]["get"]
    assert op["operationId"] == "listEvents" and op["tags"] == ["experiments"]
    names = {p.get("name") or p["$ref"].rsplit("/", 1)[1] for p in op["parameters"]}
    assert {"session", "proposal", "eventType", "status", "startTime[gte]", "after"} <= names
    entry = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert set(entry["properties"]["results"]["items"]["properties"]) == FIELDS


def test_a_site_without_xrf_spectra_serves_the_other_events(settings, tmp_path, catalog):
    url = f"sqlite:///{tmp_path / 'no-xrf.sqlite'}"
    create_demo_database(url, catalog.schemas, scale=1)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE XFEFluorescenceSpectrum"))
    engine.dispose()
    app = create_app(settings.replace(database_url=url, database_schema_check="warn"))
    c = falcon.testing.TestClient(app)
    token = c.simulate_post(f"{PREFIX}/auth/login", json={"login": "pi_anna", "password": "x"})
    h = {"Authorization": f"Bearer {token.json['token']}"}
    page = c.simulate_get(f"{PREFIX}/events", params={"session": VISIT}, headers=h).json
    assert kinds(page) == {**{k: v for k, v in PER_VISIT.items() if k != "xrf"}}
    r = c.simulate_get(f"{PREFIX}/events", params={"eventType": "xrf"}, headers=h)
    assert r.status_code == 400 and "XFEFluorescenceSpectrum" in r.json["description"]
