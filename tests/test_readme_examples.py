"""The README's examples run as printed, against `ispyb-falcon demo`, and answer what they say.

A reader copies the README's shell blocks into a terminal, in order, with the
demo running: the login sets `TOKEN`, the next block sets `API`, the routes
block sets `H`, and every later example uses them. This module does the same
with bash against one demo server (`tests/servers.py`, a fresh SQLite file),
with two changes a reader would make too: the demo listens on a free port
instead of 8080 (the port in the printed URLs is replaced, nothing else), and
the client examples get that base URL as their first argument, as the README
says they take it.

Every `curl` of a printed block runs through a shell function that calls the
real curl with the printed arguments plus `-D <file>`, so the test reads each
answer's status without changing what the command prints. A command must
answer 2xx, or the status its own comment states (`# -> 409 ...`). A bash
block of the README that is neither run here nor listed in `NOT_RUN` with a
reason fails the test, so a new example cannot go untested by accident.

It also checks that every relative link of README.md and docs/api.md names a
file of this repository, and that docs/api.md's table of resources lists the
routes the server declares.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from ispyb_falcon.cli import parser
from ispyb_falcon.resources import MODULES

from .servers import demo_server

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
API_DOC = ROOT / "docs" / "api.md"
PRINTED_ORIGIN = "http://127.0.0.1:8080"  # where the README says the demo listens

needs_shell = pytest.mark.skipif(
    not (shutil.which("bash") and shutil.which("curl") and shutil.which("python3")),
    reason="the README's examples need bash, curl and python3 on PATH",
)

# Bash blocks of the README that are not run here, each found by a line it holds.
NOT_RUN = {
    "cp conf/ispyb-falcon.example.ini /etc/ispyb-falcon.ini": (
        "serves a site's own database from /etc: no such database here"
    ),
    "schemas generate --out /etc/ispyb-falcon/schemas": (
        "reads and writes a site's database and /etc; tests/test_catalog_generate.py"
        " and tests/test_site_fit.py run these commands on their own databases"
    ),
    "ispyb-falcon passwd --file /etc/ispyb-falcon/passwords": (
        "asks for a password twice on a terminal and writes to /etc"
    ),
    "token --login mxcube-i03 --role acquisition": (
        "needs the site's configuration in /etc; tests/test_config_cli.py runs `token`"
    ),
    "gunicorn -w 4 --threads 4": "gunicorn is not a dependency of the package or its tests",
    "grant_type=client_credentials": (
        "asks a Keycloak realm for a token; tests/test_auth_oidc.py signs tokens as the"
        " provider would and sends them to the API"
    ),
    "bash .ci/run": "runs this very test suite (and MariaDB, LDAP)",
    "bin/bench": "needs MariaDB and minutes of a quiet machine",
    "openapi-python-client generate --url": (
        "tests/test_generated_client.py runs the same generator on the demo's document and"
        " uses the client it writes"
    ),
}


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    text: str  # the block's lines, without the fences and their indentation

    def __str__(self) -> str:
        return f"README.md line {self.line}"


def bash_blocks(markdown: str) -> list[Block]:
    """Every fenced ```bash block, also those indented inside a list item."""
    blocks, lines, i = [], markdown.splitlines(), 0
    while i < len(lines):
        m = re.match(r"^(\s*)```bash\s*$", lines[i])
        i += 1
        if not m:
            continue
        indent, start, body = len(m.group(1)), i, []
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][indent:] if lines[i][:indent].isspace() else lines[i])
            i += 1
        i += 1
        blocks.append(Block(start, "\n".join(body) + "\n"))
    return blocks


def code_of(line: str) -> str:
    """A line without its trailing comment (a `#` at the start or after a space)."""
    return re.split(r"(?:^|\s)#", line, maxsplit=1)[0]


def kind(block: Block) -> str:
    text = block.text
    if any(marker in text for marker in NOT_RUN):  # also a curl to a server not the demo
        return "not run"
    if "bin/examples/" in text:  # before curl: one of them is bin/examples/curl.sh
        return "clients"
    if "curl" in text:
        return "api"
    if "ispyb-falcon demo" in text:
        return "quick start"
    return "not run"


