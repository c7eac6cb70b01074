"""`?embed=`: a row's parents and child counts in the same request (API.md section 8).

Every declared embedding is checked against the routes it stands for, through
HTTP: an embedded parent is the row its own route serves (`GET /samples/{id}`),
reached by following the declared foreign keys one item request at a time; a
count is the total of the child list (`/datacollections?session=X`). Then what
may not be seen: a data collection of a visit naming a sample of another
proposal is served to a member of the visit with `"sample": null`, and the
sample's count of collections leaves out what its own proposal's PI may not see.
Runs on SQLite and, with ISPYB_FALCON_TEST_DATABASE_URL, on MariaDB.
"""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
import sqlalchemy as sa

from ispyb_falcon.resources import MODULES
from ispyb_falcon.resources.declare import Count, Parent

from .conftest import PREFIX

DECLARED = [r for routes in MODULES.values() for r in routes if r.path]
WITH_EMBEDS = [r for r in DECLARED if r.embeds]
PATHS = {r.table: r.path for r in DECLARED if not r.nested}
KEYS = {
    "DataCollection": "dataCollectionId",
    "DataCollectionGroup": "dataCollectionGroupId",
    "BLSample": "blSampleId",
    "Crystal": "crystalId",
    "Container": "containerId",
    "Dewar": "dewarId",
    "Shipping": "shippingId",
    "BLSession": "sessionId",
    "Proposal": "proposalId",
    "Image": "imageId",
    "EnergyScan": "energyScanId",
}
CALLERS = ("pi_anna", "visitor_cara", "staff_dan", "gus_super")


def get(client, headers, path, **params):
    r = client.simulate_get(PREFIX + path, params=params, headers=headers)
    assert r.status_code == 200, (path, params, r.text)
    return r.json


def parents(route) -> list[Parent]:
    return [e for e in route.embeds if isinstance(e, Parent)]


def counts(route) -> list[Count]:
    return [e for e in route.embeds if isinstance(e, Count)]


def followed(client, auth, login: str, row: dict, e: Parent) -> dict | None:
    """The parent as the routes serve it: each hop read by an admin, the parent itself by
    the caller (a 404 is a parent the caller may not see: null)."""
    here = row
    for i, via in enumerate(e.path):
        value = here[via.column]
        if value is None:
            return None
        who = login if i == len(e.path) - 1 else "gus_super"
        r = client.simulate_get(f"{PREFIX}{PATHS[via.table]}/{value}", headers=auth(who))
        if r.status_code == 404:
            return None
        assert r.status_code == 200, r.text
        here = r.json
    return here


def child_list(e: Count, row: dict) -> tuple[str, dict]:
    """The list whose total a count stands for."""
    if e.name == "dataCollections" and e.path[-1].table == "BLSession":
        return "/datacollections", {"session": str(row["sessionId"])}
    (via,) = e.path
    return PATHS[e.table], {via.column: str(row[via.parent_key])}


@pytest.mark.parametrize("login", CALLERS)
@pytest.mark.parametrize("route", [r for r in WITH_EMBEDS if parents(r)], ids=lambda r: r.path)
def test_embedded_parents_are_the_rows_their_own_routes_serve(client, auth, route, login):
    names = [e.name for e in parents(route)]
    page = get(client, auth(login), route.path, limit="8", embed=",".join(names))
    if not page["results"]:
        assert login == "visitor_cara" and route.path in ("/shippings", "/dewars")
        return
    for row in page["results"]:
        for e in parents(route):
            assert row[e.name] == followed(client, auth, login, row, e), (e.name, row)
    first = page["results"][0]
    key = KEYS[route.table]
    item = get(client, auth(login), f"{route.path}/{first[key]}", embed=",".join(names))
    assert item == first


