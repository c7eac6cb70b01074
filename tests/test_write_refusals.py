"""What a write refused by a rule the body's schema cannot say tells the caller, and nothing more.

A dewar's or a container's barcode is unique across the whole database, so a
user's new barcode can clash with another proposal's: the 409 must read the
same whichever row holds the value (no oracle for what others have) and must
not quote the database. pi_anna writes in mx1001; cm2001 (pi_eve's) is the
proposal she cannot see. Rows are created with unique names and removed again.
"""

from __future__ import annotations

import uuid

import pytest

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
