"""Start the README's demo command as a real server on loopback, for end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
