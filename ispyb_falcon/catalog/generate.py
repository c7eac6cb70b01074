"""Generate one JSON Schema per table from a live MySQL/MariaDB database.

The database is the truth (DESIGN.md): request validation, `/schemas`, the
OpenAPI document and the demo database all come from these files, so a site
whose database differs regenerates them instead of editing code. Everything
is read from information_schema with a handful of queries (one per view, for
all tables at once) and written deterministically so that regenerating an
unchanged database gives byte-identical files that diff cleanly in git.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ispyb_falcon.catalog.tables import CATALOG_TABLES

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

DATETIME_PATTERN = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?$"
DATETIME_EXAMPLE = "2026-05-01T09:30:00"
DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
TIME_PATTERN = r"^-?\d{1,3}:\d{2}(:\d{2})?$"
HEX_PATTERN = r"^([0-9a-f]{2})*$"

FLOAT_MAX = 3.402823466e38

# Bytes of storage per MySQL integer type; the range follows from it.
_INTEGER_BYTES = {"tinyint": 1, "smallint": 2, "mediumint": 3, "int": 4, "integer": 4, "bigint": 8}
_TEXT_MAX_LENGTH = {
    "tinytext": 255,
    "text": 65535,
    "mediumtext": 16777215,
    "longtext": 4294967295,
}
_BLOB_TYPES = {"tinyblob", "blob", "mediumblob", "longblob"}
_STRING_TYPES = {"char", "varchar"}
_BINARY_TYPES = {"binary", "varbinary"}
_FLOAT_TYPES = {"float", "double", "real", "double precision"}
_DECIMAL_TYPES = {"decimal", "numeric"}
_NUMERIC_DEFAULT_TYPES = (
    set(_INTEGER_BYTES) | _FLOAT_TYPES | _DECIMAL_TYPES | {"bit", "year", "bool", "boolean"}
)

_NOW_EXPRESSION = re.compile(r"^(current_timestamp|now|localtimestamp|localtime)(\(\d*\))?$", re.I)
_JSON_CHECK = re.compile(r"^json_valid\(`([^`]+)`\)$", re.IGNORECASE)
_ON_UPDATE = re.compile(r"on update (\S+)", re.I)
_NUMBER_LITERAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_INTEGER_LITERAL = re.compile(r"^[+-]?\d+$")


def generate_schemas(engine: sa.Engine, tables: Iterable[str] = CATALOG_TABLES) -> dict[str, dict]:
    """Return a JSON Schema dict per requested table of the engine's current database.

    Raises ValueError naming the tables that do not exist, so a caller that
    asked for exact tables learns which one is missing rather than getting fewer.
    """
    schemas, missing = generate_available(engine, tables)
    if missing:
        raise ValueError(f"table(s) not found in the database: {', '.join(missing)}")
    return schemas


def generate_available(
    engine: sa.Engine, tables: Iterable[str] = CATALOG_TABLES
) -> tuple[dict[str, dict], list[str]]:
    """(a JSON Schema per requested table the database shows, the names it does not show).

    A table the database user holds no privilege on is not shown either
    (information_schema lists only what the user may use): `catalog.site`
    tells the two apart.
    """
    names = list(dict.fromkeys(tables))
    if not names:
        return {}, []
    with engine.connect() as conn:
        database = conn.execute(sa.text("SELECT DATABASE()")).scalar()
        if not database:
            raise ValueError("the database URL names no database (DATABASE() is NULL)")
        mariadb = "mariadb" in str(conn.execute(sa.text("SELECT VERSION()")).scalar()).lower()
        info = _read_information_schema(conn, database, names)
    found = [name for name in names if name in info.tables]
    missing = [name for name in names if name not in info.tables]
    return {name: _table_schema(name, info, mariadb) for name in found}, missing


def write_schemas(schemas: Mapping[str, dict], out_dir: Path) -> list[Path]:
    """Write `<Table>.json` for each schema and remove stale `*.json` files.

    Files are only rewritten when their content changes, and stale files are
    removed so that the directory is exactly the generated set (a table that
    is no longer served must not keep being validated against).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name in sorted(schemas):
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"unsafe table name for a file name: {name!r}")
        text = json.dumps(schemas[name], indent=2, sort_keys=False, ensure_ascii=False) + "\n"
        path = out_dir / f"{name}.json"
        data = text.encode("utf-8")
        if not path.is_file() or path.read_bytes() != data:
            path.write_bytes(data)
        written.append(path)
    keep = {path.name for path in written}
    for path in sorted(out_dir.glob("*.json")):
        if path.name not in keep and path.is_file():
            path.unlink()
    return written


