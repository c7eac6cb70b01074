"""Writes refused by rules a table's JSON Schema cannot say, and what the refusal tells.

A dewar's or a container's barcode is unique across the whole database, so a
user's new barcode can clash with another proposal's: the 409 must read the
same whichever row holds the value (no oracle for what others have) and must
not quote the database. Columns that name rows without a foreign key in the
schema (Protein.personId) are declared on their routes and checked as foreign
keys are. pi_anna writes in mx1001; cm2001 (pi_eve's) is the proposal she
cannot see. Rows are created with unique names and removed again.
"""

from __future__ import annotations

import uuid

import pytest

from ispyb_falcon.resources import MODULES

from .conftest import PREFIX


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture()
def anna(auth):
    return auth("pi_anna")


@pytest.fixture()
def admin(auth):
    return auth("admin1")


@pytest.fixture()
def created(client, admin):
    paths: list[str] = []
    yield paths
    for path in reversed(paths):
        r = client.simulate_delete(PREFIX + path, headers=admin)
        assert r.status_code in (204, 404), r.text


def first(client, headers, path: str, **params) -> dict:
    r = client.simulate_get(PREFIX + path, params={**params, "limit": "1"}, headers=headers)
    assert r.status_code == 200 and r.json["results"], r.text
    return r.json["results"][0]


def post(client, headers, path: str, body: dict, created: list, key: str):
    r = client.simulate_post(PREFIX + path, json=body, headers=headers)
    if r.status_code == 201:
        created.append(f"{path}/{r.json[key]}")
    return r


BARCODES = [
    ("/dewars", "dewarId", "barCode", "shippingId"),
    ("/containers", "containerId", "barcode", "dewarId"),
]


@pytest.mark.parametrize(("path", "key", "column", "parent"), BARCODES)
def test_a_barcode_clash_reads_the_same_whoever_holds_the_barcode(
    client, anna, admin, created, path, key, column, parent
):
    """The 409 echoed MariaDB: "Duplicate entry 'DEMO-cm2001-D1' for key 'barCode'"."""
    parent_id = first(client, anna, f"/{parent[:-2]}s", proposal="mx1001")[parent]
    theirs = first(client, admin, path, proposal="cm2001")[column]
    assert (
        client.simulate_get(PREFIX + path, params={column: theirs}, headers=anna).json["total"] == 0
    ), "cm2001's rows must be invisible to pi_anna"
    mine = unique("MINE")
    assert (
        post(client, anna, path, {parent: parent_id, column: mine}, created, key).status_code == 201
    )

    clash_mine = post(client, anna, path, {parent: parent_id, column: mine}, created, key)
    clash_theirs = post(client, anna, path, {parent: parent_id, column: theirs}, created, key)
    assert clash_mine.status_code == clash_theirs.status_code == 409
    assert clash_mine.json == clash_theirs.json
    assert clash_theirs.json["errors"] == [
        {"path": f"$.{column}", "message": clash_theirs.json["errors"][0]["message"]}
    ]
    for text in (theirs, "Duplicate", "UNIQUE", "cm2001", "detail"):
        assert text not in clash_theirs.text


def person(client, admin, login: str) -> dict:
    return first(client, admin, "/persons", login=login)


def test_a_protein_may_name_only_a_person_the_user_can_see(client, anna, admin, created):
    """Protein.personId has no foreign key in the schema: any person id was taken."""
    proposal = first(client, anna, "/proposals", proposalCode="mx", proposalNumber="1001")
    fred, ben = person(client, admin, "user_fred"), person(client, admin, "member_ben")
    body = {"proposalId": proposal["proposalId"], "name": unique("prot")}
    r = post(
        client, anna, "/proteins", {**body, "personId": fred["personId"]}, created, "proteinId"
    )
    assert r.status_code == 422, r.text
    assert [e["path"] for e in r.json["errors"]] == ["$.personId"]
    r = post(client, anna, "/proteins", {**body, "personId": ben["personId"]}, created, "proteinId")
    assert r.status_code == 201, r.text
    path = f"{PREFIX}/proteins/{r.json['proteinId']}"
    r = client.simulate_patch(path, json={"personId": fred["personId"]}, headers=anna)
    assert r.status_code == 422 and r.json["errors"][0]["path"] == "$.personId", r.text
    assert client.simulate_get(path, headers=anna).json["personId"] == ben["personId"]
    r = client.simulate_patch(path, json={"personId": fred["personId"]}, headers=admin)
    assert r.status_code == 200, r.text  # an admin sees every person


def test_a_shipping_may_name_only_a_laboratory_the_user_can_see(client, anna, admin, created):
    proposal = first(client, anna, "/proposals", proposalCode="mx", proposalNumber="1001")
    eve = person(client, admin, "pi_eve")
    assert eve["laboratoryId"] is not None
    body = {"proposalId": proposal["proposalId"], "shippingName": unique("ship")}
    r = post(
        client,
        anna,
        "/shippings",
        {**body, "laboratoryId": eve["laboratoryId"]},
        created,
        "shippingId",
    )
    assert r.status_code == 422 and r.json["errors"][0]["path"] == "$.laboratoryId", r.text
    own = person(client, anna, "pi_anna")["laboratoryId"]
    r = post(client, anna, "/shippings", {**body, "laboratoryId": own}, created, "shippingId")
    assert r.status_code == 201, r.text


def test_declared_references_are_columns_without_a_foreign_key(catalog):
    """A `refers` entry names a real column that the schema does not already check,
    pointing at a declared table's key."""
    declared = {r.table: r for routes in MODULES.values() for r in routes}
    found = 0
    for route in declared.values():
        schema = catalog[route.table] if route.refers else None
        for via in route.refers:
            found += 1
            assert via.column in schema.columns, (route.table, via.column)
            assert all(via.column not in fk["columns"] for fk in schema.foreign_keys), via
            assert via.table in declared, via
            if via.table in catalog:
                assert catalog[via.table].primary_key == [via.parent_key], via
    assert found >= 6
