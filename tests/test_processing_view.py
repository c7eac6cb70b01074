"""Processing at a glance, `GET /datacollections/processing` (API.md section 8).

Each demo session has four collections (demo/generator.py, demo/pipelines.py): every
one an xia2/DIALS run with one result, reached by its AutoProcIntegration and its
ProcessingJob; the first also an autoPROC run with two results (the second, STARANISO,
reaches further), the second a fast_dp run that failed and the third an xia2 3dii run
still going, both reached only by their ProcessingJob and without results.

What the view answers is checked against what the table routes serve for the same rows
(/autoprocprograms, /autoprocs, /autoprocscalings, /autoprocscalingstatistics), the
programs of a collection counted both through those routes and in SQL. Collections are
found by visit name, so the tests run on SQLite and on MariaDB with the official data.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from .conftest import PREFIX

VIEW = f"{PREFIX}/datacollections/processing"
SHELLS = ("overall", "innerShell", "outerShell")
SHELL = (
    "resolutionLimitLow",
    "resolutionLimitHigh",
    "completeness",
    "rMerge",
    "meanIOverSigI",
    "multiplicity",
)
CELL = ("a", "b", "c", "alpha", "beta", "gamma")
MISSING = 987654321


def listing(client, headers, path: str, **params) -> list[dict]:
    r = client.simulate_get(PREFIX + path, headers=headers, params={"limit": 1000, **params})
    assert r.status_code == 200, (path, params, r.text)
    assert r.json["total"] == len(r.json["results"])
    return r.json["results"]


def collections(client, headers, visit: str) -> list[int]:
    """The visit's collection ids, in the order of their start (the demo's slots 1-4)."""
    rows = listing(client, headers, "/datacollections", session=visit, order_by="startTime")
    return [r["dataCollectionId"] for r in rows]


def view(client, headers, ids, **more):
    text = ",".join(str(i) for i in ids)
    return client.simulate_get(VIEW, headers=headers, params={"dataCollectionId": text, **more})


def programs_in_sql(engine, dc_id: int) -> set[int]:
    """The programs of a collection, read in SQL: by integration, and by processing job."""
    with engine.connect() as conn:
        by_integration = conn.execute(
            sa.text(
                "SELECT autoProcProgramId FROM AutoProcIntegration"
                " WHERE dataCollectionId = :dc AND autoProcProgramId IS NOT NULL"
            ),
            {"dc": dc_id},
        ).scalars()
        by_job = conn.execute(
            sa.text(
                "SELECT p.autoProcProgramId FROM AutoProcProgram p JOIN ProcessingJob j"
                " ON j.processingJobId = p.processingJobId WHERE j.dataCollectionId = :dc"
            ),
            {"dc": dc_id},
        ).scalars()
        return set(by_integration) | set(by_job)


def jobs_in_sql(engine, dc_id: int) -> list[int]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text("SELECT processingJobId FROM ProcessingJob WHERE dataCollectionId = :dc"),
                {"dc": dc_id},
            ).scalars()
        )


def expected_programs(client, headers, engine, dc_id: int) -> dict[int, dict]:
    """The collection's programs as the table routes serve them: by integration, and by
    the collection's processing jobs (ProcessingJob has no route: its ids come from SQL)."""
    ids = {
        i["autoProcProgramId"]
        for i in listing(client, headers, "/autoprocintegrations", dataCollectionId=dc_id)
        if i["autoProcProgramId"] is not None
    }
    for job in jobs_in_sql(engine, dc_id):
        ids |= {
            p["autoProcProgramId"]
            for p in listing(client, headers, "/autoprocprograms", processingJobId=job)
        }
    found = {}
    for i in sorted(ids):
        r = client.simulate_get(f"{PREFIX}/autoprocprograms/{i}", headers=headers)
        assert r.status_code == 200, r.text
        found[i] = r.json
    return found


