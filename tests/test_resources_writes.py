"""Writing through HTTP (API.md sections 1, 2, 4 and 5).

Every test works on rows it creates in proposal mx1001 (a new Protein, Crystal,
Dewar, samples...) and removes them again as admin1 when it ends, so other
test modules see the demo data unchanged. Rows are found by their names,
never by numeric ids, so the same tests hold on SQLite and on a MariaDB that
also holds the official ISPyB test data.
"""

from __future__ import annotations

import csv
import io
import json
import uuid

import pytest
import sqlalchemy as sa

from .conftest import PREFIX

ADMIN = "admin1"
MISSING = 999999999
DATETIME_RE = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$"


def url(path: str) -> str:
    return PREFIX + path


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture()
def admin(auth):
    return auth(ADMIN)


@pytest.fixture()
def anna(auth):
    return auth("pi_anna")


@pytest.fixture()
def get(client, admin):
    def call(path: str, headers: dict | None = None, **params):
        return client.simulate_get(url(path), params=params, headers=headers or admin)

    return call


def total(get, path: str, **params) -> int:
    r = get(path, **params)
    assert r.status_code == 200, r.text
    return r.json["total"]


def rows(get, path: str, **params) -> list[dict]:
    r = get(path, limit="1000", **params)
    assert r.status_code == 200, r.text
    return r.json["results"]


@pytest.fixture()
def cleanup(client, admin):
    """Paths to DELETE (as admin1) when the test ends, children before parents."""
    paths: list[str] = []
    yield paths
    for path in reversed(paths):
        r = client.simulate_delete(url(path), headers=admin)
        assert r.status_code in (204, 404), (path, r.status_code, r.text)


@pytest.fixture()
def create(client, admin, cleanup):
    """create(collection, key, body) -> the stored row, deleted again after the test."""

    def call(path: str, key: str, body: dict, headers: dict | None = None) -> dict:
        r = client.simulate_post(url(path), json=body, headers=headers or admin)
        assert r.status_code == 201, r.text
        cleanup.append(f"{path}/{r.json[key]}")
        return r.json

    return call


@pytest.fixture()
def mx1001(get) -> dict:
    """The ids of mx1001's proposal, PI, first shipping, crystal and container."""
    proposal = get("/proposals/mx1001").json
    shipping = rows(get, "/shippings", proposal="mx1001")[0]
    crystal = rows(get, "/crystals", proposal="mx1001")[0]
    container = rows(get, "/containers", proposal="mx1001")[0]
    return {
        "proposalId": proposal["proposalId"],
        "personId": proposal["personId"],
        "shippingId": shipping["shippingId"],
        "crystalId": crystal["crystalId"],
        "containerId": container["containerId"],
    }


def person_id(get, login: str) -> int:
    (row,) = rows(get, "/persons", login=login)
    return row["personId"]


@pytest.fixture()
def protein(create, mx1001) -> dict:
    return create(
        "/proteins",
        "proteinId",
        {
            "proposalId": mx1001["proposalId"],
            "name": unique("Test protein"),
            "acronym": "tprot",
            "description": "made by test_resources_writes",
            "molecularMass": 12345.5,
            "safetyLevel": "YELLOW",
        },
    )


def paths(r) -> list[str]:
    return [e["path"] for e in r.json["errors"]]


def refused(client, admin, get, path: str, body: dict, field: str, **find) -> None:
    """POST `body` is a 422 naming `field`, and no row matching `find` was written."""
    r = client.simulate_post(url(path), json=body, headers=admin)
    assert r.status_code == 422, r.text
    assert paths(r) == [f"$.{field}"]
    assert total(get, path, **find) == 0


# --- POST ---------------------------------------------------------------------------------------


def test_post_one_object_is_a_201_with_location_and_server_defaults(
    client, admin, get, create, mx1001
):
    code = unique("t-dewar")
    body = {"shippingId": mx1001["shippingId"], "code": code, "barCode": unique("T-BC")}
    r = client.simulate_post(url("/dewars"), json=body, headers=admin)
    assert r.status_code == 201, r.text
    row = r.json
    cleanup_path = f"/dewars/{row['dewarId']}"
    try:
        assert r.headers["Location"].endswith(f"{PREFIX}{cleanup_path}")
        assert row["code"] == code and row["shippingId"] == mx1001["shippingId"]
        assert row["type"] == "Dewar"  # server default
        assert row["isStorageDewar"] == 0
        assert get(cleanup_path).json == row
    finally:
        assert client.simulate_delete(url(cleanup_path), headers=admin).status_code == 204


def test_post_reads_back_protein_defaults(protein, get):
    assert protein["hazardGroup"] == 1 and protein["containmentLevel"] == 1
    assert protein["global"] == 0 and protein["isCreatedBySampleSheet"] == 0
    assert protein["safetyLevel"] == "YELLOW"
    assert protein["bltimeStamp"] and len(protein["bltimeStamp"]) == 19
    assert "T" in protein["bltimeStamp"]
    assert get(f"/proteins/{protein['proteinId']}").json == protein


