"""The database connection: one engine per server, tables reflected from the live database."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from .config import Settings


def make_engine(settings: Settings, url: str | None = None) -> sa.Engine:
    """An engine whose failures are bounded in time, so an outage becomes a quick 503."""
    url = url or settings[("database", "url")]
    parsed = make_url(url)
    timeout = settings[("database", "connect_timeout")]
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": timeout}
        )

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    connect_args: dict = {}
    if parsed.get_backend_name() in ("mysql", "mariadb"):
        statement_timeout = settings[("database", "statement_timeout")]
        connect_args = {
            "connect_timeout": timeout,
            "read_timeout": statement_timeout,
            "write_timeout": statement_timeout,
        }
        if "charset" not in parsed.query:
            parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return sa.create_engine(
        parsed,
        pool_size=settings[("database", "pool_size")],
        max_overflow=settings[("database", "pool_size")],
        pool_pre_ping=True,
        pool_recycle=3600,
        pool_timeout=timeout,
        connect_args=connect_args,
    )


def reflect(engine: sa.Engine, tables: Iterable[str]) -> sa.MetaData:
    """The served tables as the live database has them (the database is the truth)."""
    metadata = sa.MetaData()
    metadata.reflect(engine, only=list(tables), resolve_fks=False)
    return metadata


def table_names(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())