def expected_best(client, headers, program_id: int) -> dict | None:
    """The best result by its definition, from the table routes: of the scalings of the
    program's AutoProc rows, the one whose overall shell has the lowest
    resolutionLimitHigh (ties: the lowest autoProcScalingId)."""
    candidates = []
    for ap in listing(client, headers, "/autoprocs", autoProcProgramId=program_id):
        for scaling in listing(client, headers, "/autoprocscalings", autoProcId=ap["autoProcId"]):
            stats = listing(
                client,
                headers,
                "/autoprocscalingstatistics",
                autoProcScalingId=scaling["autoProcScalingId"],
                order_by="autoProcScalingStatisticsId",
            )
            shells = {}
            for s in stats:
                shells.setdefault(s["scalingStatisticsType"], s)
            if "overall" in shells:
                high = shells["overall"]["resolutionLimitHigh"]
                key = (high is None, high or 0, scaling["autoProcScalingId"])
                candidates.append((key, ap, scaling, shells))
    if not candidates:
        return None
    _, ap, scaling, shells = min(candidates, key=lambda c: c[0])
    return {
        "autoProcId": ap["autoProcId"],
        "autoProcScalingId": scaling["autoProcScalingId"],
        "spaceGroup": ap["spaceGroup"],
        "cell": {n: ap[f"refinedCell_{n}"] for n in CELL},
        **{s: ({c: shells[s][c] for c in SHELL} if s in shells else None) for s in SHELLS},
    }


def by_id(answer: dict) -> dict[int, dict]:
    return {e["dataCollectionId"]: e for e in answer["results"]}


def program_named(entry: dict, name: str) -> dict:
    (found,) = [p for p in entry["programs"] if p["processingPrograms"] == name]
    return found


# --- what the view answers -------------------------------------------------------------------


@pytest.mark.parametrize("visit", ["mx1001-1", "mx1002-1"])
def test_programs_and_best_results_agree_with_the_table_routes(client, auth, engine, visit):
    h = auth("pi_anna")
    ids = collections(client, h, visit)
    assert len(ids) == 4
    r = view(client, h, ids)
    assert r.status_code == 200, r.text
    assert [e["dataCollectionId"] for e in r.json["results"]] == ids
    counted = 0
    for entry in r.json["results"]:
        dc_id = entry["dataCollectionId"]
        expected = expected_programs(client, h, engine, dc_id)
        assert set(expected) == programs_in_sql(engine, dc_id)  # counted two ways
        assert [p["autoProcProgramId"] for p in entry["programs"]] == sorted(expected)
        for program in entry["programs"]:
            row = expected[program["autoProcProgramId"]]
            for column in (
                "processingPrograms",
                "processingStatus",
                "processingStartTime",
                "processingEndTime",
            ):
                assert program[column] == row[column], (dc_id, column)
            assert program["best"] == expected_best(client, h, program["autoProcProgramId"])
            counted += program["best"] is not None
    # Per collection, in the order of their start: xia2 + autoPROC, xia2 + fast_dp,
    # xia2 + xia2 3dii, xia2 alone; the results are xia2's four and autoPROC's one.
    names = [sorted(p["processingPrograms"] for p in e["programs"]) for e in r.json["results"]]
    assert names == [
        ["autoPROC", "xia2 dials"],
        ["fast_dp", "xia2 dials"],
        ["xia2 3dii", "xia2 dials"],
        ["xia2 dials"],
    ]
    assert counted == 5


def test_the_best_result_is_the_one_reaching_the_highest_resolution(client, auth):
    h = auth("pi_anna")
    first = collections(client, h, "mx1001-1")[0]
    autoproc = program_named(by_id(view(client, h, [first]).json)[first], "autoPROC")
    results = listing(client, h, "/autoprocs", autoProcProgramId=autoproc["autoProcProgramId"])
    assert len(results) == 2  # the isotropic result, then the STARANISO one
    overall = {}
    for ap in results:
        (scaling,) = listing(client, h, "/autoprocscalings", autoProcId=ap["autoProcId"])
        (stats,) = listing(
            client,
            h,
            "/autoprocscalingstatistics",
            autoProcScalingId=scaling["autoProcScalingId"],
            scalingStatisticsType="overall",
        )
        overall[ap["autoProcId"]] = stats["resolutionLimitHigh"]
    best = autoproc["best"]
    later = max(overall)
    assert best["autoProcId"] == later  # not the first one found
    assert overall[later] < overall[min(overall)]
    assert best["overall"]["resolutionLimitHigh"] == overall[later]
    assert best["outerShell"]["resolutionLimitHigh"] == overall[later]
    assert best["innerShell"]["resolutionLimitHigh"] > best["overall"]["resolutionLimitHigh"]
    assert best["spaceGroup"] == "P43212"  # lysozyme's