# --------------------------------------------------------------------------
# Reading information_schema


class _Info:
    """Rows from information_schema, grouped by table."""

    def __init__(self) -> None:
        self.tables: dict[str, Mapping[str, Any]] = {}
        self.columns: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        self.primary_keys: dict[str, list[str]] = defaultdict(list)
        # (table, constraint) -> {"table", "refTable", "columns", "refs"}
        self.foreign_keys: dict[tuple[str, str], dict[str, Any]] = {}
        self.rules: dict[tuple[str, str], tuple[str, str]] = {}
        self.indexes: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self.json_columns: set[tuple[str, str]] = set()


def _read_information_schema(conn: sa.Connection, database: str, names: list[str]) -> _Info:
    """One query per information_schema view, for all tables at once."""
    info = _Info()
    in_names = sa.bindparam("names", expanding=True)
    params = {"db": database, "names": names}

    tables_sql = sa.text(
        "SELECT t.TABLE_NAME, t.TABLE_COMMENT, t.TABLE_COLLATION, c.CHARACTER_SET_NAME"
        " FROM information_schema.TABLES t"
        " LEFT JOIN information_schema.COLLATIONS c ON c.COLLATION_NAME = t.TABLE_COLLATION"
        " WHERE t.TABLE_SCHEMA = :db AND t.TABLE_NAME IN :names"
    ).bindparams(in_names)
    for row in conn.execute(tables_sql, params).mappings():
        info.tables[row["TABLE_NAME"]] = dict(row)

    columns_sql = sa.text(
        "SELECT TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_DEFAULT, IS_NULLABLE,"
        " DATA_TYPE, COLUMN_TYPE, CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION,"
        " NUMERIC_SCALE, CHARACTER_SET_NAME, COLLATION_NAME, COLUMN_KEY, EXTRA, COLUMN_COMMENT"
        " FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA = :db AND TABLE_NAME IN :names"
        " ORDER BY TABLE_NAME, ORDINAL_POSITION"
    ).bindparams(in_names)
    for row in conn.execute(columns_sql, params).mappings():
        info.columns[row["TABLE_NAME"]].append(dict(row))

    # Every key column of the database: the primary keys and foreign keys of
    # the requested tables, and the foreign keys of any table pointing at them.
    keys_sql = sa.text(
        "SELECT TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, ORDINAL_POSITION,"
        " REFERENCED_TABLE_SCHEMA, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME"
        " FROM information_schema.KEY_COLUMN_USAGE"
        " WHERE TABLE_SCHEMA = :db AND (TABLE_NAME IN :names OR"
        " (REFERENCED_TABLE_SCHEMA = :db AND REFERENCED_TABLE_NAME IN :names))"
        " ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION"
    ).bindparams(in_names)
    for row in conn.execute(keys_sql, params).mappings():
        table, constraint = row["TABLE_NAME"], row["CONSTRAINT_NAME"]
        if row["REFERENCED_TABLE_NAME"] is None:
            if constraint == "PRIMARY":
                info.primary_keys[table].append(row["COLUMN_NAME"])
            continue
        fk = info.foreign_keys.setdefault(
            (table, constraint),
            {"table": table, "refTable": row["REFERENCED_TABLE_NAME"], "columns": [], "refs": []},
        )
        fk["columns"].append(row["COLUMN_NAME"])
        fk["refs"].append(row["REFERENCED_COLUMN_NAME"])

    rules_sql = sa.text(
        "SELECT TABLE_NAME, CONSTRAINT_NAME, UPDATE_RULE, DELETE_RULE"
        " FROM information_schema.REFERENTIAL_CONSTRAINTS"
        " WHERE CONSTRAINT_SCHEMA = :db AND (TABLE_NAME IN :names OR"
        " (UNIQUE_CONSTRAINT_SCHEMA = :db AND REFERENCED_TABLE_NAME IN :names))"
    ).bindparams(in_names)
    for row in conn.execute(rules_sql, params).mappings():
        info.rules[(row["TABLE_NAME"], row["CONSTRAINT_NAME"])] = (
            row["UPDATE_RULE"],
            row["DELETE_RULE"],
        )

    # Column-level CHECK (json_valid(`col`)) marks MariaDB's JSON columns. MySQL's view has
    # no TABLE_NAME; there the check is simply not seen.
    checks_sql = sa.text(
        "SELECT TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS"
        " WHERE CONSTRAINT_SCHEMA = :db AND TABLE_NAME IN :names"
    ).bindparams(in_names)
    try:
        with conn.begin_nested():
            for row in conn.execute(checks_sql, params).mappings():
                m = _JSON_CHECK.match(str(row["CHECK_CLAUSE"]).strip())
                if m:
                    info.json_columns.add((row["TABLE_NAME"], m.group(1)))
    except sa.exc.DBAPIError:
        pass

    stats_sql = sa.text(
        "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME"
        " FROM information_schema.STATISTICS"
        " WHERE TABLE_SCHEMA = :db AND TABLE_NAME IN :names AND INDEX_NAME <> 'PRIMARY'"
        " ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX"
    ).bindparams(in_names)
    for row in conn.execute(stats_sql, params).mappings():
        index = info.indexes[row["TABLE_NAME"]].setdefault(
            row["INDEX_NAME"],
            {"name": row["INDEX_NAME"], "columns": [], "unique": int(row["NON_UNIQUE"]) == 0},
        )
        index["columns"].append(row["COLUMN_NAME"])
    return info


