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
def demo_server(directory: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """`ispyb-falcon demo` on a free port; yields (API base URL, process); stops it after."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bin" / "ispyb-falcon"),
            "demo",
            "--port",
            str(port),
            "--database",
            str(directory / "demo.sqlite"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}/ispyb/api/v1"
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as r:
                    if json.load(r)["database"] == "ok":
                        break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("the demo server stopped: " + proc.stderr.read()) from None
                time.sleep(0.1)
        else:
            raise RuntimeError("the demo server did not start")
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
