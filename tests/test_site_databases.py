"""The site matrix: the server on the databases real sites run, every route driven.

Sites run ISPyB databases that lag behind the current release, that drifted from
it, or that the API may read only with the privileges of a web application's
user. For each database `bin/site-databases` builds, this test does what a site
does: generates the site's JSON Schemas (`ispyb-falcon schemas generate`), starts
`ispyb-falcon serve` on them (a real process, its log in a file), and then drives
every list, item and search route as an admin and as a user of the test data
(`tests/site_matrix.py` says what each answer must be: no 5xx but the 503 of a
table or column the database lacks, every error a JSON object). The server's log
must hold no traceback.

The drifted database is also met by a site that kept the shipped schemas: with
`schema_check = warn` the server must start and answer the drift at run time (4xx or
503 naming the column, never a 500); with `schema_check = error` (the default) it
must refuse to start, naming every difference. On the drifted database the
start-up report must name what is gone, and a create that relied on the removed
default must be refused naming the column.

Skipped unless ISPYB_FALCON_TEST_SITE_DATABASES=1; then a database that is missing fails:

    bin/site-databases && ISPYB_FALCON_TEST_SITE_DATABASES=1 .venv/bin/pytest -q tests/test_site_databases.py

Each site's start-up report (what the server logged before it first answered) and
the number of requests driven are printed at the end of the run and written to
`site-databases-report.txt` in pytest's base temporary directory (or to the file
ISPYB_FALCON_TEST_SITE_REPORT names); each site's `server.log` and `requests.log` (every
request, its answer and what it should have been) stay in its temporary directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from .servers import ROOT, Client, free_port, stop
from .site_matrix import Caller, Drive, live_columns, tracebacks

pytestmark = pytest.mark.skipif(
    os.environ.get("ISPYB_FALCON_TEST_SITE_DATABASES") != "1",
    reason="ISPYB_FALCON_TEST_SITE_DATABASES=1 is not set (the databases come from bin/site-databases)",
)

# The MariaDB account that built the databases, and reads information_schema beside the server.
MARIADB = sa.make_url(
    os.environ.get("ISPYB_FALCON_TEST_SITE_MARIADB", "mysql+pymysql://root@127.0.0.1:3306")
)
ADMIN_LOGIN = "admin_site"  # the dummy authenticator makes admin* logins admins
USER_LOGIN = "boaty"  # Person 1 of the test data: PI of a proposal, on two of its sessions
SECRET = "site-matrix-secret-that-is-long-enough-for-hs256"
READY_SECONDS = 120


@dataclasses.dataclass(frozen=True)
class Site:
    id: str
    database: str
    account: tuple[str, str] | None = None  # (user, password) the server uses; None: MARIADB's
    schemas: str = "generated"  # generated from the database, or "shipped" (schemas_json/)
    schema_check: str | None = None  # None: the server's default

    def url(self) -> sa.URL:
        url = MARIADB.set(database=self.database)
        if self.account:
            url = url.set(username=self.account[0], password=self.account[1])
        return url


MATRIX = [
    Site("v1_20", "site_v1_20"),
    Site("v4", "site_v4"),
    Site("current", "site_current"),
    Site("drifted", "site_drifted"),
    # A site that kept the shipped schemas and only warns: the drift is met at run time.
    Site("drifted-shipped-warn", "site_drifted", schemas="shipped", schema_check="warn"),
    # Older releases served with the shipped (current) schemas, before anyone generates:
    # every difference of three years of upgrades met at run time, without a 5xx.
    Site("v1_20-shipped-warn", "site_v1_20", schemas="shipped", schema_check="warn"),
    Site("v4-shipped-warn", "site_v4", schemas="shipped", schema_check="warn"),
    Site("ispyb_web", "site_current", account=("site_web", "site_web")),
]
REPORT: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def report(request, tmp_path_factory):
    """Print and write every site's start-up report and request count after the run."""
    yield
    if not REPORT:
        return
    path = Path(
        os.environ.get("ISPYB_FALCON_TEST_SITE_REPORT")
        or tmp_path_factory.getbasetemp() / "site-databases-report.txt"
    )
    path.write_text("\n".join(REPORT) + "\n")
    plugins = request.config.pluginmanager
    terminal = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    if terminal and capture:
        with capture.global_and_fixture_disabled():
            terminal.write_sep("=", "site databases")
            for line in REPORT:
                terminal.write_line(line)
            terminal.write_line(f"(written to {path})")


# -- the database, the schemas, the server -----------------------------------------