def test_post_an_array_creates_every_row(client, admin, get, cleanup, mx1001):
    before = total(get, "/proteins", proposal="mx1001")
    names = [unique("bulk-a"), unique("bulk-b"), unique("bulk-c")]
    body = [{"proposalId": mx1001["proposalId"], "name": n} for n in names]
    r = client.simulate_post(url("/proteins"), json=body, headers=admin)
    assert r.status_code == 201, r.text
    cleanup.extend(f"/proteins/{p['proteinId']}" for p in r.json)
    assert [p["name"] for p in r.json] == names
    assert all(p["hazardGroup"] == 1 for p in r.json)
    assert total(get, "/proteins", proposal="mx1001") == before + 3
    for p in r.json:
        assert get(f"/proteins/{p['proteinId']}").json == p


def test_an_array_with_one_bad_item_writes_nothing(client, admin, get, mx1001):
    before = total(get, "/proteins", proposal="mx1001")
    good = {"proposalId": mx1001["proposalId"], "name": unique("good")}
    bad = {"proposalId": mx1001["proposalId"], "name": "x" * 300}
    r = client.simulate_post(url("/proteins"), json=[good, bad, good], headers=admin)
    assert r.status_code == 422
    assert paths(r) == ["$[1].name"]
    assert total(get, "/proteins", proposal="mx1001") == before
    assert rows(get, "/proteins", name=good["name"]) == []


def test_an_array_with_a_bad_foreign_key_writes_nothing(client, admin, get, protein):
    before = total(get, "/crystals", proposal="mx1001")
    body = [
        {"proteinId": protein["proteinId"], "name": unique("ok")},
        {"proteinId": MISSING, "name": unique("ko")},
    ]
    r = client.simulate_post(url("/crystals"), json=body, headers=admin)
    assert r.status_code == 422
    assert paths(r) == ["$[1].proteinId"]
    assert total(get, "/crystals", proposal="mx1001") == before


def test_an_array_refused_by_the_database_writes_nothing(client, admin, get, mx1001):
    before = total(get, "/dewars", proposal="mx1001")
    barcode = unique("T-DUP")
    body = [
        {"shippingId": mx1001["shippingId"], "code": unique("d1"), "barCode": barcode},
        {"shippingId": mx1001["shippingId"], "code": unique("d2"), "barCode": barcode},
    ]
    r = client.simulate_post(url("/dewars"), json=body, headers=admin)
    assert r.status_code == 409, r.text
    assert total(get, "/dewars", proposal="mx1001") == before
    assert rows(get, "/dewars", barCode=barcode) == []


def test_an_empty_array_is_a_422(client, admin):
    r = client.simulate_post(url("/proteins"), json=[], headers=admin)
    assert r.status_code == 422


def test_a_body_that_is_no_object_is_a_422(client, admin):
    r = client.simulate_post(url("/proteins"), json="protein", headers=admin)
    assert r.status_code == 422
    assert paths(r) == ["$"]
    r = client.simulate_post(url("/proteins"), json=[{"name": "a"}, 5], headers=admin)
    assert r.status_code == 422
    assert "$[1]" in paths(r)


def test_malformed_json_is_a_400_and_other_media_a_415(client, admin):
    r = client.simulate_post(
        url("/proteins"), body="{not json", headers={**admin, "Content-Type": "application/json"}
    )
    assert r.status_code == 400
    r = client.simulate_post(
        url("/proteins"), body="name=x", headers={**admin, "Content-Type": "text/plain"}
    )
    assert r.status_code == 415


def test_post_on_an_item_is_a_405_with_allow(client, admin, protein):
    r = client.simulate_post(url(f"/proteins/{protein['proteinId']}"), json={}, headers=admin)
    assert r.status_code == 405
    assert {"GET", "PATCH", "PUT", "DELETE"} <= {m.strip() for m in r.headers["Allow"].split(",")}


# --- validation ------------------------------------------------------------------------------


def test_validation_lists_every_violation(client, admin, get, mx1001):
    before = total(get, "/samples", proposal="mx1001")
    body = {"crystalId": mx1001["crystalId"], "name": "x" * 200, "location": 5}
    r = client.simulate_post(url("/samples"), json=body, headers=admin)
    assert r.status_code == 422
    assert r.json["title"] == "422 Unprocessable Entity"
    assert "BLSample" in r.json["description"]
    assert sorted(paths(r)) == ["$.location", "$.name"]
    assert all(e["message"] for e in r.json["errors"])
    assert total(get, "/samples", proposal="mx1001") == before


def test_validation_lists_violations_of_several_kinds_at_once(client, admin, mx1001):
    body = {
        "proposalId": mx1001["proposalId"],
        "proteinId": 5,
        "hazardGroup": 300,
        "safetyLevel": "PURPLE",
        "colour": "red",
        "bltimeStamp": "2026-01-01T00:00",
    }
    r = client.simulate_post(url("/proteins"), json=body, headers=admin)
    assert r.status_code == 422
    assert sorted(paths(r)) == [
        "$.bltimeStamp",
        "$.colour",
        "$.hazardGroup",
        "$.proteinId",
        "$.safetyLevel",
    ]


