"""JSON Schema generation from the official ISPyB schema on MariaDB.

Database tests need ISPYB_FALCON_TEST_DATABASE_URL (a MariaDB holding the
official schema; only read here). Unset: they are skipped. Set but
unreachable: they fail. The metaschema check of the committed files and the
enum parser need no database.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import sqlalchemy as sa

from ispyb_falcon.catalog.generate import generate_schemas, parse_enum_values, write_schemas
from ispyb_falcon.catalog.tables import CATALOG_TABLES

from .conftest import needs_mariadb

SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas_json"


@pytest.fixture(scope="module")
def engine(mariadb_engine) -> sa.Engine:
    return mariadb_engine


@pytest.fixture(scope="module")
def schemas(engine: sa.Engine) -> dict[str, dict]:
    return generate_schemas(engine)


def prop(schemas: dict[str, dict], table: str, column: str) -> dict:
    return schemas[table]["properties"][column]


# -- no database -------------------------------------------------------------


def test_catalog_lists_37_distinct_tables():
    assert len(CATALOG_TABLES) == 37
    assert len(set(CATALOG_TABLES)) == 37


def test_committed_schemas_are_valid_draft_2020_12_schemas():
    files = sorted(SCHEMAS_DIR.glob("*.json"))
    assert {f.stem for f in files} == set(CATALOG_TABLES)
    for file in files:
        schema = json.loads(file.read_text(encoding="utf-8"))
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["$id"] == file.stem


def test_enum_parser_keeps_spaces_commas_and_escaped_quotes():
    column_type = r"enum('Not Permitted','a,b','it''s','back\\slash','','x-y')"
    assert parse_enum_values(column_type) == [
        "Not Permitted",
        "a,b",
        "it's",
        "back\\slash",
        "",
        "x-y",
    ]


def test_write_schemas_is_byte_stable_and_removes_stale_files(tmp_path: Path):
    (tmp_path / "Gone.json").write_text("{}\n")
    (tmp_path / "notes.txt").write_text("kept")
    schemas = {"B": {"title": "B", "description": "é"}, "A": {"title": "A"}}
    paths = write_schemas(schemas, tmp_path)
    assert [p.name for p in paths] == ["A.json", "B.json"]
    assert not (tmp_path / "Gone.json").exists()
    assert (tmp_path / "notes.txt").exists()
    assert (tmp_path / "B.json").read_bytes() == (
        '{\n  "title": "B",\n  "description": "é"\n}\n'.encode()
    )


# -- column types ------------------------------------------------------------


@needs_mariadb
def test_unsigned_int_key_has_unsigned_range_and_is_read_only(schemas):
    p = prop(schemas, "Proposal", "proposalId")
    assert p["type"] == "integer"
    assert (p["minimum"], p["maximum"]) == (0, 4294967295)
    assert p["readOnly"] is True
    assert p["x-ispyb"] == {
        "sqlType": "int(10) unsigned",
        "nullable": False,
        "autoIncrement": True,
        "primaryKey": True,
    }


@needs_mariadb
def test_signed_int_has_signed_range(schemas):
    p = prop(schemas, "DataCollectionGroup", "dataCollectionGroupId")
    assert p["x-ispyb"]["sqlType"] == "int(11)"
    assert (p["minimum"], p["maximum"]) == (-2147483648, 2147483647)


@needs_mariadb
def test_mediumint_unsigned_range(schemas):
    p = prop(schemas, "ImageQualityIndicators", "imageNumber")
    assert p["x-ispyb"]["sqlType"] == "mediumint(8) unsigned"
    assert (p["minimum"], p["maximum"]) == (0, 16777215)


@needs_mariadb
def test_tinyint_1_is_a_nullable_integer_with_tinyint_range(schemas):
    p = prop(schemas, "BLSession", "scheduled")
    assert p["type"] == ["integer", "null"]
    assert (p["minimum"], p["maximum"]) == (-128, 127)
    assert p["x-ispyb"]["sqlType"] == "tinyint(1)"


@needs_mariadb
def test_varchar_length_becomes_max_length(schemas):
    p = prop(schemas, "Proposal", "title")
    assert p["type"] == ["string", "null"]
    assert p["maxLength"] == 200
    assert p["x-ispyb"]["charset"] == "latin1"


@needs_mariadb
def test_text_types_get_their_max_length(schemas):
    assert prop(schemas, "Protein", "sequence")["maxLength"] == 65535
    assert prop(schemas, "Dewar", "extra")["maxLength"] == 4294967295


@needs_mariadb
def test_nullable_enum_keeps_values_with_spaces_and_allows_null(schemas):
    p = prop(schemas, "BLSession", "riskRating")
    assert p["type"] == ["string", "null"]
    assert p["enum"] == ["Low", "Medium", "High", "Not Permitted", None]
    assert p["description"] == "ERA in user admin system"


@needs_mariadb
def test_not_null_enum_with_default_is_not_required(schemas):
    p = prop(schemas, "Dewar", "type")
    assert p["type"] == "string"
    assert None not in p["enum"] and "Dewar" in p["enum"]
    assert p["default"] == "Dewar"
    assert p["x-ispyb"]["serverDefault"] == "'Dewar'"
    assert "type" not in schemas["Dewar"]["required"]


@needs_mariadb
def test_datetime_pattern_accepts_t_or_space_and_optional_seconds(schemas):
    p = prop(schemas, "Proposal", "startDate")
    validator = jsonschema.Draft202012Validator(p)
    for good in ("2026-05-01T09:30:00", "2026-05-01 09:30", None):
        assert validator.is_valid(good), good
    for bad in ("2026-05-01", "01/05/2026 09:30", "2026-05-01T09:30:00Z"):
        assert not validator.is_valid(bad), bad
    assert p["examples"] == ["2026-05-01T09:30:00"]
    assert "format" not in p


@needs_mariadb
def test_date_and_time_columns_have_patterns(schemas):
    date = jsonschema.Draft202012Validator(prop(schemas, "Shipping", "deliveryAgent_shippingDate"))
    time = jsonschema.Draft202012Validator(prop(schemas, "Shipping", "readyByTime"))
    assert date.is_valid("2026-05-01") and not date.is_valid("2026-05-01T00:00")
    assert time.is_valid("09:30:00") and time.is_valid("-120:00") and not time.is_valid("9h30")


@needs_mariadb
def test_server_timestamps_are_read_only_and_not_required(schemas):
    p = prop(schemas, "Proposal", "bltimeStamp")
    assert p["readOnly"] is True
    assert p["x-ispyb"]["serverDefault"] == "current_timestamp()"
    assert "default" not in p
    assert "bltimeStamp" not in schemas["Proposal"]["required"]
    on_update = prop(schemas, "RobotAction", "startTimestamp")
    assert on_update["readOnly"] is True
    assert on_update["x-ispyb"]["onUpdate"] == "current_timestamp()"


@needs_mariadb
def test_expression_defaults_are_kept_only_in_x_ispyb(schemas):
    p = prop(schemas, "Dewar", "source")
    assert "default" not in p
    assert p["x-ispyb"]["serverDefault"] == "current_user()"
    assert "readOnly" not in p


@needs_mariadb
def test_binary_16_is_lowercase_hex_of_32_characters(schemas):
    p = prop(schemas, "Proposal", "externalId")
    assert p["maxLength"] == 32
    validator = jsonschema.Draft202012Validator(p)
    assert validator.is_valid("00ff" * 8)
    assert not validator.is_valid("00FF")
    assert not validator.is_valid("abc")


@needs_mariadb
def test_float_and_double_bounds(schemas):
    signed = prop(schemas, "DataCollection", "axisStart")
    assert signed["x-ispyb"]["sqlType"] == "float"
    assert signed["type"] == ["number", "null"]
    assert (signed["minimum"], signed["maximum"]) == (-3.402823466e38, 3.402823466e38)
    unsigned = prop(schemas, "DataCollection", "magnification")
    assert unsigned["x-ispyb"]["sqlType"] == "float unsigned"
    assert (unsigned["minimum"], unsigned["maximum"]) == (0, 3.402823466e38)
    double = prop(schemas, "DataCollection", "flux")
    assert double["x-ispyb"]["sqlType"] == "double"
    assert "minimum" not in double and "maximum" not in double


@needs_mariadb
def test_numeric_default_is_a_number(schemas):
    assert prop(schemas, "BLSession", "visit_number")["default"] == 0
    assert prop(schemas, "BLSession", "archived")["default"] == 0


# -- table level -------------------------------------------------------------


@needs_mariadb
def test_table_header_and_order(schemas):
    schema = schemas["Proposal"]
    assert list(schema)[:4] == ["$schema", "$id", "title", "type"]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    assert list(schema["properties"])[:3] == ["proposalId", "personId", "title"]
    assert schema["x-ispyb"]["primaryKey"] == ["proposalId"]
    assert schema["x-ispyb"]["charset"] == "latin1"


@needs_mariadb
def test_required_lists_not_null_columns_without_default_and_not_null_foreign_keys(schemas):
    assert schemas["LabContact"]["required"] == ["personId", "cardName", "proposalId"]
    assert schemas["Proposal"]["required"] == ["personId"]
    assert "proposalId" in schemas["BLSession"]["required"]
    assert "proteinId" in schemas["Crystal"]["required"]
    assert schemas["ImageQualityIndicators"]["required"] == ["dataCollectionId", "imageNumber"]


@needs_mariadb
def test_foreign_keys_are_listed_with_rules(schemas):
    assert schemas["Proposal"]["x-ispyb"]["foreignKeys"] == [
        {
            "name": "Proposal_ibfk_1",
            "columns": ["personId"],
            "references": {"table": "Person", "columns": ["personId"]},
            "onDelete": "CASCADE",
            "onUpdate": "CASCADE",
        }
    ]
    names = [fk["name"] for fk in schemas["BLSession"]["x-ispyb"]["foreignKeys"]]
    assert names == sorted(names)


@needs_mariadb
def test_referenced_by_covers_every_table_of_the_database(schemas):
    referenced_by = schemas["Proposal"]["x-ispyb"]["referencedBy"]
    assert {
        "table": "BLSession",
        "columns": ["proposalId"],
        "references": ["proposalId"],
        "name": "BLSession_ibfk_1",
        "onDelete": "CASCADE",
    } in referenced_by
    tables = {r["table"] for r in referenced_by}
    assert tables - set(CATALOG_TABLES), "expected a referencing table outside the catalog"
    assert "DiffractionPlan" in tables
    keys = [(r["table"], r["name"]) for r in referenced_by]
    assert keys == sorted(keys)


@needs_mariadb
def test_indexes_include_unique_ones_but_not_primary(schemas):
    indexes = schemas["Proposal"]["x-ispyb"]["indexes"]
    assert {
        "name": "Proposal_FKIndexCodeNumber",
        "columns": ["proposalCode", "proposalNumber"],
        "unique": True,
    } in indexes
    assert {"name": "Proposal_FKIndex1", "columns": ["personId"], "unique": False} in indexes
    assert all(i["name"] != "PRIMARY" for i in indexes)
    assert [i["name"] for i in indexes] == sorted(i["name"] for i in indexes)


@needs_mariadb
def test_comments_become_descriptions(schemas):
    assert prop(schemas, "Proposal", "proposalType")["description"] == "Proposal type: MX, BX"
    assert schemas["RobotAction"]["description"] == "Robot actions as reported by GDA"
    assert "description" not in schemas["Proposal"]


@needs_mariadb
def test_generated_schema_validates_rows(schemas):
    validator = jsonschema.Draft202012Validator(schemas["Proposal"])
    assert validator.is_valid({"personId": 1, "title": "x", "state": "Open"})
    assert not validator.is_valid({"title": "no person"})
    assert not validator.is_valid({"personId": 4294967296})
    assert not validator.is_valid({"personId": 1, "title": "t" * 201})
    assert not validator.is_valid({"personId": 1, "unknownColumn": 1})


@needs_mariadb
def test_unknown_table_is_a_value_error_naming_it(engine):
    with pytest.raises(ValueError, match="NoSuchTable"):
        generate_schemas(engine, ["Proposal", "NoSuchTable"])


# -- the artefact ------------------------------------------------------------


@needs_mariadb
def test_generation_is_deterministic(engine, tmp_path: Path):
    first = write_schemas(generate_schemas(engine), tmp_path / "one")
    second = write_schemas(generate_schemas(engine), tmp_path / "two")
    assert [p.name for p in first] == [p.name for p in second]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


@needs_mariadb
def test_output_holds_no_database_name_or_counters(engine, schemas):
    with engine.connect() as conn:
        database = conn.execute(sa.text("SELECT DATABASE()")).scalar()
    text = json.dumps(schemas)
    assert f'"{database}"' not in text
    assert "AUTO_INCREMENT=" not in text.upper()


@needs_mariadb
def test_committed_schemas_equal_a_fresh_generation(engine, tmp_path: Path):
    fresh = write_schemas(generate_schemas(engine), tmp_path)
    committed = sorted(SCHEMAS_DIR.glob("*.json"))
    assert [p.name for p in committed] == [p.name for p in fresh]
    stale = [p.name for p in fresh if (SCHEMAS_DIR / p.name).read_bytes() != p.read_bytes()]
    assert not stale, f"schemas_json is out of date, regenerate: {stale}"


@needs_mariadb
def test_json_columns_are_marked_from_their_check_constraint(schemas):
    extra = schemas["Shipping"]["properties"]["extra"]
    assert extra["contentMediaType"] == "application/json"
    assert extra["x-ispyb"]["json"] is True and extra["x-ispyb"]["charset"] == "utf8mb4"
    assert "json" not in schemas["Shipping"]["properties"]["comments"]["x-ispyb"]
