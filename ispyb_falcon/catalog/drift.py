"""Compare the live database with the JSON Schemas in use.

The live database is the truth: a site whose database differs from the
schema files must learn it at start-up, by table and column name, not from a
500 on the first request that touches the difference.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

_INT_DISPLAY_WIDTH = re.compile(r"\b(tinyint|smallint|mediumint|int|integer|bigint)\(\d+\)")


def check_drift(engine: sa.Engine, schemas: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Return the differences between the database and the schemas; empty means none.

    On MySQL/MariaDB: missing tables, missing/extra columns, SQL type,
    nullability and primary key. On other databases (the SQLite demo):
    tables, columns and nullability, through the SQLAlchemy inspector.
    """
    if engine.dialect.name in ("mysql", "mariadb"):
        live = _live_mysql(engine, list(schemas))
    else:
        live = _live_inspected(engine, list(schemas))
    problems: list[str] = []
    for table in sorted(schemas):
        if table not in live:
            problems.append(f"missing table: {table}")
            continue
        problems.extend(_compare_table(table, schemas[table], live[table]))
    return problems


def load_schema_dir(path: Path) -> dict[str, dict]:
    """Read every `*.json` file of a directory, keyed by file stem (the table name).

    A broken file is reported by name, so that a hand-edited schema does not
    surface as an obscure error deep inside start-up.
    """
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"schema directory not found: {path}")
    schemas: dict[str, dict] = {}
    for file in sorted(path.glob("*.json")):
        try:
            schema = json.loads(file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{file.name}: invalid JSON: {exc}") from exc
        if not isinstance(schema, dict):
            raise ValueError(f"{file.name}: a JSON Schema must be an object")
        schemas[file.stem] = schema
    return schemas


# --------------------------------------------------------------------------


def _compare_table(table: str, schema: Mapping[str, Any], live: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    properties: Mapping[str, Any] = schema.get("properties", {})
    columns: Mapping[str, Mapping[str, Any]] = live["columns"]
    for name in properties:
        if name not in columns:
            problems.append(f"{table}: column '{name}' is in the schema but not in the database")
    for name in columns:
        if name not in properties:
            problems.append(f"{table}: column '{name}' is in the database but not in the schema")
    for name, prop in properties.items():
        if name not in columns:
            continue
        column = columns[name]
        x = prop.get("x-ispyb", {})
        expected_type = x.get("sqlType")
        actual_type = column.get("sqlType")
        if expected_type and actual_type and _norm_type(expected_type) != _norm_type(actual_type):
            problems.append(
                f"{table}: column '{name}' has type '{actual_type}' in the database"
                f" but '{expected_type}' in the schema"
            )
        expected_null = _schema_nullable(prop)
        if expected_null != column["nullable"]:
            problems.append(
                f"{table}: column '{name}' is "
                f"{'nullable' if column['nullable'] else 'NOT NULL'} in the database but "
                f"{'nullable' if expected_null else 'NOT NULL'} in the schema"
            )
    live_pk = live.get("primaryKey")
    schema_pk = schema.get("x-ispyb", {}).get("primaryKey")
    if live_pk is not None and schema_pk is not None and list(live_pk) != list(schema_pk):
        problems.append(
            f"{table}: primary key is ({', '.join(live_pk)}) in the database"
            f" but ({', '.join(schema_pk)}) in the schema"
        )
    return problems


def _schema_nullable(prop: Mapping[str, Any]) -> bool:
    x = prop.get("x-ispyb", {})
    if "nullable" in x:
        return bool(x["nullable"])
    kind = prop.get("type")
    return kind == "null" or (isinstance(kind, list) and "null" in kind)


def _norm_type(sql_type: str) -> str:
    """MySQL 8 drops integer display widths (`int(10) unsigned` -> `int unsigned`);
    they do not change what a column holds, so they are not drift."""
    text = " ".join(sql_type.lower().split())
    return _INT_DISPLAY_WIDTH.sub(r"\1", text)


def _live_mysql(engine: sa.Engine, tables: list[str]) -> dict[str, dict[str, Any]]:
    """Columns, types and nullability in one query on COLUMNS, primary keys in one
    on KEY_COLUMN_USAGE (COLUMN_KEY = 'PRI' can also mark a UNIQUE NOT NULL key)."""
    live: dict[str, dict[str, Any]] = {}
    if not tables:
        return live
    names = sa.bindparam("names", expanding=True)
    columns_sql = sa.text(
        "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE"
        " FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN :names"
        " ORDER BY TABLE_NAME, ORDINAL_POSITION"
    ).bindparams(names)
    keys_sql = sa.text(
        "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE"
        " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN :names"
        " AND CONSTRAINT_NAME = 'PRIMARY'"
        " ORDER BY TABLE_NAME, ORDINAL_POSITION"
    ).bindparams(names)
    with engine.connect() as conn:
        for row in conn.execute(columns_sql, {"names": tables}).mappings():
            table = live.setdefault(row["TABLE_NAME"], {"columns": {}, "primaryKey": []})
            table["columns"][row["COLUMN_NAME"]] = {
                "sqlType": row["COLUMN_TYPE"],
                "nullable": row["IS_NULLABLE"] == "YES",
            }
        for row in conn.execute(keys_sql, {"names": tables}).mappings():
            if row["TABLE_NAME"] in live:
                live[row["TABLE_NAME"]]["primaryKey"].append(row["COLUMN_NAME"])
    return live


def _live_inspected(engine: sa.Engine, tables: list[str]) -> dict[str, dict[str, Any]]:
    """Table and column names and nullability through the SQLAlchemy inspector."""
    inspector = sa.inspect(engine)
    existing = set(inspector.get_table_names())
    live: dict[str, dict[str, Any]] = {}
    for name in tables:
        if name not in existing:
            continue
        live[name] = {
            "columns": {
                column["name"]: {"nullable": bool(column["nullable"])}
                for column in inspector.get_columns(name)
            },
            "primaryKey": None,
        }
    return live
