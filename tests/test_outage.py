"""Database outages: quick JSON 503s with Retry-After, and recovery without a restart.

A small TCP proxy on loopback sits between the app and MariaDB; the test cuts
it (connections dropped and refused), makes it swallow traffic (a hang), and
restores it, while requests run concurrently. The shared server never stops.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import falcon.testing
import pytest
from sqlalchemy.engine import make_url

from ispyb_falcon import db
from ispyb_falcon.app import create_app

from .conftest import PREFIX

URL = os.environ.get("ISPYB_FALCON_TEST_DATABASE_URL")
pytestmark = pytest.mark.skipif(not URL, reason="needs MariaDB (ISPYB_FALCON_TEST_DATABASE_URL)")


class Proxy:
    """Forwards 127.0.0.1:<port> to the database; `mode` is forward, cut or hang."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.mode = "forward"
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.running:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.mode == "cut":
                client.close()
                continue
            with self.lock:
                self.sockets.append(client)
            if self.mode == "hang":
                continue  # accepted, never answered: the client must time out
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets.append(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def set(self, mode: str) -> None:
        self.mode = mode
        if mode != "forward":
            with self.lock:
                for s in self.sockets:
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    s.close()
                self.sockets.clear()

    def close(self) -> None:
        self.running = False
        self.set("cut")
        self.listener.close()


@pytest.fixture()
def proxied(settings, app):
    url = make_url(URL)
    proxy = Proxy(url.host or "127.0.0.1", url.port or 3306)
    proxied_url = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    local = settings.replace(
        database_url=proxied_url, database_connect_timeout=2, database_statement_timeout=3
    )
    client = falcon.testing.TestClient(create_app(local))
    token = client.simulate_post(
        f"{PREFIX}/auth/login", json={"login": "pi_anna", "password": "x"}
    ).json["token"]
    yield proxy, client, {"Authorization": f"Bearer {token}"}
    proxy.close()


def _burst(client, headers, n=16):
    def one(i):
        started = time.monotonic()
        path = (
            "/proposals",
            "/sessions?proposal=mx1001",
            "/datacollections?session=mx1001-1",
            "/samples/1",
        )[i % 4]
        r = client.simulate_get(PREFIX + path, headers=headers)
        return r, time.monotonic() - started

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def test_cut_database_gives_quick_503_then_recovers(proxied):
    proxy, client, h = proxied
    assert all(r.status_code in (200, 404) for r, _ in _burst(client, h))
    proxy.set("cut")
    for r, seconds in _burst(client, h):
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] and r.json["title"].startswith("503")
        assert seconds < 8
    health = client.simulate_get(f"{PREFIX}/health")
    assert health.status_code == 503 and health.json["database"] == "unavailable"
    proxy.set("forward")
    assert all(r.status_code in (200, 404) for r, _ in _burst(client, h))
    assert client.simulate_get(f"{PREFIX}/health").json["database"] == "ok"


def test_hanging_database_is_bounded_by_the_configured_timeouts(proxied):
    proxy, client, h = proxied
    assert client.simulate_get(f"{PREFIX}/proposals", headers=h).status_code == 200
    proxy.set("hang")
    for r, seconds in _burst(client, h, n=8):
        assert r.status_code == 503, r.text
        assert seconds < 12  # connect_timeout 2 s and statement_timeout 3 s, plus a retry
    proxy.set("forward")
    results = _burst(client, h, n=8)
    assert all(r.status_code in (200, 404) for r, _ in results)


def test_first_request_after_a_quiet_restart_gets_a_fresh_connection(proxied):
    """The database dropped the pooled connections while the server was idle: the
    idle connection is pinged before use, found dead, and replaced: no 503."""
    proxy, client, h = proxied
    assert client.simulate_get(f"{PREFIX}/proposals", headers=h).status_code == 200
    proxy.set("cut")  # every open connection is closed ...
    proxy.set("forward")  # ... and the database is back
    time.sleep(db.PING_WHEN_IDLE_SECONDS + 0.2)
    r = client.simulate_get(f"{PREFIX}/proposals", headers=h)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(("seconds", "socket_timeout"), [(3, 3.0), (0, None)])
def test_statement_timeout_is_the_drivers_socket_timeout_and_0_turns_it_off(
    settings, seconds, socket_timeout
):
    engine = db.make_engine(settings.replace(database_url=URL, database_statement_timeout=seconds))
    try:
        with engine.connect() as conn:
            assert conn.connection.dbapi_connection._sock.gettimeout() == socket_timeout
    finally:
        engine.dispose()