# --------------------------------------------------------------------------
# Building the schema


def _table_schema(name: str, info: _Info, mariadb: bool) -> dict[str, Any]:
    table = info.tables[name]
    columns = sorted(info.columns[name], key=lambda c: int(c["ORDINAL_POSITION"]))
    primary_key = info.primary_keys.get(name, [])
    fk_columns = {
        column
        for (table_name, _), fk in info.foreign_keys.items()
        if table_name == name
        for column in fk["columns"]
    }

    properties: dict[str, Any] = {}
    required: list[str] = []
    for column in columns:
        prop, needed = _column_schema(column, column["COLUMN_NAME"] in primary_key, mariadb)
        if (name, column["COLUMN_NAME"]) in info.json_columns:
            prop["contentMediaType"] = "application/json"
            prop["x-ispyb"]["json"] = True
        properties[column["COLUMN_NAME"]] = prop
        if needed or (column["COLUMN_NAME"] in fk_columns and _is_required_fk(prop)):
            required.append(column["COLUMN_NAME"])

    schema: dict[str, Any] = {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": name,
        "title": name,
    }
    if table["TABLE_COMMENT"]:
        schema["description"] = table["TABLE_COMMENT"]
    schema["type"] = "object"
    schema["properties"] = properties
    schema["required"] = required
    schema["additionalProperties"] = False
    schema["x-ispyb"] = {
        "table": name,
        "primaryKey": list(primary_key),
        "charset": _table_charset(table),
        "foreignKeys": _foreign_keys(name, info),
        "indexes": [info.indexes[name][key] for key in sorted(info.indexes.get(name, {}))],
        "referencedBy": _referenced_by(name, info),
    }
    return schema


def _is_required_fk(prop: Mapping[str, Any]) -> bool:
    """A NOT NULL foreign key column must be given even if it has a default:
    the default (usually 0) cannot reference a row."""
    x = prop["x-ispyb"]
    return not x["nullable"] and not prop.get("readOnly", False)


def _table_charset(table: Mapping[str, Any]) -> str | None:
    if table.get("CHARACTER_SET_NAME"):
        return table["CHARACTER_SET_NAME"]
    collation = table.get("TABLE_COLLATION")
    return collation.split("_", 1)[0] if collation else None


def _foreign_keys(name: str, info: _Info) -> list[dict[str, Any]]:
    result = []
    for (table, constraint), fk in sorted(info.foreign_keys.items()):
        if table != name:
            continue
        on_update, on_delete = info.rules.get((table, constraint), (None, None))
        result.append(
            {
                "name": constraint,
                "columns": list(fk["columns"]),
                "references": {"table": fk["refTable"], "columns": list(fk["refs"])},
                "onDelete": on_delete,
                "onUpdate": on_update,
            }
        )
    return result


