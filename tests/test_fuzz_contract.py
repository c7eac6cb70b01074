"""Contract fuzzing: schemathesis drives every operation of /openapi.json in-process.

Every operation of the document is fuzzed as a user (`pi_anna`) and as an
admin (`admin1`), each with two seeds and a bounded number of examples per
operation: a fixed seed, so that every run makes the same requests, and a
seed drawn for this run, so that CI explores further each time. The run's
seed is printed (and named in a failure's report); `ISPYB_FALCON_TEST_FUZZ_SEED=<seed>`
replays it. Each response must not be a 5xx, must carry a documented status
code, and must match the documented schema. The test counts the requests it
makes and fails below `MIN_REQUESTS` per run of the fixed seed. Each failing
operation is reported with a curl command for its shrunk example; every
operation runs even when others fail. `ISPYB_FALCON_TEST_FUZZ_EXAMPLES` and
`ISPYB_FALCON_TEST_FUZZ_RUN_EXAMPLES` explore further than CI does (fuzz_hooks.py
steers keys to existing rows).

Fuzzing writes (admins create, change and delete rows), so it runs on an app
of its own over a database of its own: a fresh demo SQLite file, or a scratch
MariaDB database `ispyb_fuzz` on the test server loaded from the official SQL.
The session's `app` and database, used by the other modules, are not touched.
"""

from __future__ import annotations

import os
import secrets
import time
from collections import Counter

import falcon.testing
import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig
from schemathesis.generation import GenerationMode

from ispyb_falcon.app import create_app
from ispyb_falcon.demo.generator import fill
from ispyb_falcon.demo.sqlite import create_demo_database

from . import fuzz_hooks
from .conftest import MARIADB_URL, PREFIX, reachable, scratch_database

FIXED_SEED = 20260524
RUN_SEED = int(os.environ.get("ISPYB_FALCON_TEST_FUZZ_SEED") or secrets.randbelow(2**32))
SEEDS = {  # name -> (seed, examples per operation and role)
    "fixed": (FIXED_SEED, int(os.environ.get("ISPYB_FALCON_TEST_FUZZ_EXAMPLES", "25"))),
    "run": (RUN_SEED, int(os.environ.get("ISPYB_FALCON_TEST_FUZZ_RUN_EXAMPLES", "10"))),
}
REPLAY = f"ISPYB_FALCON_TEST_FUZZ_SEED={RUN_SEED} pytest tests/test_fuzz_contract.py"
MIN_REQUESTS = 5000  # per run of the fixed seed, users and admins together
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
# A failed check raises an AssertionError, or a FailureGroup (a BaseExceptionGroup) of them.
FAILURES = (Exception, BaseExceptionGroup)
LOGINS = {"user": "pi_anna", "admin": "admin1"}

FUZZ_DATABASE = "ispyb_fuzz"  # scratch database next to the MariaDB test database

FUZZ_SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    verbosity=Verbosity.quiet,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
)


@pytest.fixture(scope="module", autouse=True)
def same_examples_alone_or_in_the_suite():
    """The same seed gives the same requests, whichever test modules ran before.

    Hypothesis mixes the literals of every local module imported so far into
    what it generates, so the full suite and this module alone would send
    different requests (and find different failures). Without that pool the
    examples depend on the seed and the document only. Hypothesis-internal:
    if it moves, this does nothing (raising=False) and only reproducibility suffers.
    """
    from hypothesis.internal.conjecture import providers

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(providers, "_get_local_constants", providers.Constants, raising=False)
        providers.CONSTANTS_CACHE.cache.clear()
        yield
    providers.CONSTANTS_CACHE.cache.clear()


@pytest.fixture(scope="module")
def fuzz_database_url(tmp_path_factory, catalog):
    if not MARIADB_URL:
        url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.sqlite'}"
        create_demo_database(url, catalog.schemas, scale=1)
        yield url
        return
    with scratch_database(FUZZ_DATABASE) as scratch:
        url = scratch.render_as_string(hide_password=False)
        engine = reachable(url)
        fill(engine, scale=1)  # the official data plus one copy of the demo data
        engine.dispose()
        yield url


