"""Every resource, written through HTTP: create a copy of a visible row, change it, delete it.

The body is built from the table's schema (writable, non-blob columns of an existing row),
with the columns of unique keys changed so the copy does not clash; a copy is never
referenced, so an admin may delete it. Representative behaviours (validation paths,
references, roles) are tested in depth in test_resources_writes.py.
"""

from __future__ import annotations

import pytest

from ispyb_falcon.resources import MODULES

from .conftest import PREFIX

CHANGED = "rt changed"
ROUTES = [r for routes in MODULES.values() for r in routes if r.path and r.item and not r.nested]


def _copy(row: dict, schema: dict) -> dict:
    props = schema["properties"]
    body = {
        k: v
        for k, v in row.items()
        if k in props
        and not props[k].get("readOnly")
        and not props[k].get("x-ispyb", {}).get("blob")
    }
    for index in schema["x-ispyb"]["indexes"]:
        if not index["unique"]:
            continue
        for column in index["columns"]:
            prop = props[column]
            types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
            fk = any(column in fk["columns"] for fk in schema["x-ispyb"]["foreignKeys"])
            if "null" in types and not fk:
                body[column] = None
                break
            if "string" in types and "enum" not in prop:
                body[column] = f"rt{(body.get(column) or '')}"[: prop.get("maxLength", 45)]
                break
            if "integer" in types and not fk:
                body[column] = (body.get(column) or 0) + 7919
                break
    return body


def _text_column(schema: dict, body: dict) -> str | None:
    """A nullable free-text column to change with PATCH."""
    for name, prop in schema["properties"].items():
        types = prop.get("type", [])
        if (
            name in body
            and isinstance(types, list)
            and "string" in types
            and "null" in types
            and prop.get("maxLength", 0) >= len(CHANGED)
            and "pattern" not in prop
            and "enum" not in prop
            and not prop.get("x-ispyb", {}).get("json")
            and not any(name in i["columns"] for i in schema["x-ispyb"]["indexes"] if i["unique"])
        ):
            return name
    return None


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.path)
def test_admin_creates_changes_and_deletes_a_row(client, auth, catalog, route):
    h = auth("admin1")
    schema = catalog.schemas[route.table]
    key = schema["x-ispyb"]["primaryKey"][0]
    scope = (
        {"proposal": "mx1001"}
        if route.path
        not in ("/proposals", "/persons", "/laboratories", "/beamlinesetups", "/detectors")
        else {}
    )
    listing = client.simulate_get(
        PREFIX + route.path,
        params={**scope, "limit": "1", "order": "desc", "order_by": key},
        headers=h,
    )
    assert listing.status_code == 200, listing.text
    row = listing.json["results"][0]
    body = _copy(row, schema)
    if route.table == "LabContact":  # unique (personId, proposalId): both keys, so another person
        fred = client.simulate_get(f"{PREFIX}/persons", params={"login": "user_fred"}, headers=h)
        body["personId"] = fred.json["results"][0]["personId"]
    created = client.simulate_post(PREFIX + route.path, json=body, headers=h)
    assert created.status_code == 201, created.text
    new = created.json
    assert new[key] != row[key]
    assert created.headers["Location"].endswith(f"{route.path}/{new[key]}")
    item = f"{PREFIX}{route.path}/{new[key]}"
    column = _text_column(schema, body)
    if column:
        patched = client.simulate_patch(item, json={column: CHANGED}, headers=h)
        assert patched.status_code == 200, patched.text
        assert patched.json[column] == CHANGED
        assert client.simulate_get(item, headers=h).json[column] == CHANGED
    assert client.simulate_delete(item, headers=h).status_code == 204
    assert client.simulate_get(item, headers=h).status_code == 404