def test_required_fields_are_required_on_post(client, admin):
    r = client.simulate_post(url("/labcontacts"), json={"cardName": "x"}, headers=admin)
    assert r.status_code == 422
    messages = " ".join(e["message"] for e in r.json["errors"])
    assert "personId" in messages and "proposalId" in messages


@pytest.mark.parametrize(
    ("field", "value"), [("proteinId", 123456), ("bltimeStamp", "2026-01-01T00:00:00")]
)
def test_read_only_fields_are_refused_on_post(client, admin, get, mx1001, field, value):
    before = total(get, "/proteins", proposal="mx1001")
    body = {"proposalId": mx1001["proposalId"], "name": unique("ro"), field: value}
    r = client.simulate_post(url("/proteins"), json=body, headers=admin)
    assert r.status_code == 422
    assert paths(r) == [f"$.{field}"]
    assert total(get, "/proteins", proposal="mx1001") == before


@pytest.mark.parametrize(
    ("field", "value"), [("blSampleId", 123456), ("recordTimeStamp", "2026-01-01T00:00:00")]
)
def test_read_only_fields_are_refused_on_patch(client, admin, get, create, mx1001, field, value):
    sample = create(
        "/samples", "blSampleId", {"crystalId": mx1001["crystalId"], "name": unique("s")}
    )
    path = f"/samples/{sample['blSampleId']}"
    r = client.simulate_patch(url(path), json={field: value, "comments": "x"}, headers=admin)
    assert r.status_code == 422
    assert paths(r) == [f"$.{field}"]
    assert get(path).json == sample


def test_unknown_fields_are_refused(client, admin, protein, get):
    r = client.simulate_post(
        url("/proteins"),
        json={"proposalId": protein["proposalId"], "nmae": "typo"},
        headers=admin,
    )
    assert r.status_code == 422
    assert paths(r) == ["$.nmae"]
    path = f"/proteins/{protein['proteinId']}"
    r = client.simulate_patch(url(path), json={"acronym": "z", "nmae": "typo"}, headers=admin)
    assert r.status_code == 422
    assert paths(r) == ["$.nmae"]
    assert get(path).json == protein


@pytest.mark.parametrize(
    "value", ["2026-02-30T10:00", "2026-02-30 10:00:00", "2026-13-01T10:00", "2026-01-01T25:00"]
)
def test_an_impossible_datetime_is_a_422(client, admin, get, mx1001, value):
    before = total(get, "/dewars", proposal="mx1001")
    body = {"shippingId": mx1001["shippingId"], "code": unique("d"), "bltimeStamp": value}
    r = client.simulate_post(url("/dewars"), json=body, headers=admin)
    assert r.status_code == 422, r.text
    assert paths(r) == ["$.bltimeStamp"]
    assert total(get, "/dewars", proposal="mx1001") == before


def test_an_impossible_date_is_a_422(client, admin, get, mx1001):
    before = total(get, "/shippings", proposal="mx1001")
    body = {"proposalId": mx1001["proposalId"], "deliveryAgent_shippingDate": "2026-02-30"}
    r = client.simulate_post(url("/shippings"), json=body, headers=admin)
    assert r.status_code == 422
    assert paths(r) == ["$.deliveryAgent_shippingDate"]
    assert total(get, "/shippings", proposal="mx1001") == before


def test_a_malformed_datetime_is_a_422(client, admin, mx1001):
    body = {"shippingId": mx1001["shippingId"], "bltimeStamp": "yesterday"}
    r = client.simulate_post(url("/dewars"), json=body, headers=admin)
    assert r.status_code == 422
    assert paths(r) == ["$.bltimeStamp"]


@pytest.mark.parametrize("value", [300, 256, -1])
def test_a_number_out_of_the_column_range_is_a_422(client, admin, get, mx1001, value):
    before = total(get, "/proteins", proposal="mx1001")
    body = {"proposalId": mx1001["proposalId"], "name": unique("hz"), "hazardGroup": value}
    r = client.simulate_post(url("/proteins"), json=body, headers=admin)
    assert r.status_code == 422
    assert paths(r) == ["$.hazardGroup"]
    assert total(get, "/proteins", proposal="mx1001") == before


def test_a_float_beyond_a_float_column_is_a_422(client, admin, mx1001):
    body = {"shippingId": mx1001["shippingId"], "weight": 1e39}
    r = client.simulate_post(url("/dewars"), json=body, headers=admin)
    assert r.status_code == 422
    assert paths(r) == ["$.weight"]


def test_a_json_number_too_large_for_a_double_is_a_422(client, admin, get, engine, mx1001):
    name = unique("huge")
    body = f'{{"proposalId": {mx1001["proposalId"]}, "name": "{name}", "molecularMass": 1e999}}'
    try:
        r = client.simulate_post(
            url("/proteins"), body=body, headers={**admin, "Content-Type": "application/json"}
        )
        assert r.status_code == 422, r.text
        assert paths(r) == ["$.molecularMass"]
    finally:
        # 1e999 reads as inf: if the server stored it, no list could serialize that row again.
        with engine.begin() as conn:
            stored = conn.execute(
                sa.text("DELETE FROM Protein WHERE name = :n"), {"n": name}
            ).rowcount
    assert stored == 0, "the refused row was written"


