"""SQLite tables built from the JSON Schema artefact (``schemas_json/``).

The embedded demo has no MariaDB, so its tables come from the same files that
validate requests: the ``x-ispyb`` annotations carry the SQL type, keys,
defaults, indexes and foreign keys. Only foreign keys between tables present in
the artefact are kept, since the official schema points at many tables the demo
does not serve.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from ispyb_falcon.db import Duration
from ispyb_falcon.demo.generator import fill

_ENUM_VALUE = re.compile(r"'((?:[^']|'')*)'")
_SIZE = re.compile(r"\((\d+)(?:\s*,\s*(\d+))?\)")
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")
_CURRENT_TIMESTAMP = re.compile(r"(current_timestamp|now)(\(\d*\))?", re.IGNORECASE)

_INTEGER = {"tinyint", "smallint", "mediumint", "int", "integer", "bit", "year", "bool", "boolean"}
_FLOAT = {"float", "double", "real"}
_TEXT = {"tinytext", "text", "mediumtext", "longtext", "json"}
_BLOB = {"tinyblob", "blob", "mediumblob", "longblob"}
_TEMPORAL: dict[str, Callable[[], sa.types.TypeEngine[Any]]] = {
    "datetime": sa.DateTime,
    "timestamp": sa.DateTime,
    "date": sa.Date,
    "time": Duration,  # text: a TIME may be negative or past 24 hours
}


def column_type(sql_type: str) -> sa.types.TypeEngine[Any]:
    """Map MariaDB's COLUMN_TYPE to a generic SQLAlchemy type SQLite understands."""
    base = sql_type.strip().split("(", 1)[0].split()[0].lower()
    size = _SIZE.search(sql_type)
    length = int(size.group(1)) if size else None
    if base in ("enum", "set"):
        values = [v.replace("''", "'") for v in _ENUM_VALUE.findall(sql_type)]
        longest = max((len(v) for v in values), default=1)
        return sa.String(longest if base == "enum" else sum(map(len, values)) + len(values))
    if base == "bigint":
        return sa.BigInteger()
    if base in _INTEGER:
        return sa.Integer()
    if base in _FLOAT:
        return sa.Float()
    if base in ("decimal", "numeric", "dec", "fixed"):
        scale = int(size.group(2)) if size and size.group(2) else 0
        return sa.Numeric(length or 10, scale)
    if base in ("char", "varchar"):
        return sa.String(length)
    if base in _TEXT:
        return sa.Text()
    if base in ("binary", "varbinary"):
        return sa.LargeBinary(length)
    if base in _BLOB:
        return sa.LargeBinary()
    if base in _TEMPORAL:
        return _TEMPORAL[base]()
    return sa.Text()


def server_default(sql_type: str, default: str | None) -> Any:
    """A literal or ``current_timestamp`` default; other expressions (``current_user()``) drop."""
    if default is None or default.upper() == "NULL":
        return None
    base = sql_type.split("(", 1)[0].lower()
    if _CURRENT_TIMESTAMP.fullmatch(default.strip()):
        return sa.func.current_timestamp() if base in ("timestamp", "datetime") else None
    if default.startswith("'") and default.endswith("'") and len(default) >= 2:
        # MariaDB's zero date ('0000-00-00 00:00:00') too: SQLite keeps the text as
        # MariaDB writes it, and the server serves it as it does MariaDB's (zero_dates).
        return default[1:-1].replace("''", "'")
    if _NUMBER.fullmatch(default):
        return sa.text(default)
    return None


def _columns(name: str, schema: dict[str, Any]) -> list[sa.Column[Any]]:
    table_info = schema.get("x-ispyb", {})
    primary = list(table_info.get("primaryKey", []))
    columns = []
    for column_name, prop in schema["properties"].items():
        info = prop.get("x-ispyb", {})
        sql_type = info.get("sqlType", "text")
        in_key = column_name in primary or bool(info.get("primaryKey"))
        auto = bool(info.get("autoIncrement")) and len(primary) <= 1
        type_ = sa.Integer() if auto else column_type(sql_type)
        default = None if auto else server_default(sql_type, info.get("serverDefault"))
        columns.append(
            sa.Column(
                column_name,
                type_,
                primary_key=in_key,
                autoincrement=auto if in_key else False,
                nullable=bool(info.get("nullable", True)) and not in_key,
                server_default=default,
            )
        )
    return columns


def _constraints(name: str, schema: dict[str, Any], present: set[str]) -> list[Any]:
    table_info = schema.get("x-ispyb", {})
    items: list[Any] = []
    for fk in table_info.get("foreignKeys", []):
        target = fk["references"]["table"]
        if target not in present:
            continue
        items.append(
            sa.ForeignKeyConstraint(
                fk["columns"],
                [f"{target}.{column}" for column in fk["references"]["columns"]],
                name=fk.get("name"),
                ondelete=fk.get("onDelete"),
                onupdate=fk.get("onUpdate"),
            )
        )
    for index in table_info.get("indexes", []):
        # SQLite index names are global to the file, MariaDB's are per table.
        items.append(sa.Index(f"{name}_{index['name']}", *index["columns"], unique=index["unique"]))
    return items


def create_tables(engine: Engine, schemas: dict[str, dict[str, Any]]) -> sa.MetaData:
    """Create one table per schema (with keys, defaults, indexes, internal FKs)."""
    metadata = sa.MetaData()
    present = set(schemas)
    for name, schema in schemas.items():
        table_name = schema.get("x-ispyb", {}).get("table", name)
        sa.Table(
            table_name,
            metadata,
            *_columns(table_name, schema),
            *_constraints(table_name, schema, present),
            sqlite_autoincrement=_has_auto_key(schema),
        )
    metadata.create_all(engine)
    return metadata


def _has_auto_key(schema: dict[str, Any]) -> bool:
    primary = schema.get("x-ispyb", {}).get("primaryKey", [])
    if len(primary) != 1:
        return False
    return bool(schema["properties"][primary[0]].get("x-ispyb", {}).get("autoIncrement"))


def create_demo_database(
    url: str,
    schemas: dict[str, dict[str, Any]],
    scale: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Create the demo file's tables when it is new or empty, then fill it (idempotent)."""
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url)
    try:
        if not sa.inspect(engine).get_table_names():
            create_tables(engine, schemas)
        fill(engine, scale=scale, progress=progress)
    finally:
        engine.dispose()