def _referenced_by(name: str, info: _Info) -> list[dict[str, Any]]:
    result = []
    for (table, constraint), fk in sorted(info.foreign_keys.items()):
        if fk["refTable"] != name:
            continue
        result.append(
            {
                "table": table,
                "columns": list(fk["columns"]),
                "references": list(fk["refs"]),
                "name": constraint,
                "onDelete": info.rules.get((table, constraint), (None, None))[1],
            }
        )
    return result


def _column_schema(
    column: Mapping[str, Any], primary_key: bool, mariadb: bool
) -> tuple[dict[str, Any], bool]:
    """Return the property schema of one column and whether the client must give it."""
    data_type = str(column["DATA_TYPE"]).lower()
    column_type = str(column["COLUMN_TYPE"])
    nullable = column["IS_NULLABLE"] == "YES"
    extra = str(column["EXTRA"] or "")
    auto_increment = "auto_increment" in extra.lower()
    generated = "generated" in extra.lower()
    on_update_match = _ON_UPDATE.search(extra)
    on_update = on_update_match.group(1) if on_update_match else None
    has_default, default, expression = _parse_default(column, data_type, mariadb)
    server_timestamp = data_type in ("timestamp", "datetime") and (
        on_update is not None or (expression and _NOW_EXPRESSION.match(str(default or "")))
    )
    blob = data_type in _BLOB_TYPES

    prop: dict[str, Any] = _type_keywords(data_type, column_type, column)
    if nullable:
        prop["type"] = [prop["type"], "null"]
        if "enum" in prop:
            prop["enum"].append(None)
    if column["COLUMN_COMMENT"]:
        prop["description"] = column["COLUMN_COMMENT"]
    if has_default and not expression and default is not None:
        prop["default"] = default
    if data_type in ("datetime", "timestamp"):
        prop["examples"] = [DATETIME_EXAMPLE]
    read_only = auto_increment or bool(server_timestamp) or generated or blob
    if read_only:
        prop["readOnly"] = True
    if blob:
        prop["writeOnly"] = False

    x: dict[str, Any] = {"sqlType": column_type, "nullable": nullable}
    if column["CHARACTER_SET_NAME"]:
        x["charset"] = column["CHARACTER_SET_NAME"]
    if column.get("COLLATION_NAME"):
        x["collation"] = column["COLLATION_NAME"]  # how the database compares and sorts
    if auto_increment:
        x["autoIncrement"] = True
    if primary_key:
        x["primaryKey"] = True
    if has_default:
        x["serverDefault"] = str(column["COLUMN_DEFAULT"])
    if on_update:
        x["onUpdate"] = on_update
    if generated:
        x["generated"] = True
    if blob:
        x["blob"] = True
    prop["x-ispyb"] = x

    needed = not nullable and not has_default and not read_only
    return prop, needed


