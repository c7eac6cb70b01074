"""The login limit's shared stores: a table in a database, or Redis.

`limiter = database` keeps one row per count in `ispyb_falcon_login_limit`, in
the ISPyB database or the one `limiter_url` names. The API never creates it by
itself: `ispyb-falcon limiter init` does (or a DBA, with `--sql`), so that a
site's schema changes only when someone asks. Each step is one short
transaction that locks the rows of its counts (MariaDB, in READ COMMITTED) or
the database (SQLite), so workers and hosts take turns on a count.

`limiter = redis` keeps each count as a string key that expires with the
window; each step is one Lua script, which Redis runs atomically.

A store that cannot be reached raises `LimiterUnavailable`: the login answers
503 and no password is tried, rather than letting guesses through uncounted
while an attacker keeps the store busy.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite

from .. import db
from ..errors import is_busy
from .ratelimit import (
    Counter,
    LimiterUnavailable,
    Store,
    decide,
    decode,
    encode,
    remove_once,
)
from .resp import Redis, RedisError

log = logging.getLogger("ispyb_falcon.auth")

TABLE = "ispyb_falcon_login_limit"
metadata = sa.MetaData()
table = sa.Table(
    TABLE,
    metadata,
    sa.Column("k", sa.String(64), primary_key=True, comment="SHA-256 of what is counted"),
    sa.Column(
        "times",
        sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb"),
        nullable=False,
        comment="failure times in ms since the epoch, oldest first",
    ),
    sa.Column("expires", sa.BigInteger, nullable=False, comment="ms since the epoch"),
    sa.Index(f"{TABLE}_expires", "expires"),
    comment="ispyb-falcon: failed logins per login and address (README, Authentication)",
    mysql_engine="InnoDB",
    mysql_charset="ascii",
)
TRIES = 3  # a deadlock or lock wait timeout is retried this often, then 503
CLEANUP_EVERY_MS = 60_000


def create_table(engine: sa.Engine) -> bool:
    """Create the table if it is missing; True if it was created."""
    if sa.inspect(engine).has_table(TABLE):
        return False
    metadata.create_all(engine, tables=[table])
    return True


def table_sql(engine: sa.Engine) -> str:
    """The statements `create_table` runs, for a DBA to run instead."""
    ddl = [str(sa.schema.CreateTable(table).compile(engine)).strip()]
    ddl += [str(sa.schema.CreateIndex(i).compile(engine)).strip() for i in table.indexes]
    return ";\n".join(ddl) + ";\n"


class DatabaseStore(Store):
    def __init__(self, engine: sa.Engine) -> None:
        name = engine.dialect.name
        if name not in ("sqlite", "mysql", "mariadb"):
            raise ValueError(f"the database store supports MariaDB and SQLite, not {name}")
        self.engine = engine
        self.mysql = name != "sqlite"
        self._next_cleanup = 0
        self._cleanup_lock = threading.Lock()

    def check(self) -> None:
        try:
            present = sa.inspect(self.engine).has_table(TABLE)
        except sa.exc.SQLAlchemyError as exc:
            raise LimiterUnavailable(_first_line(exc)) from None
        if not present:
            raise ValueError(
                f"the table {TABLE} is missing from {self.engine.url!r}; create it with "
                "`ispyb-falcon limiter init` (README, Authentication)"
            )

    @contextmanager
    def _transaction(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn:
            if self.mysql:  # row locks only, no gap locks; reverted when the connection returns
                conn.execution_options(isolation_level="READ COMMITTED")
            else:  # BEGIN IMMEDIATE (db.make_engine): the write lock from the first statement
                conn.execution_options(**{db.WRITES: True})
            with conn.begin():
                yield conn

    def _run(self, step):
        """`step(conn)` in a transaction; a lock conflict is tried again, an outage is a 503."""
        for attempt in range(TRIES):
            try:
                with self._transaction() as conn:
                    return step(conn)
            except sa.exc.SQLAlchemyError as exc:
                if is_busy(exc) and attempt + 1 < TRIES:
                    continue
                log.warning("login limit table unusable: %s", _first_line(exc))
                raise LimiterUnavailable(_first_line(exc)) from None
        raise AssertionError("unreachable")

    def _lock(self, conn: sa.Connection, keys: Sequence[str], now: int) -> dict[str, list[int]]:
        """Lock the rows of `keys` (made if missing), in key order; their failure times."""
        keys = sorted(set(keys))
        rows = [{"k": k, "times": "", "expires": now} for k in keys]
        if self.mysql:
            insert = mysql.insert(table).values(rows)
            conn.execute(insert.on_duplicate_key_update(k=insert.inserted.k))
        else:
            conn.execute(sqlite.insert(table).values(rows).on_conflict_do_nothing())
        found = conn.execute(
            sa.select(table.c.k, table.c.times).where(table.c.k.in_(keys)).with_for_update()
        )
        return {k: decode(times) for k, times in found}

    def _save(self, conn: sa.Connection, lists: dict[str, list[int]], window: int) -> None:
        empty = [k for k, times in lists.items() if not times]
        if empty:
            conn.execute(sa.delete(table).where(table.c.k.in_(empty)))
        rows = [
            {"key": k, "t": encode(times), "e": max(times) + window}
            for k, times in lists.items()
            if times
        ]
        if rows:
            conn.execute(
                sa.update(table)
                .where(table.c.k == sa.bindparam("key"))
                .values(times=sa.bindparam("t"), expires=sa.bindparam("e")),
                rows,
            )

    def attempt(self, known, counters, now, window):
        def step(conn):
            is_known = (
                conn.execute(
                    sa.select(table.c.expires).where(table.c.k == known)
                ).scalar_one_or_none()
                or 0
            ) > now
            lists = self._lock(conn, [c.key for c in counters], now)
            wait = decide(lists, is_known, counters, now, window)
            self._save(conn, lists, window)  # counted, or only pruned when refused
            return wait

        wait = self._run(step)
        self._cleanup(now)
        return wait

    def forget(self, keys, at, now, window):
        def step(conn):
            lists = self._lock(conn, keys, now)
            for times in lists.values():
                remove_once(times, at)
            self._save(conn, lists, window)

        self._run(step)

    def succeed(self, pair, others, known, known_until, now, window):
        def step(conn):
            lists = self._lock(conn, [pair, *others], now)
            forgiven = lists[pair]
            lists[pair] = []
            for key in others:
                for at in forgiven:
                    remove_once(lists[key], at)
            self._save(conn, lists, window)
            if known_until is None:
                return
            row = {"k": known, "times": "", "expires": known_until}
            if self.mysql:
                insert = mysql.insert(table).values(row)
                conn.execute(insert.on_duplicate_key_update(expires=insert.inserted.expires))
            else:
                insert = sqlite.insert(table).values(row)
                conn.execute(
                    insert.on_conflict_do_update(
                        index_elements=["k"], set_={"expires": insert.excluded.expires}
                    )
                )

        self._run(step)

    def _cleanup(self, now: int) -> None:
        """Delete rows that count nothing any more, about once a minute per process."""
        with self._cleanup_lock:
            if now < self._next_cleanup:
                return
            self._next_cleanup = now + CLEANUP_EVERY_MS
        try:
            with self._transaction() as conn:
                conn.execute(sa.delete(table).where(table.c.expires <= now))
        except sa.exc.SQLAlchemyError as exc:  # the next one will do
            log.info("login limit table not cleaned up: %s", _first_line(exc))


# KEYS[1] is the pair's "known" key, then the counts. ARGV: operation, now, window, then
# what the operation needs (attempt: limit and always, 1 or 0, per count). Times are
# compared with `now` as the workers see it (the same clock as the other stores); a key's
# own expiry only frees the memory of what no longer counts. Times are milliseconds since
# the epoch, kept as "t1 t2 ..." oldest first.
SCRIPT = """
local op, now, window = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local function load(key)
  local times, value = {}, redis.call('GET', key)
  if value then
    for t in string.gmatch(value, '%d+') do
      t = tonumber(t)
      if t > now - window then times[#times + 1] = t end
    end
  end
  table.sort(times)
  return times
end
local function save(key, times)
  if #times == 0 then redis.call('DEL', key) return end
  local text = {}
  for i, t in ipairs(times) do text[i] = string.format('%.0f', t) end
  redis.call('SET', key, table.concat(text, ' '), 'PX',
             string.format('%.0f', times[#times] + window - now))
end
local function remove_once(times, at)
  for i, t in ipairs(times) do
    if t == at then table.remove(times, i) return end
  end
end
if op == 'attempt' then
  local known_until = redis.call('GET', KEYS[1])
  local known = known_until and tonumber(known_until) > now
  local lists, wait = {}, -1
  for i = 2, #KEYS do
    local times = load(KEYS[i])
    local limit, always = tonumber(ARGV[2 * i]), ARGV[2 * i + 1] == '1'
    lists[i] = times
    if (always or not known) and #times >= limit then
      wait = math.max(wait, 1, times[#times - limit + 1] + window - now)
    end
  end
  if wait >= 0 then return wait end
  for i = 2, #KEYS do
    local times = lists[i]
    times[#times + 1] = now
    save(KEYS[i], times)
  end
  return -1
elseif op == 'forget' then
  local at = tonumber(ARGV[4])
  for i = 2, #KEYS do
    local times = load(KEYS[i])
    remove_once(times, at)
    save(KEYS[i], times)
  end
elseif op == 'succeed' then
  local forgiven = load(KEYS[2])
  redis.call('DEL', KEYS[2])
  for i = 3, #KEYS do
    local times = load(KEYS[i])
    for _, at in ipairs(forgiven) do remove_once(times, at) end
    save(KEYS[i], times)
  end
  local until_ms = tonumber(ARGV[4])
  if until_ms > now then
    redis.call('SET', KEYS[1], ARGV[4], 'PX', string.format('%.0f', until_ms - now))
  end
end
return -1
"""
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()
PREFIX = "ispyb-falcon:login:"


class RedisStore(Store):
    def __init__(self, client: Redis, prefix: str = PREFIX) -> None:
        self.client = client
        self.prefix = prefix

    def check(self) -> None:
        self._call("PING")

    def _call(self, *args):
        try:
            return self.client.call(*args)
        except (OSError, EOFError, RedisError) as exc:
            log.warning("login limit store %r unusable: %s", self.client, exc)
            raise LimiterUnavailable(f"{self.client!r}: {exc}") from None

    def _script(self, keys: Sequence[str], *args) -> int:
        keys = [self.prefix + k for k in keys]
        try:
            return self.client.call("EVALSHA", SCRIPT_SHA, len(keys), *keys, *args)
        except RedisError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise LimiterUnavailable(f"{self.client!r}: {exc}") from None
        except (OSError, EOFError) as exc:
            raise LimiterUnavailable(f"{self.client!r}: {exc}") from None
        return self._call("EVAL", SCRIPT, len(keys), *keys, *args)  # loaded for next time

    def attempt(self, known, counters: Sequence[Counter], now, window):
        args = [x for c in counters for x in (c.limit, int(c.always))]
        wait = self._script([known, *(c.key for c in counters)], "attempt", now, window, *args)
        return None if wait < 0 else wait

    def forget(self, keys, at, now, window):
        self._script(["-", *keys], "forget", now, window, at)

    def succeed(self, pair, others, known, known_until, now, window):
        self._script([known, pair, *others], "succeed", now, window, known_until or 0)


def make_store(settings, engine: sa.Engine | None) -> Store:
    """The `[auth] limiter` store (database or redis); ValueError says what is wrong."""
    kind = settings[("auth", "limiter")]
    url = settings[("auth", "limiter_url")]
    if kind == "redis":
        if not url:
            raise ValueError("limiter_url must name the Redis server (redis://host:6379/0)")
        client = Redis(url, timeout=settings[("database", "connect_timeout")])
        prefix = client.query.pop("prefix", PREFIX)  # two deployments on one Redis database
        if client.query:
            raise ValueError(f"limiter_url: unknown option(s) {', '.join(client.query)}")
        return RedisStore(client, prefix)
    if (url and url != settings[("database", "url")]) or engine is None:
        try:
            engine = db.make_engine(settings, url or None)
        except (sa.exc.ArgumentError, ImportError, ValueError) as exc:
            raise ValueError(f"limiter_url: {exc}") from None
    return DatabaseStore(engine)


def _first_line(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