def test_a_program_without_results_has_best_null(client, auth):
    h = auth("pi_anna")
    ids = collections(client, h, "mx1001-1")
    found = by_id(view(client, h, ids[1:3]).json)
    failed = program_named(found[ids[1]], "fast_dp")
    assert failed["processingStatus"] == 0 and failed["processingEndTime"] is not None
    assert failed["best"] is None
    running = program_named(found[ids[2]], "xia2 3dii")
    assert running["processingStatus"] is None and running["processingEndTime"] is None
    assert running["processingStartTime"] is not None and running["best"] is None
    for i in ids[1:3]:
        xia2 = program_named(found[i], "xia2 dials")
        assert xia2["processingStatus"] == 1 and xia2["best"]["overall"] is not None


def test_a_collection_without_programs_has_an_empty_list(client, auth):
    admin = auth("admin1")
    anna = auth("pi_anna")
    some = listing(client, anna, "/datacollections", session="mx1001-1")[0]
    r = client.simulate_post(
        f"{PREFIX}/datacollections",
        headers=admin,
        json={"dataCollectionGroupId": some["dataCollectionGroupId"], "comments": "unprocessed"},
    )
    assert r.status_code == 201, r.text
    new = r.json["dataCollectionId"]
    try:
        r = view(client, anna, [some["dataCollectionId"], new])
        assert r.status_code == 200
        assert [e["dataCollectionId"] for e in r.json["results"]] == [some["dataCollectionId"], new]
        assert r.json["results"][1]["programs"] == []
        assert r.json["results"][0]["programs"]
    finally:
        assert (
            client.simulate_delete(f"{PREFIX}/datacollections/{new}", headers=admin).status_code
            == 204
        )


def test_results_follow_the_order_given_each_id_once(client, auth):
    h = auth("pi_anna")
    ids = collections(client, h, "mx1001-1") + collections(client, h, "mx1002-1")
    asked = [ids[5], ids[0], ids[5], ids[3], ids[0], ids[7]]
    r = view(client, h, asked)
    assert r.status_code == 200
    assert [e["dataCollectionId"] for e in r.json["results"]] == [ids[5], ids[0], ids[3], ids[7]]
    one_by_one = [by_id(view(client, h, [i]).json)[i] for i in (ids[5], ids[0], ids[3], ids[7])]
    assert r.json["results"] == one_by_one


def test_an_id_that_does_not_exist_is_absent(client, auth):
    h = auth("admin1")
    first = collections(client, h, "mx1001-1")[0]
    r = view(client, h, [MISSING, first, 0])
    assert r.status_code == 200
    assert [e["dataCollectionId"] for e in r.json["results"]] == [first]
    assert view(client, h, [MISSING]).json == {"results": []}


# --- who sees what ---------------------------------------------------------------------------


def test_collections_the_caller_may_not_see_are_absent(client, auth):
    admin = auth("admin1")
    anna = collections(client, admin, "mx1001-1")  # pi_anna's
    eve = collections(client, admin, "cm2001-1")  # pi_eve's
    as_eve = view(client, auth("pi_eve"), anna)
    assert as_eve.status_code == 200 and as_eve.json == {"results": []}
    mixed = [anna[0], eve[0], anna[1], eve[1]]
    seen = view(client, auth("pi_eve"), mixed).json["results"]
    assert [e["dataCollectionId"] for e in seen] == [eve[0], eve[1]]
    seen = view(client, auth("pi_anna"), mixed).json["results"]
    assert [e["dataCollectionId"] for e in seen] == [anna[0], anna[1]]
    assert view(client, auth("user_fred"), mixed).json == {"results": []}
    everything = view(client, admin, mixed).json["results"]
    assert [e["dataCollectionId"] for e in everything] == mixed
    # What is shown of a visible collection is the same whoever asks.
    assert everything[0] == view(client, auth("pi_anna"), [anna[0]]).json["results"][0]