def _type_keywords(data_type: str, column_type: str, column: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON Schema type keywords for a MySQL column type."""
    unsigned = "unsigned" in column_type.lower() or "zerofill" in column_type.lower()
    if data_type in _INTEGER_BYTES:
        bits = 8 * _INTEGER_BYTES[data_type]
        if unsigned:
            return {"type": "integer", "minimum": 0, "maximum": 2**bits - 1}
        return {"type": "integer", "minimum": -(2 ** (bits - 1)), "maximum": 2 ** (bits - 1) - 1}
    if data_type in ("bool", "boolean"):
        return {"type": "integer", "minimum": -128, "maximum": 127}
    if data_type == "bit":
        bits = int(column["NUMERIC_PRECISION"] or 1)
        return {"type": "integer", "minimum": 0, "maximum": 2**bits - 1}
    if data_type == "year":
        return {"type": "integer", "minimum": 0, "maximum": 2155}
    if data_type == "float":
        return {"type": "number", "minimum": 0 if unsigned else -FLOAT_MAX, "maximum": FLOAT_MAX}
    if data_type in _FLOAT_TYPES:
        return {"type": "number", "minimum": 0} if unsigned else {"type": "number"}
    if data_type in _DECIMAL_TYPES:
        precision = int(column["NUMERIC_PRECISION"] or 10)
        scale = int(column["NUMERIC_SCALE"] or 0)
        top = Decimal(10) ** (precision - scale) - Decimal(10) ** (-scale)
        bound: int | float = int(top) if scale == 0 else float(top)
        return {"type": "number", "minimum": 0 if unsigned else -bound, "maximum": bound}
    if data_type in _STRING_TYPES:
        return {"type": "string", "maxLength": int(column["CHARACTER_MAXIMUM_LENGTH"])}
    if data_type in _TEXT_MAX_LENGTH:
        return {"type": "string", "maxLength": _TEXT_MAX_LENGTH[data_type]}
    if data_type == "enum":
        return {"type": "string", "enum": parse_enum_values(column_type)}
    if data_type in ("datetime", "timestamp"):
        return {"type": "string", "pattern": DATETIME_PATTERN}
    if data_type == "date":
        return {"type": "string", "pattern": DATE_PATTERN}
    if data_type == "time":
        return {"type": "string", "pattern": TIME_PATTERN}
    if data_type in _BINARY_TYPES:
        length = int(column["CHARACTER_MAXIMUM_LENGTH"])
        return {"type": "string", "pattern": HEX_PATTERN, "maxLength": 2 * length}
    # blobs, set, json, geometry...: a string; blobs are read-only and never served.
    return {"type": "string"}


def parse_enum_values(column_type: str) -> list[str]:
    """Parse `enum('a','b c','it''s')` into its values.

    A real parser rather than a split on commas: values may contain commas,
    spaces and doubled (escaped) quotes.
    """
    start = column_type.find("(")
    if start < 0 or not column_type.endswith(")"):
        raise ValueError(f"not an enum/set column type: {column_type!r}")
    body = column_type[start + 1 : -1]
    values: list[str] = []
    i = 0
    while i < len(body):
        if body[i] != "'":
            raise ValueError(f"cannot parse enum values of {column_type!r}")
        i += 1
        chars: list[str] = []
        while True:
            if i >= len(body):
                raise ValueError(f"unterminated enum value in {column_type!r}")
            char = body[i]
            if char == "'":
                if i + 1 < len(body) and body[i + 1] == "'":
                    chars.append("'")
                    i += 2
                    continue
                i += 1
                break
            if char == "\\" and i + 1 < len(body):
                chars.append(body[i + 1])
                i += 2
                continue
            chars.append(char)
            i += 1
        values.append("".join(chars))
        if i < len(body):
            if body[i] != ",":
                raise ValueError(f"cannot parse enum values of {column_type!r}")
            i += 1
    return values


def _parse_default(
    column: Mapping[str, Any], data_type: str, mariadb: bool
) -> tuple[bool, Any, bool]:
    """Return (has a server default, its JSON value or the expression, is an expression).

    MariaDB (>= 10.2.7) quotes string literals in COLUMN_DEFAULT and writes
    NULL for a NULL default; MySQL does neither and marks expressions with
    DEFAULT_GENERATED in EXTRA.
    """
    raw = column["COLUMN_DEFAULT"]
    if raw is None:
        return False, None, False
    raw = str(raw)
    extra = str(column["EXTRA"] or "").upper()
    if mariadb:
        if raw == "NULL":
            return False, None, False
        if len(raw) >= 2 and raw[0] == "'" and raw[-1] == "'":
            return True, _unquote(raw[1:-1]), False
        if _NUMBER_LITERAL.match(raw):
            return True, _number(raw), False
        return True, raw, True
    if "DEFAULT_GENERATED" in extra or _NOW_EXPRESSION.match(raw):
        return True, raw, True
    if data_type in _NUMERIC_DEFAULT_TYPES and _NUMBER_LITERAL.match(raw):
        return True, _number(raw), False
    return True, raw, False


def _unquote(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "'" and i + 1 < len(text) and text[i + 1] == "'":
            out.append("'")
            i += 2
        elif char == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append({"n": "\n", "t": "\t", "r": "\r", "0": "\0"}.get(nxt, nxt))
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _number(text: str) -> int | float:
    return int(text) if _INTEGER_LITERAL.match(text) else float(text)