@pytest.mark.parametrize("login", CALLERS)
@pytest.mark.parametrize("route", [r for r in WITH_EMBEDS if counts(r)], ids=lambda r: r.path)
def test_counts_are_the_totals_of_the_child_lists(client, auth, route, login):
    names = [e.name for e in counts(route)]
    page = get(client, auth(login), route.path, limit="6", embed=",".join(names))
    if not page["results"]:
        assert login == "visitor_cara" and route.path in ("/shippings", "/dewars")
        return
    nonzero = 0
    for row in page["results"]:
        for e in counts(route):
            path, params = child_list(e, row)
            assert row[e.name] == get(client, auth(login), path, **params)["total"], (e, row)
            nonzero += row[e.name] > 0
    if login in ("pi_anna", "visitor_cara"):  # who sees only demo rows, all with children
        assert nonzero
    key = KEYS[route.table]
    first = page["results"][0]
    item = get(client, auth(login), f"{route.path}/{first[key]}", embed=",".join(names))
    assert {n: item[n] for n in names} == {n: first[n] for n in names}


def test_a_count_holds_only_the_rows_the_caller_may_see(client, auth):
    """A visitor of one session of mx1001 sees one of its three sessions."""
    seen = {}
    for login in ("visitor_cara", "member_ben", "gus_super"):
        mx1001 = get(client, auth(login), "/proposals/mx1001", embed="sessions")
        seen[login] = mx1001["sessions"]
        assert seen[login] == get(client, auth(login), "/sessions", proposal="mx1001")["total"]
    assert seen == {"visitor_cara": 1, "member_ben": 3, "gus_super": 3}