def test_a_wrong_type_on_patch_is_a_422(client, admin, protein, get):
    path = f"/proteins/{protein['proteinId']}"
    r = client.simulate_patch(
        url(path), json={"molecularMass": "heavy", "hazardGroup": 1.5}, headers=admin
    )
    assert r.status_code == 422
    assert sorted(paths(r)) == ["$.hazardGroup", "$.molecularMass"]
    assert get(path).json == protein


# --- character sets -----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["名前", "sample \U0001f9ea", "Ω-loop"])
def test_text_outside_a_latin1_column_is_a_422_and_writes_nothing(client, admin, get, mx1001, text):
    before = total(get, "/samples", proposal="mx1001")
    body = {"crystalId": mx1001["crystalId"], "name": text}
    r = client.simulate_post(url("/samples"), json=body, headers=admin)
    assert r.status_code == 422, r.text
    assert paths(r) == ["$.name"]
    assert total(get, "/samples", proposal="mx1001") == before


def test_text_outside_latin1_is_a_422_on_patch(client, admin, get, create, mx1001):
    sample = create(
        "/samples", "blSampleId", {"crystalId": mx1001["crystalId"], "name": unique("s")}
    )
    path = f"/samples/{sample['blSampleId']}"
    r = client.simulate_patch(url(path), json={"comments": "名前"}, headers=admin)
    assert r.status_code == 422
    assert paths(r) == ["$.comments"]
    assert get(path).json == sample


@pytest.mark.parametrize("text", ["café", "€ œ Ž “—”", "\x81\x8d\x8f\x90\x9d"])
def test_latin1_text_round_trips_through_a_latin1_column(create, get, mx1001, text):
    """Every character MariaDB's latin1 holds: Windows-1252 and its five C1 controls."""
    name = f"{text}-{uuid.uuid4().hex[:6]}"
    sample = create("/samples", "blSampleId", {"crystalId": mx1001["crystalId"], "name": name})
    assert sample["name"] == name
    assert get(f"/samples/{sample['blSampleId']}").json["name"] == name


@pytest.mark.parametrize(
    ("path", "key", "parent"),
    [("/shippings", "shippingId", "proposalId"), ("/dewars", "dewarId", "shippingId")],
)
def test_a_utf8mb4_column_accepts_any_text(create, get, mx1001, path, key, parent):
    text = '{"note": "名前 \U0001f9ea Ωμέγα"}'  # `extra` is a JSON column in ISPyB
    row = create(path, key, {parent: mx1001[parent], "extra": text})
    assert row["extra"] == text
    assert get(f"{path}/{row[key]}").json["extra"] == text


def test_a_value_the_json_column_cannot_store_is_never_a_500(
    client, admin, engine, cleanup, mx1001
):
    """ISPyB declares `extra` as JSON (CHECK json_valid): not-JSON text is a 422 there."""
    body = {"proposalId": mx1001["proposalId"], "shippingName": unique("json"), "extra": "not json"}
    r = client.simulate_post(url("/shippings"), json=body, headers=admin)
    if r.status_code == 201:
        cleanup.append(f"/shippings/{r.json['shippingId']}")
    if engine.dialect.name == "mysql":
        assert r.status_code == 422, r.text
        assert paths(r) == ["$.extra"]
    else:
        assert r.status_code in (201, 422), r.text


@pytest.mark.parametrize(
    ("field", "value"),
    [("extra", '"\\ud800"'), ("comments", "half \\udc00 pair"), ("shippingName", "\\ud83e")],
)
def test_a_lone_surrogate_is_a_422_in_any_column(client, admin, get, mx1001, field, value):
    """JSON can escape half a surrogate pair; no character set stores it (never a 500)."""
    name = unique("surrogate")
    fields = {"proposalId": mx1001["proposalId"], "shippingName": name, field: "x"}
    raw = json.dumps(fields).replace('"x"', json.dumps(value).replace("\\\\", "\\"))
    r = client.simulate_post(
        url("/shippings"), body=raw, headers={**admin, "Content-Type": "application/json"}
    )
    assert r.status_code == 422, r.text
    assert paths(r) == [f"$.{field}"]
    assert total(get, "/shippings", proposal="mx1001", shippingName=name) == 0


def test_a_lone_surrogate_as_a_field_name_is_a_422(client, admin):
    raw = '{"\\ud800": 1}'
    r = client.simulate_post(
        url("/proteins"), body=raw, headers={**admin, "Content-Type": "application/json"}
    )
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("value", ["abcd", "", "00" * 17])
def test_a_binary_column_takes_exactly_its_size(client, admin, get, mx1001, value):
    """BINARY(16) would pad `abcd` with zero bytes: served changed, so a 422."""
    name = unique("bin")
    body = {"proposalId": mx1001["proposalId"], "name": name, "externalId": value}
    refused(client, admin, get, "/proteins", body, "externalId", name=name)


