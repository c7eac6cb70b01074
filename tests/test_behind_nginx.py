"""The login limit behind a real nginx, as the README deploys it.

nginx (Debian's package, run in the foreground with its own configuration)
listens on a loopback port and spreads requests over four `ispyb-falcon serve`
processes that share the login-limit table and trust nginx's X-Forwarded-For
(`[server] trusted_proxies = 127.0.0.1`). Clients connect from different
loopback addresses (127.0.0.2, 127.0.0.3...), so nginx sees, and forwards,
different clients. Skipped without nginx, unless ISPYB_FALCON_TEST_REQUIRE_NGINX=1
(CI), which makes a missing nginx a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .servers import free_port, stop
from .site_workers import PASSWORDS, limit_table, post_login, site_workers

N = 5  # [auth] login_max_failures, the default
M = 20  # [auth] address_max_failures, the default
NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
)


def nginx_config(directory: Path, port: int, upstreams: list[int]) -> str:
    servers = "".join(f"    server 127.0.0.1:{p};\n" for p in upstreams)
    temp = "".join(
        f"  {kind}_temp_path {directory / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""
daemon off;
worker_processes 1;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} warn;
events {{ worker_connections 256; }}
http {{
  access_log {directory / "access.log"};
{temp}
  upstream ispyb {{
{servers}  }}
  server {{
    listen 127.0.0.1:{port};
    location /ispyb/api/ {{
      proxy_pass http://ispyb;
      proxy_bind 127.0.0.1;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
    }}
  }}
}}
"""


def require_nginx() -> str:
    if NGINX is None:
        if os.environ.get("ISPYB_FALCON_TEST_REQUIRE_NGINX") == "1":
            pytest.fail("ISPYB_FALCON_TEST_REQUIRE_NGINX=1 but nginx is not installed")
        pytest.skip("nginx is not installed (apt-get install nginx)")
    return NGINX


@contextlib.contextmanager
def nginx(directory: Path, upstreams: list[int]) -> Iterator[int]:
    """nginx in the foreground on a free loopback port, proxying to `upstreams`; its port."""
    require_nginx()
    directory.mkdir()
    port = free_port()
    conf = directory / "nginx.conf"
    conf.write_text(nginx_config(directory, port, upstreams))
    log = directory / "stderr.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                require_nginx(),
                "-p",
                str(directory),
                "-e",
                str(directory / "error.log"),
                "-c",
                str(conf),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                errors = (
                    (directory / "error.log").read_text()
                    if (directory / "error.log").exists()
                    else ""
                )
                raise RuntimeError(f"nginx did not start:\n{log.read_text()}\n{errors}")
            time.sleep(0.05)
        yield port
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def site(database_url, tmp_path_factory):
    """(nginx's port, the four workers' ports)."""
    require_nginx()  # before starting the workers
    directory = tmp_path_factory.mktemp("nginx-site")
    with (
        limit_table(database_url) as url,
        site_workers(directory, url, 4, limiter="database", trusted_proxies="127.0.0.1") as workers,
        nginx(directory / "nginx", workers) as port,
    ):
        yield port, workers


def statuses(answers) -> Counter:
    return Counter(a.status for a in answers)


def test_many_wrong_passwords_through_nginx_get_the_limit_of_401s(site):
    port, _ = site
    answers = [post_login(port, "pi_anna", f"wrong{i}", source="127.0.0.2") for i in range(25)]
    assert statuses(answers) == {401: N, 429: 25 - N}, answers
    assert all(int(a.headers["Retry-After"]) > 0 for a in answers if a.status == 429)

    barrier = threading.Barrier(24)

    def at_once(i: int):
        barrier.wait()
        return post_login(port, "manager1", f"wrong{i}", source="127.0.0.3")

    with ThreadPoolExecutor(24) as pool:
        answers = list(pool.map(at_once, range(24)))
    assert statuses(answers) == {401: N, 429: 24 - N}, answers


def test_a_sprayer_behind_nginx_locks_out_only_itself(site):
    port, _ = site
    sprayer = "127.0.0.4"
    assert post_login(port, "admin1", PASSWORDS["admin1"], source=sprayer).status == 200
    # Twenty logins, each with a forged X-Forwarded-For that nginx extends with the real one.
    answers = [
        post_login(
            port, f"user{i}", "guess", source=sprayer, headers={"X-Forwarded-For": f"10.0.{i}.1"}
        )
        for i in range(M)
    ]
    assert statuses(answers) == {401: M}, answers
    refused = post_login(
        port, "user99", "guess", source=sprayer, headers={"X-Forwarded-For": "10.0.99.1"}
    )
    assert refused.status == 429
    # admin1 logs in from another address, and from the sprayer's, where admin1 is known.
    assert post_login(port, "admin1", PASSWORDS["admin1"], source="127.0.0.5").status == 200
    assert post_login(port, "admin1", PASSWORDS["admin1"], source=sprayer).status == 200
    # A login never used from the sprayer's address waits there; elsewhere it is not refused.
    assert post_login(port, "user_fred", PASSWORDS["user_fred"], source=sprayer).status == 429
    assert post_login(port, "user_fred", PASSWORDS["user_fred"], source="127.0.0.6").status == 200


def test_admin1_is_refused_only_where_unknown_after_its_own_failures(site):
    port, _ = site
    assert post_login(port, "admin1", PASSWORDS["admin1"], source="127.0.0.7").status == 200
    answers = [post_login(port, "admin1", "guess", source="127.0.0.8") for _ in range(N + 2)]
    assert statuses(answers) == {401: N, 429: 2}, answers
    assert post_login(port, "admin1", PASSWORDS["admin1"], source="127.0.0.9").status == 429
    assert post_login(port, "admin1", PASSWORDS["admin1"], source="127.0.0.7").status == 200


def test_a_client_reaching_a_worker_directly_cannot_choose_its_address(site):
    _, workers = site
    source = "127.0.0.10"  # not a trusted proxy: its X-Forwarded-For is not read
    answers = [
        post_login(
            workers[i % 4],
            f"direct{i}",
            "guess",
            source=source,
            headers={"X-Forwarded-For": f"10.1.{i}.1"},
        )
        for i in range(M + 1)
    ]
    assert statuses(answers) == {401: M, 429: 1}, answers