@dataclass(frozen=True)
class Command:
    block: Block
    line: int
    text: str

    @property
    def curls(self) -> int:
        """How many times it calls curl (its code, not its comments)."""
        code = "\n".join(code_of(line) for line in self.text.splitlines())
        return len(re.findall(r"(?<![\w/.-])curl\b", code))

    @property
    def expected(self) -> int | None:
        """The status its comment states (`# -> 409 ...`); None: any 2xx."""
        m = re.search(r"#\s*->\s*(\d{3})\b", self.text)
        return int(m.group(1)) if m else None

    def __str__(self) -> str:
        return f"README.md line {self.line}: {self.text.strip()}"


def commands(block: Block) -> list[Command]:
    """The block's shell commands: a line, with those its backslash or open quote continues."""
    found, pending, first = [], [], 0
    for n, line in enumerate(block.text.splitlines()):
        if not pending:
            first = block.line + 1 + n
        pending.append(line)
        text = "\n".join(pending)
        if line.rstrip().endswith("\\"):
            continue
        try:
            words = shlex.split(text, comments=True)
        except ValueError:  # a quote still open: the command goes on
            continue
        if words:
            found.append(Command(block, first, text))
        pending = []
    assert not pending, f"{block}: unfinished command {pending}"
    return found


README_TEXT = README.read_text(encoding="utf-8")
BLOCKS = bash_blocks(README_TEXT)
BY_KIND = {k: [b for b in BLOCKS if kind(b) == k] for k in ("api", "clients", "quick start")}


def test_every_bash_block_is_run_or_says_why_not():
    assert len(BLOCKS) >= 10, "the README's bash blocks were not found"
    unclassified, unused = [], set(NOT_RUN)
    for block in BLOCKS:
        if kind(block) != "not run":
            continue
        reasons = [marker for marker in NOT_RUN if marker in block.text]
        unused -= set(reasons)
        if not reasons:
            unclassified.append(f"{block}:\n{block.text}")
    assert not unclassified, "bash blocks neither run nor listed in NOT_RUN:\n" + "\n".join(
        unclassified
    )
    assert not unused, f"NOT_RUN names blocks the README no longer has: {sorted(unused)}"
    assert len(BY_KIND["quick start"]) == 1
    assert len(BY_KIND["clients"]) == 1
    assert len(BY_KIND["api"]) >= 4


def test_the_quick_start_runs_the_demo_the_examples_use():
    """The demo command of "Two commands" is what `demo_server` runs, at the address printed.

    Its two `pip install` lines and the `pytest` line are not run: they install from
    the package index into a new environment, and the last runs this very suite.
    """
    (block,) = BY_KIND["quick start"]
    demo_line = next(c for c in commands(block) if "ispyb-falcon demo" in c.text)
    assert code_of(demo_line.text).strip().endswith(".venv/bin/ispyb-falcon demo")
    assert PRINTED_ORIGIN in block.text
    assert f"http://127.0.0.1:{parser().parse_args(['demo']).port}" == PRINTED_ORIGIN


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`ispyb-falcon demo` on a free port: (API base URL, its log file)."""
    with demo_server(tmp_path_factory.mktemp("readme")) as (base, log):
        yield base, log


def test_the_demo_prints_the_readme_login_example(demo):
    """ "The demo prints a ready-to-paste example": the README's login is that one."""
    base, log = demo
    origin = base.split("/ispyb/")[0]
    login = next(b for b in BY_KIND["api"] if "TOKEN=$(curl" in b.text)
    printed = " ".join(commands(login)[0].text.replace("\\\n", " ").split())
    shown = [" ".join(line.split()) for line in log.read_text().splitlines()]
    assert printed.replace(PRINTED_ORIGIN, origin) in shown, log.read_text()


