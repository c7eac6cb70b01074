"""Real servers on loopback for end-to-end tests: the README's demo command, or an app under
waitress in this process; and a small HTTP client for them."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def stop(*procs: subprocess.Popen) -> None:
    """Ask each process to end, then wait for it; one that will not end in 10 s is killed."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def demo_server(directory: Path) -> Iterator[tuple[str, Path]]:
    """`ispyb-falcon demo` on a free port; yields (API base URL, its log file); stops it after.

    The log goes to a file, not a pipe nobody reads: a full pipe would block the server.
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}/ispyb/api/v1"
    log = directory / "server.log"
    command = [sys.executable, str(ROOT / "bin" / "ispyb-falcon"), "demo", "--port", str(port)]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*command, "--database", str(directory / "demo.sqlite")],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as r:
                    if json.load(r)["database"] == "ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None:
                raise RuntimeError("the demo server stopped:\n" + log.read_text())
            if time.monotonic() > deadline:
                raise RuntimeError("the demo server did not start:\n" + log.read_text())
            time.sleep(0.1)
        yield base, log
    finally:
        stop(proc)


@contextlib.contextmanager
def app_server(app, settings) -> Iterator[str]:
    """`app` served by waitress on a free loopback port, as `serve` runs it; yields the API base.

    In this process, so a test can give it the session's database (SQLite or
    MariaDB) and settings; a real server all the same: HTTP over TCP, waitress's
    threads and body limits (`cli.waitress_options`).
    """
    import threading

    import waitress
    from waitress import wasyncore

    from ispyb_falcon.cli import waitress_json_errors, waitress_options

    waitress_json_errors()
    server = waitress.create_server(app, host="127.0.0.1", port=0, **waitress_options(settings))
    thread = threading.Thread(target=server.run, name="waitress", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}{settings.prefix}"
    finally:
        server.task_dispatcher.shutdown()
        wasyncore.close_all(server._map)
        thread.join(10)


@dataclasses.dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    text: str

    @property
    def json(self) -> Any:
        return json.loads(self.text)


@dataclasses.dataclass
class Client:
    """A small HTTP client of a real server: every answer, whatever its status, as an `Answer`."""

    base: str
    token: str | None = None

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        *,
        data: bytes | None = None,
        **params: str,
    ) -> Answer:
        url = self.base + path + (f"?{urllib.parse.urlencode(params)}" if params else "")
        sent = {"Content-Type": "application/json", **(headers or {})}
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            data = json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=60) as r:
                return Answer(r.status, r.headers, r.read().decode())
        except urllib.error.HTTPError as e:
            with e:
                return Answer(e.code, e.headers, e.read().decode())

    def get(self, path: str, **params: str) -> Answer:
        return self.call("GET", path, **params)

    def login(self, login: str, password: str = "demo") -> Client:
        """A client of the same server with this login's token."""
        answer = self.call("POST", "/auth/login", {"login": login, "password": password})
        assert answer.status == 200, answer.text
        return Client(self.base, answer.json["token"])
