"""What a site's database holds, read once at start-up.

The live database is the truth (DESIGN.md). For the tables the server needs,
`read_site` finds which are there and readable, which are missing and which
the database user may not read; the JSON Schema each readable table would
generate (MariaDB/MySQL: types, defaults, character sets, keys; SQLite: the
columns and their nullability); and the schema version the site records in
`AdminVar`. `narrowed` then makes the schema the server validates with: the
file's where the database agrees with it, the database's where it does not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ..errors import database_error
from .generate import generate_available

MISSING = "missing from the database"
NO_SELECT = "the database user has no SELECT privilege on it"

# MariaDB/MySQL: no such table, SELECT denied on the table, or on one of its columns.
_INT_DISPLAY_WIDTH = re.compile(r"\b(tinyint|smallint|mediumint|int|integer|bigint)\(\d+\)")
_NO_TABLE, _DENIED, _COLUMN_DENIED = 1146, 1142, 1143


@dataclass
class Site:
    """The live structure of the tables the server asked for."""

    live: dict[str, dict] = field(default_factory=dict)  # table -> its live JSON Schema
    absent: dict[str, str] = field(default_factory=dict)  # table -> why it cannot be read
    version: str | None = None  # AdminVar.schemaVersion, where the site records it
    detailed: bool = False  # live schemas carry types, defaults, charsets and keys


def read_site(engine: sa.Engine, names: Iterable[str]) -> Site:
    """Read the live structure of `names` (one pass over information_schema on MariaDB)."""
    names = list(dict.fromkeys(names))
    detailed = engine.dialect.name in ("mysql", "mariadb")
    live = generate_available(engine, names)[0] if detailed else _inspected(engine, names)
    absent: dict[str, str] = {}
    with engine.connect() as conn:
        for name in names:
            reason = _unreadable(conn, name)
            if reason:
                absent[name] = reason
                live.pop(name, None)
        version = _schema_version(conn) if "AdminVar" not in absent else None
    return Site(live=live, absent=absent, version=version, detailed=detailed)


def narrowed(schema: Mapping[str, Any], live: Mapping[str, Any], detailed: bool) -> dict:
    """The schema to validate with: the file's columns the database has, each as the
    file says where the database agrees and as the database says where it does not;
    what the database requires is required. The file's other words (descriptions,
    examples, a site's own tighter patterns) stay where the column did not change."""
    live_props: Mapping[str, Any] = live.get("properties", {})
    props = {}
    for name, prop in schema.get("properties", {}).items():
        if name not in live_props:
            continue
        if detailed and storage(prop) != storage(live_props[name]):
            prop = live_props[name]
        props[name] = prop
    required = [c for c in schema.get("required", []) if c in props]
    if detailed:
        required += [c for c in live.get("required", []) if c in props and c not in required]
    out = {**schema, "properties": props, "required": required}
    if detailed:
        out["x-ispyb"] = {**schema.get("x-ispyb", {}), **live.get("x-ispyb", {})}
    return out


def storage(prop: Mapping[str, Any]) -> tuple:
    """What the database decides about a column: its SQL type (length, enum values),
    nullability, default, character set and generated value."""
    x = prop.get("x-ispyb", {})
    return (
        normalized_type(x.get("sqlType", "")),
        bool(x.get("nullable")),
        x.get("serverDefault"),
        x.get("charset"),
        bool(x.get("autoIncrement")),
    )


def normalized_type(sql_type: str) -> str:
    """MySQL 8 drops integer display widths (`int(10) unsigned` -> `int unsigned`);
    they do not change what a column holds."""
    text = " ".join(sql_type.lower().split())
    return _INT_DISPLAY_WIDTH.sub(r"\1", text)


# --------------------------------------------------------------------------


def _unreadable(conn: sa.Connection, name: str) -> str | None:
    """Why the table cannot be read, or None: one empty SELECT tells missing from denied."""
    quoted = conn.dialect.identifier_preparer.quote(name)
    try:
        conn.exec_driver_sql(f"SELECT * FROM {quoted} WHERE 1 = 0").close()
    except sa.exc.DBAPIError as exc:
        if conn.in_transaction():
            conn.rollback()
        code, message = database_error(exc)
        if code == _NO_TABLE or "no such table" in message:
            return MISSING
        if code in (_DENIED, _COLUMN_DENIED):
            return NO_SELECT
        if isinstance(exc, sa.exc.OperationalError) and code is None:
            raise
        return f"it cannot be read (database error {code})"
    return None


def _schema_version(conn: sa.Connection) -> str | None:
    """`AdminVar.schemaVersion` (ISPyB's upgrade scripts keep it), or None."""
    try:
        value = conn.execute(
            sa.text("SELECT value FROM AdminVar WHERE name = 'schemaVersion'")
        ).scalar()
    except sa.exc.DBAPIError:
        if conn.in_transaction():
            conn.rollback()
        return None
    return str(value) if value is not None else None


def _inspected(engine: sa.Engine, names: list[str]) -> dict[str, dict]:
    """Columns and nullability through the SQLAlchemy inspector (the SQLite demo)."""
    inspector = sa.inspect(engine)
    existing = set(inspector.get_table_names())
    return {
        name: {
            "properties": {
                column["name"]: {"x-ispyb": {"nullable": bool(column["nullable"])}}
                for column in inspector.get_columns(name)
            }
        }
        for name in names
        if name in existing
    }