# --- foreign keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "field", "body"),
    [
        ("/crystals", "proteinId", {"name": "orphan"}),
        ("/samples", "crystalId", {"name": "orphan"}),
        ("/samples", "containerId", {"name": "orphan"}),
        ("/dewars", "shippingId", {"code": "orphan"}),
        ("/proteins", "proposalId", {"name": "orphan"}),
    ],
)
def test_a_foreign_key_to_a_missing_row_is_a_422_naming_the_field(client, admin, path, field, body):
    r = client.simulate_post(url(path), json={**body, field: MISSING}, headers=admin)
    assert r.status_code == 422, r.text
    assert paths(r) == [f"$.{field}"]
    assert str(MISSING) in r.json["errors"][0]["message"]


def test_a_foreign_key_to_a_missing_row_is_a_422_on_patch(client, admin, get, protein, create):
    crystal = create(
        "/crystals", "crystalId", {"proteinId": protein["proteinId"], "name": unique("c")}
    )
    path = f"/crystals/{crystal['crystalId']}"
    r = client.simulate_patch(url(path), json={"proteinId": MISSING}, headers=admin)
    assert r.status_code == 422
    assert paths(r) == ["$.proteinId"]
    assert get(path).json == crystal


def test_a_foreign_key_to_a_row_the_caller_cannot_see_is_a_422(client, anna, admin, get):
    others = get("/proposals/cm2001").json
    r = client.simulate_post(
        url("/proteins"), json={"proposalId": others["proposalId"], "name": "probe"}, headers=anna
    )
    assert r.status_code == 422
    assert paths(r) == ["$.proposalId"]
    assert rows(get, "/proteins", proposal="cm2001", name="probe") == []


# --- PATCH and PUT ----------------------------------------------------------------------------------


