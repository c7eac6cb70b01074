"""The client examples in bin/examples/ run, by hand as documented, against `ispyb-falcon demo`.

One real demo server (waitress on loopback, a fresh SQLite file) for the module;
each example runs as a subprocess against it and we check what it prints.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from .servers import demo_server

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "bin" / "examples"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`bin/ispyb-falcon demo` on a free port; yields the API base URL; stops it after."""
    with demo_server(tmp_path_factory.mktemp("examples")) as (base, _log):
        yield base


def api_get(base: str, path: str, login: str = "pi_anna") -> dict:
    req = urllib.request.Request(
        base + "/auth/login", data=json.dumps({"login": login, "password": "demo"}).encode()
    )
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req) as r:
        token = json.load(r)["token"]
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def run_example(command: list[str], base: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ISPYB_")}
    return subprocess.run(
        [*command, base],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**environ, **env},
    )


COMMANDS = [
    pytest.param(
        ["bash", str(EXAMPLES / "curl.sh")],
        marks=pytest.mark.skipif(
            not (shutil.which("curl") and shutil.which("bash")), reason="curl is not on PATH"
        ),
        id="curl",
    ),
    pytest.param([sys.executable, str(EXAMPLES / "client.py")], id="python"),
    pytest.param(
        ["node", str(EXAMPLES / "client.mjs")],
        marks=pytest.mark.skipif(not shutil.which("node"), reason="node is not on PATH"),
        id="node",
    ),
]


@pytest.mark.parametrize("command", COMMANDS)
def test_example_runs_every_step(server, command):
    done = run_example(command, server)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert len(lines) == 6, done.stdout
    login, whoami, sessions, created, read_back, csv_rows = lines

    assert login.startswith("logged in as pi_anna (personId 3, roles user)")
    assert whoami.startswith("whoami: pi_anna roles=user")

    # the filtered list: mx1001 visits on i03 or i04 only, oldest first
    visits = re.findall(r"(mx\d+-\d+) (\S+) (\S+)", sessions)
    expected = api_get(server, "/sessions?proposal=mx1001&beamLineName=i03,i04&order_by=startDate")
    assert sessions.startswith(f"sessions ({expected['total']}): ")
    assert visits, sessions
    assert all(visit.startswith("mx1001-") for visit, _, _ in visits)
    assert {beamline for _, beamline, _ in visits} <= {"i03", "i04"}
    starts = [start for _, _, start in visits]
    assert starts == sorted(starts)
    assert [v for v, _, _ in visits] == [f"mx1001-{s['visit_number']}" for s in expected["results"]]

    # a new sample, in mx1001, read back with the same id and name
    made = re.fullmatch(r"created sample (\d+) name=(example-\d+) .*location=(\d+)", created)
    assert made, created
    sample_id, name, location = made.groups()
    assert re.fullmatch(rf"read back sample {sample_id} name={name} recordTimeStamp=\S+", read_back)
    stored = api_get(server, f"/samples/{sample_id}")
    assert (stored["name"], stored["location"]) == (name, location)
    assert api_get(server, f"/samples?proposal=mx1001&blSampleId={sample_id}")["total"] == 1

    # the CSV export: a header and one record per data collection of mx1001-1
    collections = api_get(server, "/datacollections?session=mx1001-1&limit=1")["total"]
    assert collections == 4
    assert re.match(rf"csv rows: {collections + 1}\b", csv_rows), csv_rows


@pytest.mark.parametrize("command", COMMANDS)
def test_example_reports_an_http_error_and_exits_1(server, command):
    # a prefix with no routes: the login is a 404 with a JSON error
    done = run_example(command, server + "/nothere")
    assert done.returncode == 1
    assert done.stdout == ""
    assert "HTTP 404 Not Found" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_example_reads_login_from_the_environment(server, command):
    # user_fred is in nothing: logged in as him, there is no container of mx1001 to fill
    done = run_example(command, server, ISPYB_LOGIN="user_fred", ISPYB_PASSWORD="other")
    assert done.returncode == 1
    assert done.stdout.startswith("logged in as user_fred ")
    assert "sessions (0): (none)" in done.stdout
    assert "error: user_fred sees no crystal and container in mx1001" in done.stderr
