"""Compare the live database with the JSON Schemas in use.

The live database is the truth: a site whose database differs from the
schema files must learn it at start-up, by table and column name, not from a
500 on the first request that touches the difference.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from .generate import parse_enum_values
from .site import MISSING, Site, normalized_type, read_site


def check_drift(engine: sa.Engine, schemas: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Return the differences between the database and the schemas; empty means none."""
    return differences(schemas, read_site(engine, list(schemas)))


def differences(schemas: Mapping[str, Mapping[str, Any]], site: Site) -> list[str]:
    """Each difference between the schemas and what `read_site` found, one line each.

    On MariaDB/MySQL: tables, columns, SQL types (naming the enum values added or
    missing), nullability, defaults, character sets, primary and foreign keys.
    On other databases (the SQLite demo): tables, columns and nullability.
    """
    problems: list[str] = []
    for table in sorted(schemas):
        if table in site.absent:
            reason = site.absent[table]
            problems.append(
                f"missing table: {table}"
                if reason == MISSING
                else f"unreadable table: {table} ({reason})"
            )
            continue
        if table not in site.live:
            problems.append(f"missing table: {table}")
            continue
        problems.extend(_compare_table(table, schemas[table], site.live[table], site.detailed))
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


def _compare_table(
    table: str, schema: Mapping[str, Any], live: Mapping[str, Any], detailed: bool
) -> list[str]:
    problems: list[str] = []
    properties: Mapping[str, Any] = schema.get("properties", {})
    columns: Mapping[str, Mapping[str, Any]] = live.get("properties", {})
    for name in properties:
        if name not in columns:
            problems.append(f"{table}: column '{name}' is in the schema but not in the database")
    for name in columns:
        if name not in properties:
            problems.append(f"{table}: column '{name}' is in the database but not in the schema")
    for name, prop in properties.items():
        if name in columns:
            problems.extend(
                f"{table}: column '{name}' {text}"
                for text in _compare_column(
                    prop.get("x-ispyb", {}), columns[name]["x-ispyb"], detailed
                )
            )
    if detailed:
        problems.extend(f"{table}: {text}" for text in _compare_keys(schema, live))
    return problems


def _compare_column(x: Mapping[str, Any], live: Mapping[str, Any], detailed: bool) -> list[str]:
    """What the database decides about one column, where the schema says otherwise."""
    out: list[str] = []
    if bool(x.get("nullable")) != bool(live.get("nullable")):
        out.append(f"is {_nullable(live)} in the database but {_nullable(x)} in the schema")
    if not detailed:
        return out
    ours, theirs = x.get("sqlType", ""), live.get("sqlType", "")
    if ours and theirs and normalized_type(ours) != normalized_type(theirs):
        out.append(_type_difference(ours, theirs))
    if x.get("serverDefault") != live.get("serverDefault"):
        out.append(f"has {_default(live)} in the database but {_default(x)} in the schema")
    if x.get("charset") != live.get("charset"):
        out.append(
            f"stores {live.get('charset') or 'no text'} in the database"
            f" but {x.get('charset') or 'no text'} in the schema"
        )
    if x.get("collation") and live.get("collation") and x["collation"] != live["collation"]:
        # how `=`, `[like]`, `search` and `order_by` compare text (case, accents)
        out.append(
            f"compares text as {live['collation']} in the database but {x['collation']} in the schema"
        )
    if bool(x.get("autoIncrement")) != bool(live.get("autoIncrement")):
        out.append(
            f"is {'' if live.get('autoIncrement') else 'not '}AUTO_INCREMENT in the database"
        )
    return out


def _type_difference(ours: str, theirs: str) -> str:
    """An enum or set names the values that differ; other types give both."""
    kind = normalized_type(ours).split("(", 1)[0]
    if kind in ("enum", "set") and normalized_type(theirs).split("(", 1)[0] == kind:
        try:
            mine, live = parse_enum_values(ours), parse_enum_values(theirs)
        except ValueError:
            pass
        else:
            parts = []
            if added := [v for v in live if v not in mine]:
                parts.append("allows " + ", ".join(map(repr, added)) + " only in the database")
            if gone := [v for v in mine if v not in live]:
                parts.append("allows " + ", ".join(map(repr, gone)) + " only in the schema")
            if parts:
                return "; ".join(parts)
            return "lists its values in another order in the database"
    return f"has type '{theirs}' in the database but '{ours}' in the schema"


def _compare_keys(schema: Mapping[str, Any], live: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    ours, theirs = schema.get("x-ispyb", {}), live.get("x-ispyb", {})
    if list(ours.get("primaryKey", [])) != list(theirs.get("primaryKey", [])):
        out.append(
            f"primary key is ({', '.join(theirs.get('primaryKey', []))}) in the database"
            f" but ({', '.join(ours.get('primaryKey', []))}) in the schema"
        )
    mine, found = _foreign_keys(ours), _foreign_keys(theirs)
    out += [
        f"foreign key {fk} is in the database but not in the schema" for fk in sorted(found - mine)
    ]
    out += [
        f"foreign key {fk} is in the schema but not in the database" for fk in sorted(mine - found)
    ]
    return out


def _foreign_keys(x: Mapping[str, Any]) -> set[str]:
    return {
        f"({', '.join(fk['columns'])}) -> {fk['references']['table']}"
        f"({', '.join(fk['references']['columns'])})"
        for fk in x.get("foreignKeys", [])
    }


def _nullable(x: Mapping[str, Any]) -> str:
    return "nullable" if x.get("nullable") else "NOT NULL"


def _default(x: Mapping[str, Any]) -> str:
    default = x.get("serverDefault")
    return "no default" if default is None else f"DEFAULT {default}"