@pytest.fixture(scope="module")
def fuzz_app(settings, fuzz_database_url):
    return create_app(settings.replace(database_url=fuzz_database_url))


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_app, fuzz_database_url, catalog):
    """The app's own /openapi.json, fetched and parsed once per module."""
    # The tests send the token themselves: no generated (or negated) Authorization header.
    config = SchemathesisConfig.from_dict({"generation": {"with-security-parameters": False}})
    schema = schemathesis.openapi.from_wsgi(f"{PREFIX}/openapi.json", fuzz_app, config=config)
    engine = sa.create_engine(fuzz_database_url)
    fuzz_hooks.install(schema, engine, catalog)
    engine.dispose()
    return schema


@pytest.fixture(scope="module")
def fuzz_tokens(fuzz_app) -> dict[str, dict[str, str]]:
    client = falcon.testing.TestClient(fuzz_app)
    headers = {}
    for role, login in LOGINS.items():
        r = client.simulate_post(f"{PREFIX}/auth/login", json={"login": login, "password": "demo"})
        assert r.status_code == 200, r.text
        headers[role] = {"Authorization": f"Bearer {r.json['token']}"}
    return headers


@pytest.fixture(scope="module")
def tally() -> Counter:
    """Requests made and seconds spent, per role."""
    return Counter()


def _fuzz_operation(
    operation, headers: dict[str, str], seeded: tuple[int, int], statuses: Counter, found: dict
) -> None:
    """Fuzz one operation with valid and invalid data; keep the last (shrunk) failure."""
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @settings(FUZZ_SETTINGS, max_examples=seeded[1])
    @seed(seeded[0])
    @given(case=cases)
    def run(case):
        response = case.call(headers=headers)
        statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FAILURES as exc:
            found[operation.label] = (case, exc)
            raise

    try:
        run()
    except FAILURES as exc:  # every operation runs; the failures are reported together
        found.setdefault(operation.label, (None, exc))


def _report(found: dict, headers: dict[str, str]) -> str:
    lines = [f"{len(found)} operation(s) break the contract:"]
    for label, (case, exc) in found.items():
        failures = exc.exceptions if isinstance(exc, BaseExceptionGroup) else (exc,)
        lines.append(f"\n== {label}")
        if case is not None:
            lines.append(case.as_curl_command(headers=headers))
        for failure in failures:
            text = str(failure).strip().splitlines()
            lines += ["  " + t for t in text[:12]]
    return "\n".join(lines)


@pytest.mark.parametrize("seeds", SEEDS)
@pytest.mark.parametrize("role", ["user", "admin"])
def test_contract(role, seeds, fuzz_schema, fuzz_tokens, tally, capsys):
    """Every operation, as this role, with this seed: no 5xx, documented status codes and schemas."""
    seeded = SEEDS[seeds]
    headers = fuzz_tokens[role]
    statuses: Counter[int] = Counter()
    found: dict = {}
    replay = f" (replay: {REPLAY})" if seeds == "run" else ""
    with capsys.disabled():
        print(f"\ncontract fuzzing as {LOGINS[role]}, {seeds} seed {seeded[0]}{replay}")
    started = time.perf_counter()
    for result in fuzz_schema.get_all_operations():
        _fuzz_operation(result.ok(), headers, seeded, statuses, found)
    tally[seeds] += statuses.total()
    tally[f"{seeds} seconds"] += (seconds := time.perf_counter() - started)
    with capsys.disabled():
        print(
            f"contract fuzzing as {LOGINS[role]}: {statuses.total()} requests in {seconds:.0f} s; "
            + ", ".join(f"{code}: {n}" for code, n in sorted(statuses.items()))
        )
    assert not found, f"{seeds} seed {seeded[0]}{replay}\n" + _report(found, headers)


def test_contract_request_count(tally, capsys):
    """Enough requests, users and admins together (a run that broke off early made fewer)."""
    with capsys.disabled():
        for name, (value, examples) in SEEDS.items():
            print(
                f"\ncontract fuzzing: {tally[name]} requests in {tally[f'{name} seconds']:.0f} s, "
                f"{name} seed {value}, up to {examples} examples per operation and role"
            )
    assert tally["fixed"] >= MIN_REQUESTS
    assert tally["run"] > 0
