"""A site of several API processes for the login-limit tests: N `ispyb-falcon serve`
processes on loopback ports sharing one database and login-limit store, as N gunicorn
workers or N hosts share them; clients that connect from chosen loopback addresses
(127.0.0.2, 127.0.0.3, ...), so one machine plays many clients."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from ispyb_falcon.auth import limitstores
from ispyb_falcon.auth.passwords import MIN_ITERATIONS, hash_password
from ispyb_falcon.auth.resp import Redis

from .conftest import PREFIX, SECRET
from .servers import ROOT, free_port, stop

LOGIN = PREFIX + "/auth/login"
PASSWORDS = {
    "admin1": "right-admin",
    "manager1": "right-manager",
    "pi_anna": "right-anna",
    "user_fred": "right-fred",
}
REDIS_URL = os.environ.get("ISPYB_FALCON_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_or_skip() -> str:
    """The test Redis server's URL; skipped without one unless ISPYB_FALCON_TEST_REQUIRE_REDIS=1."""
    try:
        Redis(REDIS_URL, timeout=2).call("PING")
    except OSError as exc:
        if os.environ.get("ISPYB_FALCON_TEST_REQUIRE_REDIS") == "1":
            pytest.fail(f"ISPYB_FALCON_TEST_REQUIRE_REDIS=1 but {REDIS_URL} is unreachable: {exc}")
        pytest.skip(f"no Redis server at {REDIS_URL} ({exc})")
    return REDIS_URL


def redis_prefix() -> str:
    """A key prefix of one's own on a Redis server others may share."""
    return f"ispyb-falcon-test:{uuid.uuid4().hex}:"


def drop_redis_keys(url: str, prefix: str) -> None:
    client = Redis(url, timeout=2)
    keys = client.call("KEYS", prefix + "*")
    if keys:
        client.call("DEL", *keys)


def write_passwords(path: Path) -> Path:
    """admin1 (admin), manager1 (manager), pi_anna and user_fred (user), hashed at the
    lowest cost the file authenticator accepts, which keeps a test of many failures quick."""
    roles = {"admin1": "admin", "manager1": "manager", "pi_anna": "user", "user_fred": "user"}
    path.write_text(
        "".join(
            f"{login}:{roles[login]}:{hash_password(pw, iterations=MIN_ITERATIONS)}\n"
            for login, pw in PASSWORDS.items()
        )
    )
    path.chmod(0o600)
    return path


@contextlib.contextmanager
def limit_table(database_url: str) -> Iterator[str]:
    """The database with the limit's table, made by `ispyb-falcon limiter init` as a site
    makes it; dropped after unless it was there before. Yields the database's URL."""
    engine = sa.create_engine(database_url)
    had = sa.inspect(engine).has_table(limitstores.TABLE)
    create_limit_table(database_url)
    try:
        yield database_url
    finally:
        if not had:
            limitstores.table.drop(engine)
        engine.dispose()


def create_limit_table(database_url: str) -> None:
    """`ispyb-falcon limiter init`, as a site runs it."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bin" / "ispyb-falcon"), "limiter", "init"],
        env={**clean_env(), "ISPYB_FALCON_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "ispyb_falcon_login_limit" in done.stderr


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ISPYB_FALCON_")}


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    body: dict

    def __repr__(self) -> str:
        return f"{self.status} {self.body.get('title', '')}"


def post_login(
    port: int,
    login: str,
    password: str,
    *,
    source: str = "127.0.0.1",
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """POST /auth/login to 127.0.0.1:port from the loopback address `source`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(source, 0))
    try:
        conn.request(
            "POST",
            LOGIN,
            body=json.dumps({"login": login, "password": password}),
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        r = conn.getresponse()
        return Answer(r.status, dict(r.getheaders()), json.loads(r.read() or b"{}"))
    finally:
        conn.close()


@contextlib.contextmanager
def site_workers(
    directory: Path, database_url: str, count: int, **auth: str
) -> Iterator[list[int]]:
    """`count` API processes (`ispyb-falcon serve`) on free ports; yields the ports.

    Configured as a site would be: an INI file for the password file, the environment
    for the rest; `auth` gives [auth] keys (limiter, limiter_url...) and `trusted_proxies`.
    """
    passwords = write_passwords(directory / "passwords")
    ini = directory / "ispyb-falcon.ini"
    ini.write_text(f"[authenticator:file]\npath = {passwords}\n")
    env = {
        **clean_env(),
        "ISPYB_FALCON_CONFIG": str(ini),
        "ISPYB_FALCON_DATABASE_URL": database_url,
        "ISPYB_FALCON_TOKENS_SECRET": SECRET,
        "ISPYB_FALCON_AUTH_AUTHENTICATORS": "file",
        "ISPYB_FALCON_SERVER_LOG_LEVEL": "WARNING",
        "ISPYB_FALCON_SERVER_THREADS": "4",
        "ISPYB_FALCON_DATABASE_POOL_SIZE": "4",
    }
    for key, value in auth.items():
        section = "SERVER" if key == "trusted_proxies" else "AUTH"
        env[f"ISPYB_FALCON_{section}_{key.upper()}"] = value
    ports = [free_port() for _ in range(count)]
    logs = [directory / f"worker-{port}.log" for port in ports]
    procs = []
    for port, log in zip(ports, logs, strict=True):
        with log.open("w") as out:
            command = [sys.executable, str(ROOT / "bin" / "ispyb-falcon"), "serve"]
            procs.append(
                subprocess.Popen(
                    [*command, "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env
                )
            )
    try:
        deadline = time.monotonic() + 120
        for port, proc, log in zip(ports, procs, logs, strict=True):
            while not _healthy(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker on port {port} did not start:\n{log.read_text()}")
                time.sleep(0.1)
        yield ports
    finally:
        stop(*procs)


def _healthy(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            pass
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", PREFIX + "/health")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False