def environment(**more: str) -> dict[str, str]:
    """The test's environment without the server's settings (ISPYB_*), as a new terminal."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("ISPYB_")}, **more}


# Runs before the printed text: records each curl answer's headers in a file per call.
RECORDER = r"""set -euo pipefail
curl() {
    local n
    n=$(( $(cat "$READMEX_DIR/calls") + 1 ))
    echo "$n" > "$READMEX_DIR/calls"
    command curl -D "$READMEX_DIR/answers/$READMEX_STEP.$n" "$@"
}
step() { READMEX_STEP=$1; echo "$1" > "$READMEX_DIR/step"; }
echo 0 > "$READMEX_DIR/calls"
"""


def as_stated(command: Command, status: int) -> bool:
    if command.expected is not None:
        return status == command.expected
    return 200 <= status < 300


@needs_shell
def test_the_api_examples_run_as_printed(demo, tmp_path):
    base, _log = demo
    origin = base.split("/ispyb/")[0]
    printed = [c for b in BY_KIND["api"] for c in commands(b)]
    assert sum(PRINTED_ORIGIN in c.text for c in printed) >= 2
    (tmp_path / "answers").mkdir()
    script = RECORDER + "".join(
        f"step {i}\n{c.text.replace(PRINTED_ORIGIN, origin)}\n" for i, c in enumerate(printed)
    )
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=environment(READMEX_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    step = int((tmp_path / "step").read_text())
    assert done.returncode == 0, (
        f"stopped at {printed[step]}\nstdout (end):\n{done.stdout[-2000:]}\nstderr:\n{done.stderr}"
    )
    assert step == len(printed) - 1

    answers: dict[int, list[int]] = {}
    for f in sorted((tmp_path / "answers").iterdir(), key=lambda f: int(f.suffix[1:])):
        statuses = re.findall(r"^HTTP/\S+ (\d{3})", f.read_text(), re.M)
        answers.setdefault(int(f.stem), []).append(int(statuses[-1]))
    wrong = []
    for i, command in enumerate(printed):
        got = answers.get(i, [])
        if len(got) != command.curls:
            wrong.append(f"{command}\n  -> {len(got)} answer(s) for {command.curls} curl(s)")
        elif not all(as_stated(command, status) for status in got):
            wanted = command.expected or "2xx"
            wrong.append(f"{command}\n  -> {got}, the README says {wanted}")
    assert not wrong, "\n".join(wrong) + f"\nstdout (end):\n{done.stdout[-2000:]}"
    assert sum(c.curls for c in printed) >= 25  # the examples were found and run


@needs_shell
@pytest.mark.parametrize(
    "command", commands(BY_KIND["clients"][0]), ids=lambda c: c.text.split()[0]
)
def test_the_client_examples_run_as_printed(demo, command):
    """Each printed command, with the demo's base URL as its first argument."""
    base, _log = demo
    code = code_of(command.text).strip()
    program = code.split()[0]
    if not shutil.which(program):
        pytest.skip(f"{program} is not on PATH")
    done = subprocess.run(
        ["bash", "-c", f"{code} {shlex.quote(base)}"],
        cwd=ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("logged in as pi_anna "), done.stdout


# --- links and the contract's table of resources ------------------------------------


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as '-'."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def prose(markdown: str) -> str:
    """The Markdown without its code blocks and code spans, where `](` is no link."""
    markdown = re.sub(r"^\s*```.*?^\s*```", "", markdown, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", markdown)


def relative_links(markdown: str) -> list[str]:
    text = prose(markdown)
    inline = re.findall(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", text)
    defined = re.findall(r"^\s*\[[^\]]+\]:\s*(\S+)", text, re.M)
    return [
        link
        for link in inline + defined
        if not re.match(r"^[a-z][a-z0-9+.-]*:", link, re.I)  # http:, mailto: ...
    ]


@pytest.mark.parametrize("document", [README, API_DOC], ids=lambda p: p.name)
def test_every_relative_link_names_a_file_of_the_repository(document):
    text = document.read_text(encoding="utf-8")
    links = relative_links(text)
    broken = []
    for link in links:
        path, _, anchor = link.partition("#")
        target = (document.parent / path).resolve() if path else document
        if not target.is_relative_to(ROOT) or not target.exists():
            broken.append(f"{link}: no such file in the repository")
        elif anchor and target.suffix == ".md":
            headings = re.findall(r"^#+\s+(.*)$", prose(target.read_text(encoding="utf-8")), re.M)
            if anchor not in {github_anchor(h) for h in headings}:
                broken.append(f"{link}: no heading #{anchor} in {target.name}")
    assert not broken, f"{document.name}: " + "; ".join(broken)
    if document == README:
        assert any(link.startswith("docs/api.md") for link in links)


def test_the_contract_lists_the_routes_the_server_declares():
    rows = re.findall(r"^\| `(/[^`]*)` \| (\w+) \|", API_DOC.read_text(encoding="utf-8"), re.M)
    declared = {(r.path, r.table) for routes in MODULES.values() for r in routes if r.path}
    assert set(rows) == declared