def require_database(site: Site) -> None:
    """A missing database fails the run: the matrix was asked for, so it must run."""
    engine = sa.create_engine(site.url())
    try:
        with engine.connect() as conn:
            tables = conn.execute(
                sa.text("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = :db"),
                {"db": site.database},
            ).scalar()
    except sa.exc.SQLAlchemyError as exc:
        pytest.fail(f"{site.url()!r}: {str(exc).splitlines()[0]} (run bin/site-databases)")
    finally:
        engine.dispose()
    if not tables:
        pytest.fail(f"{site.database} has no tables (run bin/site-databases)")


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "bin" / "ispyb-falcon"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def generate(site: Site, out: Path) -> Path:
    """`ispyb-falcon schemas generate` from the database, as the server's account reads it."""
    done = cli(
        "schemas", "generate", "--database", site.url().render_as_string(False), "--out", str(out)
    )
    if done.returncode or "Traceback" in done.stderr:
        REPORT.append(f"--- {site.id}: schemas generate exited {done.returncode}")
        REPORT.extend(f"  | {line}" for line in done.stderr.splitlines()[-1:])
        pytest.fail(f"schemas generate on {site.database} exited {done.returncode}:\n{done.stderr}")
    return out


def write_config(site: Site, directory: Path, schemas: Path | None, port: int) -> Path:
    lines = [
        "[server]",
        "debug = true",  # the dummy authenticator: any password, admin* logins are admins
        "host = 127.0.0.1",
        f"port = {port}",
        "threads = 4",
        "log_level = INFO",
        "[database]",
        f"url = {site.url().render_as_string(False)}",
        f"schemas_dir = {schemas or ''}",
        "pool_size = 4",
        *([f"schema_check = {site.schema_check}"] if site.schema_check else []),
        "[tokens]",
        f"secret = {SECRET}",
        "[auth]",
        "authenticators = dummy",
        "login_max_failures = 1000",
    ]
    path = directory / "ispyb-falcon.ini"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclasses.dataclass
class Server:
    base: str
    log: Path
    process: subprocess.Popen
    ready_at: int = 0  # bytes of the log written before the server first answered

    def startup_report(self) -> list[str]:
        """What the server logged before it answered: the start-up report, no access lines."""
        text = self.log.read_bytes()[: self.ready_at].decode(errors="replace")
        return [line for line in text.splitlines() if " ispyb_falcon.access " not in line]


def start_server(config: Path, log: Path) -> subprocess.Popen:
    """`ispyb-falcon --config CONFIG serve`, its output into `log`."""
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "bin" / "ispyb-falcon"), "--config", str(config), "serve"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@contextlib.contextmanager
def serve(site: Site, config: Path, directory: Path) -> Iterator[Server]:
    """`ispyb-falcon serve` with this config; fails the test with its log if it does not start."""
    port = int(
        next(line for line in config.read_text().splitlines() if line.startswith("port"))[7:]
    )
    log = directory / "server.log"
    process = start_server(config, log)
    server = Server(f"http://127.0.0.1:{port}/ispyb/api/v1", log, process)
    try:
        deadline = time.monotonic() + READY_SECONDS
        while True:
            size = log.stat().st_size
            try:
                with urllib.request.urlopen(server.base + "/health", timeout=5) as r:
                    if json.load(r)["database"] == "ok":
                        server.ready_at = size
                        break
            except OSError:
                pass
            if process.poll() is not None:
                REPORT.append(
                    f"--- {site.id}: the server did not start (exit {process.returncode})"
                )
                REPORT.extend(f"  | {line}" for line in log.read_text().splitlines())
                pytest.fail(
                    f"the server did not start (exit {process.returncode}):\n{log.read_text()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not answer in {READY_SECONDS} s:\n{log.read_text()}")
            time.sleep(0.2)
        yield server
    finally:
        stop(process)


def answers(url: str) -> bool:
    """Whether an HTTP server answers at `url`, whatever the status."""
    try:
        urllib.request.urlopen(url, timeout=5).close()
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def login(drive: Drive, base: str, name: str, who: str) -> Caller:
    answer = drive.send(
        None, "/auth/login", method="POST", body={"login": who, "password": "site"}, expected="200"
    )
    if answer.status != 200:
        pytest.fail(f"cannot log in as {who}: {answer.status} {answer.text}")
    return Caller(name, Client(base, answer.json["token"]))


# -- what the drifted database must show besides ------------------------------------


def mentions(lines: list[str], *words: str) -> bool:
    return any(all(w in line for w in words) for line in lines)