def test_patch_changes_only_the_given_fields(client, admin, get, protein):
    path = f"/proteins/{protein['proteinId']}"
    r = client.simulate_patch(url(path), json={"acronym": "tp2"}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json == {**protein, "acronym": "tp2"}
    assert get(path).json == r.json


def test_patch_with_null_clears_a_nullable_field(client, admin, get, protein):
    path = f"/proteins/{protein['proteinId']}"
    r = client.simulate_patch(url(path), json={"description": None}, headers=admin)
    assert r.status_code == 200
    assert r.json == {**protein, "description": None}


def test_patch_with_an_empty_body_changes_nothing(client, admin, protein):
    r = client.simulate_patch(url(f"/proteins/{protein['proteinId']}"), json={}, headers=admin)
    assert r.status_code == 200
    assert r.json == protein


def test_patch_of_a_missing_row_is_a_404(client, admin):
    r = client.simulate_patch(url(f"/proteins/{MISSING}"), json={"acronym": "x"}, headers=admin)
    assert r.status_code == 404


def test_put_requires_the_required_fields(client, admin, get, protein):
    path = f"/proteins/{protein['proteinId']}"
    r = client.simulate_put(url(path), json={"name": "no proposal"}, headers=admin)
    assert r.status_code == 422
    assert any("proposalId" in e["message"] for e in r.json["errors"])
    assert get(path).json == protein


def test_put_with_a_complete_row_updates_it(client, admin, get, protein):
    path = f"/proteins/{protein['proteinId']}"
    body = {
        "proposalId": protein["proposalId"],
        "name": protein["name"],
        "acronym": "putp",
        "hazardGroup": 2,
        "safetyLevel": "RED",
    }
    r = client.simulate_put(url(path), json=body, headers=admin)
    assert r.status_code == 200, r.text
    for field, value in body.items():
        assert r.json[field] == value
    assert get(path).json == r.json


def test_put_refuses_read_only_and_unknown_fields(client, admin, protein):
    body = {"proposalId": protein["proposalId"], "proteinId": protein["proteinId"], "nope": 1}
    r = client.simulate_put(url(f"/proteins/{protein['proteinId']}"), json=body, headers=admin)
    assert r.status_code == 422
    assert sorted(paths(r)) == ["$.nope", "$.proteinId"]


def test_written_values_are_served_in_the_section_1_formats(create, get, mx1001):
    shipping = create(
        "/shippings",
        "shippingId",
        {
            "proposalId": mx1001["proposalId"],
            "shippingName": unique("fmt"),
            "readyByTime": "09:30",
            "closeTime": "17:45:10",
            "deliveryAgent_shippingDate": "2026-03-01",
            "creationDate": "2026-03-01 10:15",
            "dateOfShippingToUser": "2026-03-02T08:00:05",
            "isStorageShipping": 1,
        },
    )
    assert shipping["readyByTime"] == "09:30:00"
    assert shipping["closeTime"] == "17:45:10"
    assert shipping["deliveryAgent_shippingDate"] == "2026-03-01"
    assert shipping["creationDate"] == "2026-03-01T10:15:00"
    assert shipping["dateOfShippingToUser"] == "2026-03-02T08:00:05"
    assert shipping["isStorageShipping"] == 1
    assert get(f"/shippings/{shipping['shippingId']}").json == shipping


def test_a_time_column_holds_durations_as_mysql_does(client, admin, create, get, mx1001):
    """TIME is a time of day or a signed duration up to 838:59:59, served as stored."""
    name = unique("time")
    shipping = create(
        "/shippings",
        "shippingId",
        {
            "proposalId": mx1001["proposalId"],
            "shippingName": name,
            "readyByTime": "-1:30",
            "closeTime": "100:00:00",
            "deliveryAgent_callinTime": "26:15:00",
            "deliveryAgent_readyByTime": "838:59:59",
        },
    )
    served = {
        "readyByTime": "-01:30:00",
        "closeTime": "100:00:00",
        "deliveryAgent_callinTime": "26:15:00",
        "deliveryAgent_readyByTime": "838:59:59",
    }
    item = f"/shippings/{shipping['shippingId']}"
    assert {k: shipping[k] for k in served} == served
    assert {k: get(item).json[k] for k in served} == served
    for column, value in served.items():
        (listed,) = rows(get, "/shippings", shippingName=name, **{column: value})
        assert listed[column] == value
    # What is read can be written back unchanged.
    body = {k: v for k, v in get(item).json.items() if k not in ("shippingId", "proposalId")}
    body = {k: v for k, v in body.items() if v is not None and not k.endswith("Date")}
    r = client.simulate_patch(url(item), json=body, headers=admin)
    assert r.status_code == 200, r.text
    assert {k: get(item).json[k] for k in served} == served


@pytest.mark.parametrize("value", ["839:00:00", "-839:00:00", "10:60", "10:30:60", "1:2:3"])
def test_a_time_the_column_cannot_hold_is_a_422(client, admin, get, mx1001, value):
    name = unique("time")
    body = {"proposalId": mx1001["proposalId"], "shippingName": name, "closeTime": value}
    refused(client, admin, get, "/shippings", body, "closeTime", shippingName=name)


@pytest.mark.parametrize(
    "mass", [1.5e-12, 1.2345678901234567e-05, 12345.678901234567, 6.02214076e23]
)
def test_a_double_column_is_served_with_every_digit_it_holds(create, get, admin, mx1001, mass):
    name = unique("double")
    protein = create(
        "/proteins",
        "proteinId",
        {"proposalId": mx1001["proposalId"], "name": name, "molecularMass": mass},
    )
    assert protein["molecularMass"] == mass
    assert get(f"/proteins/{protein['proteinId']}").json["molecularMass"] == mass
    (listed,) = rows(get, "/proteins", name=name)
    assert listed["molecularMass"] == mass
    ndjson = get("/proteins", headers={**admin, "Accept": "application/x-ndjson"}, name=name)
    assert json.loads(ndjson.text)["molecularMass"] == mass
    (exported,) = csv.DictReader(
        io.StringIO(get("/proteins", headers={**admin, "Accept": "text/csv"}, name=name).text)
    )
    assert float(exported["molecularMass"]) == mass


def test_like_on_a_datetime_matches_the_text_it_is_served_as(create, get, mx1001):
    name = unique("like")
    body = {
        "proposalId": mx1001["proposalId"],
        "shippingName": name,
        "creationDate": "2026-03-01 10:15",
    }
    create("/shippings", "shippingId", body)
    for text in ("2026-03-01T10:15", "03-01T10", "2026-03-01 10:15"):
        assert total(get, "/shippings", shippingName=name, **{"creationDate[like]": text}) == 1
    assert total(get, "/shippings", shippingName=name, **{"creationDate[like]": "T11"}) == 0


def test_binary_columns_are_served_as_lowercase_hex(create, get, mx1001):
    hexed = "00112233445566778899aabbccddeeff"
    protein = create(
        "/proteins",
        "proteinId",
        {"proposalId": mx1001["proposalId"], "name": unique("bin"), "externalId": hexed},
    )
    assert protein["externalId"] == hexed
    assert get(f"/proteins/{protein['proteinId']}").json["externalId"] == hexed
    found = rows(get, "/proteins", proposal="mx1001", externalId=hexed)
    assert [p["proteinId"] for p in found] == [protein["proteinId"]]


# --- If-Match ------------------------------------------------------------------------------------


def test_if_match_with_a_stale_etag_is_a_412(client, admin, get, protein):
    path = f"/proteins/{protein['proteinId']}"
    old = get(path).headers["ETag"]
    r = client.simulate_patch(url(path), json={"acronym": "v2"}, headers={**admin, "If-Match": old})
    assert r.status_code == 200
    new = r.headers["ETag"]
    assert new != old and get(path).headers["ETag"] == new
    r = client.simulate_patch(url(path), json={"acronym": "v3"}, headers={**admin, "If-Match": old})
    assert r.status_code == 412
    r = client.simulate_put(
        url(path),
        json={"proposalId": protein["proposalId"], "acronym": "v3"},
        headers={**admin, "If-Match": old},
    )
    assert r.status_code == 412
    r = client.simulate_delete(url(path), headers={**admin, "If-Match": old})
    assert r.status_code == 412
    assert get(path).json["acronym"] == "v2"
    r = client.simulate_delete(url(path), headers={**admin, "If-Match": new})
    assert r.status_code == 204
    assert get(path).status_code == 404


# --- DELETE -------------------------------------------------------------------------------------


def test_delete_of_an_unreferenced_row_is_a_204(client, admin, get, mx1001):
    r = client.simulate_post(
        url("/proteins"),
        json={"proposalId": mx1001["proposalId"], "name": unique("del")},
        headers=admin,
    )
    path = f"/proteins/{r.json['proteinId']}"
    r = client.simulate_delete(url(path), headers=admin)
    assert r.status_code == 204
    assert r.text == ""
    assert get(path).status_code == 404
    assert client.simulate_delete(url(path), headers=admin).status_code == 404


def test_delete_of_a_referenced_row_is_a_409_listing_the_references(
    client, admin, get, cleanup, protein
):
    path = f"/proteins/{protein['proteinId']}"
    body = [{"proteinId": protein["proteinId"], "name": unique("c")} for _ in range(2)]
    r = client.simulate_post(url("/crystals"), json=body, headers=admin)
    assert r.status_code == 201
    cleanup.extend(f"/crystals/{c['crystalId']}" for c in r.json)
    r = client.simulate_delete(url(path), headers=admin)
    assert r.status_code == 409, r.text
    assert r.json["references"] == [{"table": "Crystal", "columns": ["proteinId"], "count": 2}]
    assert get(path).json == protein
    assert total(get, "/crystals", proteinId=str(protein["proteinId"])) == 2


def test_delete_by_a_user_is_a_403(client, anna, get, protein):
    path = f"/proteins/{protein['proteinId']}"
    assert get(path, headers=anna).status_code == 200
    r = client.simulate_delete(url(path), headers=anna)
    assert r.status_code == 403
    assert get(path).json == protein


def test_delete_by_a_user_who_cannot_see_the_row_is_a_404(client, auth, protein):
    r = client.simulate_delete(url(f"/proteins/{protein['proteinId']}"), headers=auth("user_fred"))
    assert r.status_code == 404


# --- roles ----------------------------------------------------------------------------------------


def test_a_user_writes_in_an_open_proposal(client, anna, get, create, mx1001):
    protein = create(
        "/proteins",
        "proteinId",
        {"proposalId": mx1001["proposalId"], "name": unique("anna")},
        headers=anna,
    )
    path = f"/proteins/{protein['proteinId']}"
    r = client.simulate_patch(url(path), json={"acronym": "ak"}, headers=anna)
    assert r.status_code == 200 and r.json["acronym"] == "ak"


def test_a_user_may_not_change_a_closed_proposal(client, anna, get):
    (protein, *_) = rows(get, "/proteins", proposal="mx1002")
    path = f"/proteins/{protein['proteinId']}"
    r = client.simulate_patch(url(path), json={"acronym": "nope"}, headers=anna)
    assert r.status_code == 403
    assert get(path).json == protein
    before = total(get, "/proteins", proposal="mx1002")
    r = client.simulate_post(
        url("/proteins"), json={"proposalId": protein["proposalId"], "name": "closed"}, headers=anna
    )
    assert r.status_code in (403, 422)
    assert total(get, "/proteins", proposal="mx1002") == before


def test_a_user_may_not_write_session_tables(client, anna, get):
    session = get("/sessions/mx1001-1").json
    r = client.simulate_patch(
        url(f"/sessions/{session['sessionId']}"), json={"comments": "x"}, headers=anna
    )
    assert r.status_code == 403
    assert get(f"/sessions/{session['sessionId']}").json == session


# --- unique keys ------------------------------------------------------------------------------------


def test_two_lab_contacts_with_the_same_card_name_are_a_409(client, admin, get, create, mx1001):
    card = unique("Card")
    ben, cara = person_id(get, "member_ben"), person_id(get, "visitor_cara")
    body = {"proposalId": mx1001["proposalId"], "cardName": card}
    first = create("/labcontacts", "labContactId", {**body, "personId": ben})
    assert first["cardName"] == card and first["dewarAvgCustomsValue"] == 0
    before = total(get, "/labcontacts", proposal="mx1001")
    r = client.simulate_post(url("/labcontacts"), json={**body, "personId": cara}, headers=admin)
    assert r.status_code == 409, r.text
    assert r.json["title"] == "409 Conflict"
    assert total(get, "/labcontacts", proposal="mx1001") == before


def test_a_dewar_barcode_clash_is_a_409(client, admin, get, create, mx1001):
    barcode = unique("T-BC")
    create("/dewars", "dewarId", {"shippingId": mx1001["shippingId"], "barCode": barcode})
    r = client.simulate_post(
        url("/dewars"), json={"shippingId": mx1001["shippingId"], "barCode": barcode}, headers=admin
    )
    assert r.status_code == 409
    assert total(get, "/dewars", barCode=barcode) == 1


def test_a_unique_clash_on_patch_is_a_409(client, admin, get, create, mx1001):
    taken = unique("T-BC")
    create("/dewars", "dewarId", {"shippingId": mx1001["shippingId"], "barCode": taken})
    other = create(
        "/dewars", "dewarId", {"shippingId": mx1001["shippingId"], "barCode": unique("T-BC")}
    )
    path = f"/dewars/{other['dewarId']}"
    r = client.simulate_patch(url(path), json={"barCode": taken}, headers=admin)
    assert r.status_code == 409
    assert get(path).json == other


# --- memberships ------------------------------------------------------------------------------------


def test_proposal_membership_post_get_delete(client, admin, get, cleanup):
    cara = person_id(get, "visitor_cara")
    r = client.simulate_post(
        url("/proposals/mx1001/persons"),
        json={"personId": cara, "role": "Associate"},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    item = f"/proposals/mx1001/persons/{cara}"
    cleanup.append(item)
    assert r.headers["Location"].endswith(PREFIX + item)
    assert r.json["personId"] == cara and r.json["role"] == "Associate"
    assert r.json["proposalId"] == get("/proposals/mx1001").json["proposalId"]
    got = get(item)
    assert got.status_code == 200 and got.json == r.json
    assert total(get, "/proposals/mx1001/persons") == 2
    r = client.simulate_delete(url(item), headers=admin)
    assert r.status_code == 204
    assert get(item).status_code == 404
    assert total(get, "/proposals/mx1001/persons") == 1


def test_proposal_membership_may_not_name_another_proposal(client, admin, get):
    cara = person_id(get, "visitor_cara")
    other = get("/proposals/cm2001").json["proposalId"]
    r = client.simulate_post(
        url("/proposals/mx1001/persons"),
        json={"personId": cara, "proposalId": other},
        headers=admin,
    )
    assert r.status_code == 422
    assert paths(r) == ["$.proposalId"]


def test_proposal_membership_of_a_missing_person_is_a_422(client, admin):
    r = client.simulate_post(
        url("/proposals/mx1001/persons"), json={"personId": MISSING}, headers=admin
    )
    assert r.status_code == 422
    assert paths(r) == ["$.personId"]


def test_membership_of_a_missing_proposal_is_a_404(client, admin, get):
    cara = person_id(get, "visitor_cara")
    r = client.simulate_post(
        url("/proposals/mx999999/persons"), json={"personId": cara}, headers=admin
    )
    assert r.status_code == 404


def test_session_membership_post_get_delete(client, admin, get, cleanup):
    ben = person_id(get, "member_ben")
    r = client.simulate_post(
        url("/sessions/mx1001-1/persons"),
        json={"personId": ben, "role": "Team Member"},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    item = f"/sessions/mx1001-1/persons/{ben}"
    cleanup.append(item)
    assert r.headers["Location"].endswith(PREFIX + item)
    assert r.json["remote"] == 0  # server default
    assert get(item).json == r.json
    r = client.simulate_post(
        url("/sessions/mx1001-1/persons"), json={"personId": ben}, headers=admin
    )
    assert r.status_code == 409
    assert client.simulate_delete(url(item), headers=admin).status_code == 204
    assert get(item).status_code == 404


def test_a_user_may_not_add_proposal_members(client, anna, get):
    cara = person_id(get, "visitor_cara")
    r = client.simulate_post(
        url("/proposals/mx1001/persons"), json={"personId": cara}, headers=anna
    )
    assert r.status_code == 403
    assert total(get, "/proposals/mx1001/persons") == 1


# --- image quality indicators: list only, composite key ----------------------------------------------


@pytest.fixture()
def iqi_key(get, engine):
    """A (dataCollectionId, imageNumber) no row holds yet, removed from the database at the end."""
    dc = rows(get, "/datacollections", session="mx1001-1")[0]["dataCollectionId"]
    key = {"dataCollectionId": dc, "imageNumber": 99999}
    yield key
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "DELETE FROM ImageQualityIndicators WHERE dataCollectionId = :d AND imageNumber = :n"
            ),
            {"d": dc, "n": key["imageNumber"]},
        )


def test_image_quality_indicators_are_created_by_admin_with_the_composite_key(
    client, admin, get, iqi_key
):
    before = total(get, "/imagequalityindicators", session="mx1001-1")
    r = client.simulate_post(
        url("/imagequalityindicators"),
        json={**iqi_key, "spotTotal": 42, "dozor_score": 7.5},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    assert r.json["dataCollectionId"] == iqi_key["dataCollectionId"]
    assert r.json["imageNumber"] == iqi_key["imageNumber"] and r.json["spotTotal"] == 42
    found = rows(get, "/imagequalityindicators", **{k: str(v) for k, v in iqi_key.items()})
    assert found == [r.json]
    assert total(get, "/imagequalityindicators", session="mx1001-1") == before + 1
    again = client.simulate_post(url("/imagequalityindicators"), json=iqi_key, headers=admin)
    assert again.status_code == 409


def test_image_quality_indicators_need_both_key_columns(client, admin, iqi_key):
    r = client.simulate_post(
        url("/imagequalityindicators"),
        json={"dataCollectionId": iqi_key["dataCollectionId"]},
        headers=admin,
    )
    assert r.status_code == 422
    assert any("imageNumber" in e["message"] for e in r.json["errors"])


def test_image_quality_indicators_are_not_written_by_users(client, anna, get, iqi_key):
    r = client.simulate_post(url("/imagequalityindicators"), json=iqi_key, headers=anna)
    assert r.status_code == 403
    assert rows(get, "/imagequalityindicators", **{k: str(v) for k, v in iqi_key.items()}) == []


@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
def test_image_quality_indicators_have_no_item_route(client, admin, method):
    r = client.simulate_request(method, url("/imagequalityindicators/1"), json={}, headers=admin)
    assert r.status_code in (404, 405)