def test_a_visitor_sees_only_the_collections_of_their_visit(client, auth):
    admin = auth("admin1")
    theirs = collections(client, admin, "mx1001-2")
    other = collections(client, admin, "mx1001-1")
    seen = view(client, auth("visitor_cara"), other + theirs).json["results"]
    assert [e["dataCollectionId"] for e in seen] == theirs


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({}, "dataCollectionId"),
        ({"dataCollectionId": ""}, "dataCollectionId"),
        ({"dataCollectionId": "1,,2"}, "dataCollectionId"),
        ({"dataCollectionId": "12a"}, "dataCollectionId"),
        ({"dataCollectionId": "-3"}, "dataCollectionId"),
        ({"dataCollectionId": "1.5"}, "dataCollectionId"),
        ({"dataCollectionId": "9" * 40}, "dataCollectionId"),
        ({"dataCollectionId": ["1", "2"]}, "dataCollectionId"),
        ({"dataCollectionId": "1", "limit": "5"}, "limit"),
        ({"dataCollectionId": "1", "session": "mx1001-1"}, "session"),
    ],
)
def test_bad_input_is_a_400_naming_the_parameter(client, auth, params, parameter):
    r = client.simulate_get(VIEW, headers=auth("pi_anna"), params=params)
    assert r.status_code == 400, r.text
    assert r.json["parameter"] == parameter


def test_at_most_max_limit_ids(client, auth, settings):
    most = settings[("query", "max_limit")]
    h = auth("pi_anna")
    r = view(client, h, range(1, most + 2))
    assert r.status_code == 400 and r.json["parameter"] == "dataCollectionId"
    assert str(most) in r.json["description"]
    assert view(client, h, range(1, most + 1)).status_code == 200
    assert view(client, h, [*range(1, most + 1), 1]).status_code == 200  # a repeat is one id


def test_a_token_is_needed(client):
    assert client.simulate_get(VIEW, params={"dataCollectionId": "1"}).status_code == 401


# --- the route -------------------------------------------------------------------------------


def test_the_view_and_the_item_route_live_side_by_side(client, auth):
    h = auth("pi_anna")
    first = collections(client, h, "mx1001-1")[0]
    item = client.simulate_get(f"{PREFIX}/datacollections/{first}", headers=h)
    assert item.status_code == 200 and item.json["dataCollectionId"] == first
    assert client.simulate_get(f"{PREFIX}/datacollections/{MISSING}", headers=h).status_code == 404
    r = view(client, h, [first])
    assert r.status_code == 200 and set(r.json) == {"results"}
    again = client.simulate_get(
        VIEW,
        headers={**h, "If-None-Match": r.headers["etag"]},
        params={"dataCollectionId": str(first)},
    )
    assert again.status_code == 304


def test_the_openapi_document_describes_the_view(client):
    doc = client.simulate_get(f"{PREFIX}/openapi.json").json
    op = doc["paths"]["/datacollections/processing"]["get"]
    assert op["tags"] == ["processing"]
    (param,) = [p for p in op["parameters"] if p.get("name") == "dataCollectionId"]
    assert param["required"] is True
    schema = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/DataCollectionProcessingList"}
    schemas = doc["components"]["schemas"]
    assert {"ProcessingProgram", "ProcessingResult", "ProcessingShell", "UnitCell"} <= set(schemas)
    assert set(schemas["ProcessingShell"]["properties"]) == set(SHELL)
    assert {"400", "401", "503"} <= set(op["responses"])
    module = client.simulate_get(f"{PREFIX}/openapi.json", params={"module": "processing"}).json
    assert (
        module["paths"]["/datacollections/processing"]
        == doc["paths"]["/datacollections/processing"]
    )
