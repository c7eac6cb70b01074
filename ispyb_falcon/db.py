"""The database connection: one engine per server, tables reflected from the live database.

On MariaDB a connection reads in autocommit mode: a list is a page and a count, and
neither needs a transaction, so none is opened and none is rolled back when the
connection returns to the pool. Writes run in `transaction(engine)`, which switches
the connection to the server's transactional isolation level for the duration.
On SQLite a write transaction takes the database's write lock when it begins
(`BEGIN IMMEDIATE`), so that what it reads before writing (an ETag, the rows that
refer to the row it deletes) cannot change before it commits; MariaDB writes lock
the rows they read with `SELECT ... FOR UPDATE` instead (resources/writes.py).
A pooled connection that has been idle for a while is pinged before it is handed
out; a busy server reuses connections within milliseconds and pays nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from . import serialize, zero_dates
from .config import Settings

READS_AUTOCOMMIT = "ispyb_reads_autocommit"  # engine execution option (see transaction())
WRITES = "ispyb_writes"  # connection execution option: this transaction writes (see transaction())
PING_WHEN_IDLE_SECONDS = 1.0


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
            # The driver would open its transactions itself, only before the first write:
            # a read-then-write (If-Match) would read outside the write's lock. It opens
            # none now; `_sqlite_begin` does, when SQLAlchemy begins one.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn: sa.Connection) -> None:
            writes = conn.get_execution_options().get(WRITES)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")

        return engine
    options: dict = {"pool_pre_ping": True}
    connect_args: dict = {}
    if parsed.get_backend_name() in ("mysql", "mariadb"):
        statement_timeout = settings[("database", "statement_timeout")] or None  # 0: none
        connect_args = {
            "connect_timeout": timeout,
            "read_timeout": statement_timeout,
            "write_timeout": statement_timeout,
        }
        if "charset" not in parsed.query:
            parsed = parsed.update_query_dict({"charset": "utf8mb4"})
        options = {
            "pool_pre_ping": False,  # ping_when_idle below
            "isolation_level": "AUTOCOMMIT",
            "skip_autocommit_rollback": True,
            "execution_options": {READS_AUTOCOMMIT: True},
        }
    engine = sa.create_engine(
        parsed,
        pool_size=settings[("database", "pool_size")],
        max_overflow=settings[("database", "pool_size")],
        pool_recycle=3600,
        pool_timeout=timeout,
        connect_args=connect_args,
        **options,
    )
    if not options["pool_pre_ping"]:
        ping_when_idle(engine, PING_WHEN_IDLE_SECONDS)
    return engine


def ping_when_idle(engine: sa.Engine, seconds: float) -> None:
    """Ping a pooled connection idle for longer than `seconds` before handing it out.

    A failed ping means the database went away (a restart, a network cut): every
    pooled connection is then replaced, and the request gets a fresh one.
    """

    @sa.event.listens_for(engine, "checkin")
    def _returned(dbapi_conn, record) -> None:
        record.info["idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _handed_out(dbapi_conn, record, proxy) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since <= seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise sa.exc.InvalidatePoolError(str(exc)) from exc


@contextmanager
def transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One transaction: everything inside commits together, or nothing does.

    On SQLite it holds the write lock from its first statement to its commit.
    """
    with engine.connect() as conn:
        conn.execution_options(**{WRITES: True})
        if engine.get_execution_options().get(READS_AUTOCOMMIT):
            # The server's own level (InnoDB: REPEATABLE READ, or the site's setting),
            # for this connection until it returns to the pool.
            conn.execution_options(isolation_level=engine.dialect.default_isolation_level)
        with conn.begin():
            yield conn


class Duration(sa.types.TypeDecorator):
    """A TIME column: bound and served as `[-]HH:MM:SS` text, never wrapped into a day.

    MariaDB's TIME holds -838:59:59 .. 838:59:59 and PyMySQL reads it whole (a
    timedelta); SQLite's demo tables keep the text itself.
    """

    impl = sa.String(10)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else serialize.time_text(value)

    def process_result_value(self, value, dialect):
        return None if value is None else serialize.time_text(value)


def reflect(engine: sa.Engine, tables: Iterable[str]) -> sa.MetaData:
    """The served tables as the live database has them (the database is the truth)."""
    metadata = sa.MetaData()
    metadata.reflect(engine, only=list(tables), resolve_fks=False)
    for table in metadata.tables.values():
        for column in table.columns:
            if isinstance(column.type, sa.Time):
                column.type = Duration()  # SQLAlchemy's TIME would wrap 26:15 to 02:15
            elif isinstance(column.type, sa.Float) and column.type.asdecimal:
                # MySQL's DOUBLE reflects as a Decimal rounded to 10 places: 1.5e-12
                # would be served as 0. The driver's float is the stored value exactly.
                column.type.asdecimal = False
    # Zero and partial dates (0000-00-00, 2020-05-00) are served, filtered and written
    # as text on both databases: the date columns get the type that does it.
    zero_dates.adapt(metadata.tables.values())
    return metadata


def table_names(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())