@pytest.fixture()
def foreign_sample_collection(client, auth, engine):
    """A data collection of visit mx1001-1 naming a sample of proposal cm2001 (an admin
    may make one); removed afterwards."""
    admin = auth("admin1")
    group = get(client, admin, "/datacollectiongroups", session="mx1001-1", limit="1")
    sample = get(client, admin, "/samples", proposal="cm2001", limit="1", order_by="name")
    group, sample = group["results"][0], sample["results"][0]
    r = client.simulate_post(
        f"{PREFIX}/datacollections",
        json={
            "dataCollectionGroupId": group["dataCollectionGroupId"],
            "BLSAMPLEID": sample["blSampleId"],
            "imagePrefix": "embed-foreign-sample",
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    dc = r.json["dataCollectionId"]
    try:
        yield dc, sample, group
    finally:
        with engine.begin() as conn:
            conn.execute(
                sa.text("DELETE FROM DataCollection WHERE dataCollectionId = :d"), {"d": dc}
            )


def test_a_parent_the_caller_may_not_see_is_null_and_its_row_still_served(
    client, auth, foreign_sample_collection
):
    dc, sample, group = foreign_sample_collection
    ben = auth("member_ben")  # member of mx1001, nothing of cm2001
    assert (
        client.simulate_get(f"{PREFIX}/samples/{sample['blSampleId']}", headers=ben).status_code
        == 404
    )
    page = get(
        client, ben, "/datacollections", session="mx1001-1", embed="sample,group", limit="100"
    )
    mine = [row for row in page["results"] if row["dataCollectionId"] == dc]
    assert len(mine) == 1 and mine[0]["BLSAMPLEID"] == sample["blSampleId"]
    assert mine[0]["sample"] is None
    assert mine[0]["group"]["dataCollectionGroupId"] == group["dataCollectionGroupId"]
    others = [row for row in page["results"] if row["dataCollectionId"] != dc]
    assert others and all(row["sample"] is not None for row in others if row["BLSAMPLEID"])
    item = get(client, ben, f"/datacollections/{dc}", embed="sample")
    assert item["sample"] is None and item["dataCollectionId"] == dc
    narrowed = get(client, ben, f"/datacollections/{dc}", embed="sample", fields="sample.name")
    assert narrowed == {"sample": None}
    # NDJSON and CSV give no more than JSON does.
    r = client.simulate_get(
        f"{PREFIX}/datacollections",
        params={"session": "mx1001-1", "embed": "sample", "format": "csv"},
        headers=ben,
    )
    rows = list(csv.DictReader(io.StringIO(r.text)))
    foreign = [x for x in rows if x["dataCollectionId"] == str(dc)]
    assert foreign and all(v == "" for k, v in foreign[0].items() if k.startswith("sample."))
    assert sample["name"] not in r.text

    # Whoever may see the sample gets it.
    gus = get(client, auth("gus_super"), f"/datacollections/{dc}", embed="sample")
    assert gus["sample"] == get(client, auth("gus_super"), f"/samples/{sample['blSampleId']}")


def test_counts_leave_out_rows_of_others(client, auth, foreign_sample_collection):
    """The cm2001 sample's collections: its PI does not see the one in mx1001's visit."""
    dc, sample, _ = foreign_sample_collection
    sid = sample["blSampleId"]
    by = {}
    for login in ("pi_eve", "gus_super"):
        headers = auth(login)
        by[login] = get(client, headers, f"/samples/{sid}", embed="dataCollections")[
            "dataCollections"
        ]
        listed = get(client, headers, "/datacollections", BLSAMPLEID=str(sid), limit="100")
        assert by[login] == listed["total"]
        assert (dc in [x["dataCollectionId"] for x in listed["results"]]) == (login == "gus_super")
    assert by["gus_super"] == by["pi_eve"] + 1


def test_unknown_names_are_a_400_listing_the_known_ones(client, auth):
    r = client.simulate_get(
        f"{PREFIX}/datacollections", params={"embed": "sample,nope"}, headers=auth("pi_anna")
    )
    assert r.status_code == 400 and r.json["parameter"] == "embed"
    assert "nope" in r.json["description"]
    for name in ("group", "session", "sample", "detector", "images"):
        assert name in r.json["description"]
    item = client.simulate_get(
        f"{PREFIX}/sessions/mx1001-1", params={"embed": "dataCollection"}, headers=auth("pi_anna")
    )
    assert item.status_code == 400 and "dataCollections" in item.json["description"]
    empty = client.simulate_get(f"{PREFIX}/samples", params={"embed": ","}, headers=auth("pi_anna"))
    assert empty.status_code == 400 and empty.json["parameter"] == "embed"


@pytest.mark.parametrize("path", ["/persons", "/proposals/mx1001/persons", "/autoprocprograms"])
def test_embed_on_a_route_that_declares_none_is_a_400(client, auth, path):
    r = client.simulate_get(PREFIX + path, params={"embed": "sample"}, headers=auth("pi_anna"))
    assert r.status_code == 400 and r.json["parameter"] == "embed"
    assert "nothing to embed" in r.json["description"]


def test_fields_name_embedded_columns(client, auth):
    anna = auth("pi_anna")
    page = get(
        client,
        anna,
        "/datacollections",
        session="mx1001-1",
        embed="sample,group",
        fields="sample.name,dataCollectionId,sample.blSampleId",
    )
    assert page["total"] == 4
    for row in page["results"]:
        assert set(row) == {"dataCollectionId", "sample", "group"}
        assert set(row["sample"]) == {"name", "blSampleId"}
        whole = get(client, anna, f"/samples/{row['sample']['blSampleId']}")
        assert row["sample"]["name"] == whole["name"]
        assert "experimentType" in row["group"]  # not narrowed: served whole
    only = get(
        client, anna, "/samples", proposal="mx1001", embed="protein", fields="protein.acronym"
    )
    assert {tuple(row) for row in only["results"]} == {("protein",)}
    assert {row["protein"]["acronym"] for row in only["results"]} == {"lyso", "thau"}
    item = get(
        client,
        anna,
        "/samples/" + str(page["results"][0]["sample"]["blSampleId"]),
        embed="protein,dataCollections",
        fields="name,protein.acronym",
    )
    assert set(item) == {"name", "protein", "dataCollections"} and set(item["protein"]) == {
        "acronym"
    }

    for fields, embed in (
        ("sample.nope", "sample"),
        ("sample.name", "group"),
        ("images.x", "images"),
    ):
        r = client.simulate_get(
            f"{PREFIX}/datacollections", params={"fields": fields, "embed": embed}, headers=anna
        )
        assert r.status_code == 400 and r.json["parameter"] == "fields", (fields, r.text)


def test_paging_order_and_filters_with_embed(client, auth):
    anna = auth("pi_anna")
    params = {
        "proposal": "mx1001",
        "embed": "crystal,dataCollections",
        "order_by": "name",
        "order": "desc",
        "blSampleId[gte]": "1",
        "limit": "5",
    }
    whole = get(client, anna, "/samples", **{**params, "limit": "100"})
    assert whole["total"] == 16 and len(whole["results"]) == 16
    names = [row["name"] for row in whole["results"]]
    assert names == sorted(names, reverse=True)
    walked, after = [], None
    while True:
        page = get(client, anna, "/samples", **params, **({"after": after} if after else {}))
        walked += page["results"]
        after = page["next"]
        if not after:
            break
    assert walked == whole["results"]
    assert all(row["crystal"]["crystalId"] == row["crystalId"] for row in walked)
    skipped = get(client, anna, "/samples", **{**params, "skip": "5"})
    assert skipped["results"] == whole["results"][5:10] and skipped["total"] == 16
    filtered = get(client, anna, "/samples", **{**params, "name[like]": "x1-1"})
    assert filtered["total"] == len([n for n in names if "x1-1" in n]) > 0
    assert all(row["crystal"] is not None for row in filtered["results"])
    # The same rows as without embed, the same cursor.
    plain = get(client, anna, "/samples", **{k: v for k, v in params.items() if k != "embed"})
    assert [r["blSampleId"] for r in plain["results"]] == [
        r["blSampleId"] for r in whole["results"][:5]
    ]


def test_etags_and_304_with_embed(client, auth):
    anna = auth("pi_anna")
    dc = get(client, anna, "/datacollections", session="mx1001-1", limit="1")["results"][0]
    for path, params in (
        ("/datacollections", {"session": "mx1001-1", "embed": "sample"}),
        (f"/datacollections/{dc['dataCollectionId']}", {"embed": "sample,group"}),
        ("/sessions/mx1001-1", {"embed": "proposal,dataCollections"}),
    ):
        first = client.simulate_get(PREFIX + path, params=params, headers=anna)
        assert first.status_code == 200 and first.headers.get("ETag")
        again = client.simulate_get(
            PREFIX + path, params=params, headers={**anna, "If-None-Match": first.headers["ETag"]}
        )
        assert again.status_code == 304
        plain = client.simulate_get(
            PREFIX + path, params={k: v for k, v in params.items() if k != "embed"}, headers=anna
        )
        assert plain.headers["ETag"] != first.headers["ETag"]


def test_exports_nest_in_ndjson_and_flatten_in_csv(client, auth):
    anna = auth("pi_anna")
    params = {
        "session": "mx1001-1",
        "embed": "sample,images",
        "fields": "dataCollectionId,sample.name",
    }
    page = get(client, anna, "/datacollections", **params)
    nd = client.simulate_get(
        f"{PREFIX}/datacollections", params={**params, "format": "ndjson"}, headers=anna
    )
    assert nd.status_code == 200
    assert [json.loads(line) for line in nd.text.splitlines()] == page["results"]
    r = client.simulate_get(
        f"{PREFIX}/datacollections", params={**params, "format": "csv"}, headers=anna
    )
    assert r.status_code == 200
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["dataCollectionId", "sample.name", "images"]
    assert rows[1:] == [
        [str(x["dataCollectionId"]), x["sample"]["name"], str(x["images"])] for x in page["results"]
    ]


def test_embed_names_are_not_columns(catalog):
    """A row's own column is never shadowed by an embedding."""
    for route in WITH_EMBEDS:
        columns = set(catalog.schemas[route.table]["properties"])
        names = [e.name for e in route.embeds]
        assert not columns & set(names), route.path
        assert len(set(names)) == len(names), route.path


def test_the_openapi_document_describes_embed(client):
    document = client.simulate_get(f"{PREFIX}/openapi.json").json
    listed = {
        p["name"]: p
        for p in document["paths"]["/datacollections"]["get"]["parameters"]
        if "name" in p
    }
    embed = listed["embed"]
    assert embed["style"] == "form" and embed["explode"] is False
    assert embed["schema"]["items"]["enum"] == ["group", "session", "sample", "detector", "images"]
    item = {
        p["name"]: p
        for p in document["paths"]["/datacollections/{id}"]["get"]["parameters"]
        if "name" in p
    }
    assert item["embed"]["schema"] == embed["schema"]
    row = document["components"]["schemas"]["DataCollectionRow"]["properties"]
    assert row["sample"]["anyOf"] == [
        {"$ref": "#/components/schemas/BLSampleRow"},
        {"type": "null"},
    ]
    assert row["images"]["type"] == "integer"
    persons = document["paths"]["/persons"]["get"]["parameters"]
    assert "embed" not in {p.get("name") for p in persons}


def test_the_api_documentation_lists_what_each_route_embeds():
    """docs/api.md's table of embeddings is the declarations (the routes' `embeds`)."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text()
    table = text.split("| route | `embed=` parents | `embed=` counts |")[1].split("\n\n")[0]
    documented = {}
    for line in table.splitlines()[2:]:
        path, parents_cell, counts_cell = (c.strip() for c in line.strip("|").split("|"))
        documented[path.strip("`")] = (
            re.findall(r"`(\w+)`", parents_cell),
            re.findall(r"`(\w+)`", counts_cell),
        )
    declared = {
        r.path: ([e.name for e in parents(r)], [e.name for e in counts(r)]) for r in WITH_EMBEDS
    }
    assert documented == declared


def test_a_site_embeds_only_what_it_serves(settings, tmp_path, catalog):
    """Without the shipping module a data collection embeds no sample; without the
    Detector table, no detector (the rest is served)."""
    import falcon.testing

    from ispyb_falcon.app import create_app
    from ispyb_falcon.demo.sqlite import create_tables

    url = f"sqlite:///{tmp_path / 'subset.sqlite'}"
    engine = sa.create_engine(url)
    create_tables(engine, catalog.schemas)
    app = create_app(
        settings.replace(database_url=url, server_modules=("proposals", "people", "experiments"))
    )
    c = falcon.testing.TestClient(app)
    token = c.simulate_post(f"{PREFIX}/auth/login", json={"login": "admin1", "password": "x"})
    h = {"Authorization": f"Bearer {token.json['token']}"}
    r = c.simulate_get(f"{PREFIX}/datacollections", params={"embed": "sample"}, headers=h)
    assert r.status_code == 400 and "group, session, detector" not in r.json["description"]
    assert "group, session, images" in r.json["description"]
    ok = c.simulate_get(f"{PREFIX}/datacollections", params={"embed": "group"}, headers=h)
    assert ok.status_code == 200
    doc = c.simulate_get(f"{PREFIX}/openapi.json").json
    embed = [
        p for p in doc["paths"]["/datacollections"]["get"]["parameters"] if p.get("name") == "embed"
    ]
    assert embed[0]["schema"]["items"]["enum"] == ["group", "session", "images"]
    assert "sample" not in doc["components"]["schemas"]["DataCollectionRow"]["properties"]

    with engine.begin() as conn:  # a site without detectors
        conn.execute(sa.text("DROP TABLE Detector"))
    c = falcon.testing.TestClient(create_app(settings.replace(database_url=url)))
    token = c.simulate_post(f"{PREFIX}/auth/login", json={"login": "admin1", "password": "x"})
    h = {"Authorization": f"Bearer {token.json['token']}"}
    r = c.simulate_get(f"{PREFIX}/datacollections", params={"embed": "detector"}, headers=h)
    assert r.status_code == 400 and r.json["description"].endswith(
        "can embed group, session, sample, images"
    ), r.text
    r = c.simulate_get(f"{PREFIX}/datacollections", params={"embed": "sample"}, headers=h)
    assert r.status_code == 200