def drifted_checks(site: Site, drive: Drive, admin: Caller, startup: list[str]) -> None:
    """The drift bin/site-databases made, as the server must meet it."""
    expected = [
        ("XFEFluorescenceSpectrum",),  # the table is gone: its route is out
        ("DataCollection", "comments"),  # a searched column is gone
        ("Detector", "localName"),
    ]
    if site.schemas == "shipped":
        expected += [("Protein", "hazardGroup"), ("Dewar", "type")]  # the default, the enum
    for words in expected:
        if not mentions(startup, *words):
            drive.problems.append(f"the start-up report does not name {' '.join(words)}")

    # A create that relied on the default now gone: refused, naming the column.
    proposals = admin.rows.get("/proposals") or [{"proposalId": 1}]
    body = {
        "proposalId": proposals[0]["proposalId"],
        "name": "site matrix",
        "acronym": f"sm{secrets.token_hex(4)}",
    }
    drive.send(
        admin,
        "/proteins",
        method="POST",
        body=body,
        expected="4xx" if site.schemas == "generated" else "201/4xx/503",
        names=["hazardGroup"],
    )

    # The added enum value is served, and a list filters by it.
    answer = drive.send(admin, "/dewars", {"type": "Crate"}, expected="200")
    crates = drive.page(answer)["results"]
    if answer.status == 200 and not any(r.get("type") == "Crate" for r in crates):
        drive.problems.append(f"no dewar of type Crate served: {drive.sent[-1].line()}")
    for row in crates[:1]:
        drive.send(admin, f"/dewars/{row['dewarId']}", expected="200")


# -- the tests ------------------------------------------------------------------------


@pytest.mark.parametrize("site", MATRIX, ids=[s.id for s in MATRIX])
def test_site_database_served_without_5xx(site: Site, tmp_path: Path) -> None:
    require_database(site)
    schemas = generate(site, tmp_path / "schemas") if site.schemas == "generated" else None
    config = write_config(site, tmp_path, schemas, free_port())
    engine = sa.create_engine(MARIADB.set(database=site.database))
    live = live_columns(engine, site.database)
    engine.dispose()

    with serve(site, config, tmp_path) as server:
        drive = Drive(server.base, live)
        drive.discover()
        admin = login(drive, server.base, "admin", ADMIN_LOGIN)
        user = login(drive, server.base, "user", USER_LOGIN)
        drive.run([admin, user])
        if not user.rows.get("/proposals"):
            drive.problems.append(f"{USER_LOGIN} sees no proposal: the user drive saw nothing")
        startup = server.startup_report()
        if site.database == "site_drifted":
            drifted_checks(site, drive, admin, startup)
    log = server.log.read_text()
    sent = tmp_path / "requests.log"
    sent.write_text("".join(r.line() + "\n" for r in drive.sent))

    failed = [r for r in drive.sent if r.answer.status >= 500]
    traces = tracebacks(log, [r.request_id for r in failed])
    REPORT.append(f"--- {site.id} ({site.url().render_as_string(True)}, {site.schemas} schemas)")
    REPORT.extend(f"  | {line}" for line in startup)
    REPORT.append(
        f"  {len(drive.sent)} requests driven, {len(failed)} answered 5xx,"
        f" {len(drive.problems)} problem(s), {log.count('Traceback')} traceback(s) in the log"
        f" (every request and answer: {sent})"
    )
    problems = list(drive.problems)
    for r in failed:
        if r.request_id in traces:
            problems.append(f"traceback of {r.request_id}:\n{traces[r.request_id]}")
    if "Traceback" in log:
        problems.append(f"the server log holds {log.count('Traceback')} traceback(s): {server.log}")
    assert not problems, f"{site.id}: {len(problems)} problem(s)\n" + "\n".join(problems)


def test_drifted_database_refused_with_shipped_schemas(tmp_path: Path) -> None:
    """schema_check = error (the default) on the shipped schemas: the server refuses to
    start, in one message that names every difference, and exits 2 without a traceback."""
    site = Site("drifted-shipped-error", "site_drifted", schemas="shipped", schema_check="error")
    require_database(site)
    port = free_port()
    config = write_config(site, tmp_path, None, port)
    log = tmp_path / "server.log"
    process = start_server(config, log)
    try:
        deadline = time.monotonic() + READY_SECONDS
        while process.poll() is None and time.monotonic() < deadline:
            if answers(f"http://127.0.0.1:{port}/ispyb/api/v1/health"):
                pytest.fail(f"the server started on a drifted database:\n{log.read_text()}")
            time.sleep(0.2)
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)
    text = log.read_text()
    REPORT.append(f"--- {site.id} ({site.url().render_as_string(True)}): exit {process.returncode}")
    REPORT.extend(f"  | {line}" for line in text.splitlines())
    assert process.returncode == 2, text
    assert "Traceback" not in text, text
    lines = text.splitlines()
    for words in (
        ("XFEFluorescenceSpectrum",),
        ("DataCollection", "comments"),
        ("Detector", "localName"),
        ("Protein", "hazardGroup"),  # NOT NULL, and its default is gone
        ("Dewar", "type"),  # one more enum value
    ):
        assert mentions(lines, *words), f"the refusal does not name {' '.join(words)}:\n{text}"
