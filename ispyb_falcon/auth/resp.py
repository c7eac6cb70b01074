"""A small Redis client for the login limit: RESP2 over one socket per thread.

The limit needs four commands (AUTH, SELECT, EVALSHA, EVAL), so the API speaks
the protocol itself rather than adding a dependency that every site and
beamline host would install whether it runs Redis or not. A single server (or
a primary) only: the limit's scripts touch several keys at once, which Redis
Cluster refuses across slots.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
from urllib.parse import parse_qsl, unquote, urlsplit


class RedisError(Exception):
    """An error reply from the server (the connection is still usable)."""


class Redis:
    """`redis://[[user]:password@]host[:port][/db][?option=value]`, or `rediss://` for TLS;
    the options are left in `query` for the caller."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError("expected a redis:// or rediss:// URL")
        try:
            self.port = parts.port or 6379
            path = parts.path.strip("/")
            self.db = int(path) if path else 0
        except ValueError:
            raise ValueError("expected redis://host:port/db with numbers for port and db") from None
        self.query = dict(parse_qsl(parts.query))
        self.host = parts.hostname or "127.0.0.1"
        self.tls = parts.scheme == "rediss"
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.timeout = timeout
        self._local = threading.local()

    def __repr__(self) -> str:  # never the password
        return f"redis{'s' if self.tls else ''}://{self.host}:{self.port}/{self.db}"

    def call(self, *args: str | int | bytes):
        """Send one command and return its reply; `OSError` if the server cannot be reached."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and conn[0] != os.getpid():
            conn = None  # a connection inherited across fork() belongs to the parent
        if conn is None:
            return self._call(self._connect(), args)
        try:
            return self._call(conn, args)
        except TimeoutError:
            raise  # the server is slow, not gone: the command may have run, so not twice
        except (OSError, EOFError):
            # An idle connection the server closed (a restart, its idle timeout): once more.
            return self._call(self._connect(), args)

    def _call(self, conn, args):
        _, sock, reader = conn
        try:
            sock.sendall(_command(args))
            return _reply(reader)
        except (OSError, EOFError):
            self.close()
            raise

    def _connect(self):
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        if self.tls:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
        conn = (os.getpid(), sock, sock.makefile("rb"))
        self._local.conn = conn
        try:
            if self.password is not None:
                auth = (self.username, self.password) if self.username else (self.password,)
                self._call(conn, ("AUTH", *auth))
            if self.db:
                self._call(conn, ("SELECT", self.db))
        except RedisError:
            self.close()  # not left half set up for the next command
            raise
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn[1].close()


def _command(args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out += [b"$%d\r\n" % len(data), data, b"\r\n"]
    return b"".join(out)


def _reply(reader):
    try:
        return _parse(reader)
    except ValueError:
        raise EOFError("not a Redis reply") from None


def _parse(reader):
    line = reader.readline()
    if not line.endswith(b"\r\n"):
        raise EOFError("the Redis server closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RedisError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None
        data = reader.read(size + 2)
        if len(data) != size + 2:
            raise EOFError("the Redis server closed the connection")
        return data[:-2]
    if kind == b"*":
        size = int(rest)
        return None if size < 0 else [_parse(reader) for _ in range(size)]
    raise EOFError(f"not a Redis reply: {line[:40]!r}")
