"""The login limit: the same for the whole site, and no lockout of a login that did not fail.

The rules run against every store a site can choose (this process's memory, a
table in SQLite or MariaDB, Redis), then through the HTTP API: the client's
address behind trusted proxies, a store outage (503, never 500), the settings;
and last on four `ispyb-falcon serve` processes sharing one store, as four
gunicorn workers or four hosts do.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import falcon.testing
import pytest
import sqlalchemy as sa

from ispyb_falcon import db
from ispyb_falcon.app import create_app
from ispyb_falcon.auth import limitstores
from ispyb_falcon.auth.limitstores import DatabaseStore, RedisStore, create_table
from ispyb_falcon.auth.proxies import TrustedProxies, check_entry
from ispyb_falcon.auth.ratelimit import (
    LoginLimiter,
    MemoryStore,
    TooManyFailures,
    address_key,
)
from ispyb_falcon.auth.resp import Redis
from ispyb_falcon.cli import main
from ispyb_falcon.config import ConfigError, load_settings

from .conftest import MARIADB_URL, PREFIX
from .servers import free_port
from .site_workers import (
    PASSWORDS,
    REDIS_URL,
    drop_redis_keys,
    limit_table,
    post_login,
    redis_or_skip,
    redis_prefix,
    site_workers,
    write_passwords,
)

N = 3  # failures per login (and per login at one address)
M = 6  # failures per address
WINDOW = 60
STORES = ["memory", "sqlite", "mariadb", "redis"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture(scope="module")
def mariadb_table():
    """The limit's table in the MariaDB test database, for this module only."""
    if not MARIADB_URL:
        pytest.skip("ISPYB_FALCON_TEST_DATABASE_URL is not set")
    engine = sa.create_engine(MARIADB_URL)
    created = create_table(engine)
    yield engine
    if created:
        limitstores.table.drop(engine)
    engine.dispose()


def store_factory(kind: str, request, tmp_path):
    """A function making stores of one kind that share their counts, as workers do."""
    settings = load_settings(None, environ={})
    if kind == "memory":
        store = MemoryStore()
        return lambda: store
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'limit.sqlite'}"
        engines = []

        def make():
            engines.append(db.make_engine(settings, url))
            create_table(engines[-1])
            return DatabaseStore(engines[-1])

        request.addfinalizer(lambda: [e.dispose() for e in engines])
        return make
    if kind == "mariadb":
        shared = request.getfixturevalue("mariadb_table")
        with shared.begin() as conn:
            conn.execute(sa.delete(limitstores.table))
        engines = []

        def make():
            engines.append(db.make_engine(settings, MARIADB_URL))
            return DatabaseStore(engines[-1])

        request.addfinalizer(lambda: [e.dispose() for e in engines])
        return make
    url = redis_or_skip()
    prefix = redis_prefix()
    request.addfinalizer(lambda: drop_redis_keys(url, prefix))
    return lambda: RedisStore(Redis(url, timeout=5), prefix=prefix)


@pytest.fixture(params=STORES)
def stores(request, tmp_path):
    return store_factory(request.param, request, tmp_path)


@pytest.fixture
def make(stores, clock):
    """make(**options) -> a limiter on the test's store (N per login, M per address)."""

    def limiter(**options) -> LoginLimiter:
        options.setdefault("max_address_failures", M)
        options.setdefault("store", stores())
        return LoginLimiter(N, WINDOW, clock, **options)

    return limiter


def fail(limiter: LoginLimiter, login: str, address: str, times: int = 1) -> None:
    """Wrong passwords: attempts that are never settled stay counted as failures."""
    for _ in range(times):
        limiter.attempt(login, address)


def refused(limiter: LoginLimiter, login: str, address: str) -> int | None:
    """Seconds the login must wait at the address, or None (the probe is taken back)."""
    try:
        limiter.withdraw(limiter.attempt(login, address))
    except TooManyFailures as exc:
        return exc.seconds
    return None


def log_in(limiter: LoginLimiter, login: str, address: str) -> None:
    limiter.succeeded(limiter.attempt(login, address))


# --- the rules, on every store --------------------------------------------------------------


def test_a_login_is_refused_after_its_failures_from_any_addresses(make):
    limiter = make()
    for i in range(N):
        assert refused(limiter, "alice", f"10.0.0.{i}") is None
        fail(limiter, "alice", f"10.0.0.{i}")
    assert refused(limiter, "alice", "10.9.9.9") == WINDOW
    # Other logins from those addresses are not refused.
    assert refused(limiter, "bob", "10.0.0.1") is None


def test_retry_after_counts_down_from_the_oldest_failure(make, clock):
    limiter = make()
    for step in (0, 10, 20):
        clock.now = 1000 + step
        fail(limiter, "alice", "a")
    assert refused(limiter, "alice", "a") == 40  # the first failure leaves the window at 1060
    clock.now = 1059.5
    assert refused(limiter, "alice", "a") == 1
    clock.now = 1060
    assert refused(limiter, "alice", "a") is None


def test_failures_leave_the_window(make, clock):
    limiter = make()
    fail(limiter, "alice", "a", N - 1)
    clock.now += WINDOW + 1
    fail(limiter, "alice", "a", N - 1)  # the first ones are outside the window now
    assert refused(limiter, "alice", "a") is None
    fail(limiter, "alice", "a")
    assert refused(limiter, "alice", "a") == WINDOW


def test_the_case_of_a_login_does_not_dodge_the_limit(make):
    limiter = make()
    fail(limiter, "Alice", "a")
    fail(limiter, "ALICE", "b")
    fail(limiter, "alice", "c")
    assert refused(limiter, "aLiCe", "d") == WINDOW


def test_an_address_is_refused_after_failures_over_many_logins(make):
    limiter = make()
    for i in range(M):
        fail(limiter, f"user{i}", "6.6.6.6")
    assert refused(limiter, "fresh", "6.6.6.6") == WINDOW
    assert refused(limiter, "fresh", "7.7.7.7") is None


def test_a_sprayer_cannot_lock_out_a_login_known_at_its_address_or_elsewhere(make):
    limiter = make()
    log_in(limiter, "admin1", "6.6.6.6")  # the lab's NAT address, which the sprayer shares
    log_in(limiter, "admin1", "10.1.1.1")
    for i in range(5 * M):
        with contextlib.suppress(TooManyFailures):
            fail(limiter, f"user{i}", "6.6.6.6")
    assert refused(limiter, "fresh", "6.6.6.6") == WINDOW
    assert refused(limiter, "admin1", "6.6.6.6") is None
    log_in(limiter, "admin1", "6.6.6.6")
    assert refused(limiter, "admin1", "10.1.1.1") is None
    assert refused(limiter, "admin1", "10.2.2.2") is None  # a new address: not refused either
    # Where admin1 is not known, the sprayer's address is refused for everyone.
    assert refused(limiter, "manager1", "6.6.6.6") == WINDOW


def test_a_known_login_is_refused_only_after_its_own_failures_at_that_address(make):
    limiter = make()
    log_in(limiter, "admin1", "10.1.1.1")
    for i in range(3 * N):  # guesses at admin1 from many addresses
        with contextlib.suppress(TooManyFailures):
            fail(limiter, "admin1", f"172.16.0.{i}")
    assert refused(limiter, "admin1", "172.16.9.9") == WINDOW  # where admin1 is not known
    assert refused(limiter, "admin1", "10.1.1.1") is None
    fail(limiter, "admin1", "10.1.1.1", N)  # admin1's own typos at their usual address
    assert refused(limiter, "admin1", "10.1.1.1") == WINDOW


def test_without_known_addresses_every_count_applies(make):
    limiter = make(known_days=0)
    log_in(limiter, "admin1", "6.6.6.6")
    fail(limiter, "admin1", "9.9.9.9", N)
    assert refused(limiter, "admin1", "6.6.6.6") == WINDOW


def test_a_login_stays_known_for_known_days(make, clock):
    limiter = make(known_days=1)
    log_in(limiter, "admin1", "10.1.1.1")
    fail(limiter, "admin1", "9.9.9.9", N)
    assert refused(limiter, "admin1", "10.1.1.1") is None
    clock.now += 86_400 - WINDOW  # a day later, the day's last guesses still count
    fail(limiter, "admin1", "9.9.9.9", N)
    assert refused(limiter, "admin1", "10.1.1.1") is None
    clock.now += WINDOW
    fail(limiter, "admin1", "9.9.9.9", N)
    assert refused(limiter, "admin1", "10.1.1.1") == WINDOW  # no longer known


def test_success_forgives_the_logins_failures_at_that_address_in_every_count(make):
    limiter = make()
    fail(limiter, "alice", "a", N - 1)  # typos
    for i in range(M - N):
        fail(limiter, f"user{i}", "a")
    log_in(limiter, "alice", "a")
    fail(limiter, "alice", "b", N - 1)  # would reach N if the typos at a still counted
    assert refused(limiter, "alice", "c") is None
    fail(limiter, "bob", "a", N - 1)  # would reach M if they still counted on the address
    assert refused(limiter, "carol", "a") is None


def test_success_does_not_forgive_the_addresses_other_failures(make):
    limiter = make()
    for i in range(M - 1):
        fail(limiter, f"user{i}", "a")
    log_in(limiter, "mine", "a")
    assert refused(limiter, "other", "a") is None
    fail(limiter, "user9", "a")
    assert refused(limiter, "other", "a") == WINDOW


def test_an_attempt_counts_as_failed_from_its_start_until_withdrawn(make):
    limiter = make()
    first = limiter.attempt("alice", "a")
    fail(limiter, "alice", "a", N - 1)
    with pytest.raises(TooManyFailures) as blocked:
        limiter.attempt("alice", "a")  # those before are still being checked
    assert blocked.value.seconds == WINDOW
    limiter.withdraw(first)  # e.g. the authenticator was unreachable
    log_in(limiter, "alice", "a")
    assert refused(limiter, "alice", "b") is None


def test_ipv6_clients_count_per_64_network(make):
    limiter = make()
    for i in range(M):
        fail(limiter, f"user{i}", f"2001:db8:1:2::{i + 1:x}")
    assert refused(limiter, "fresh", "2001:db8:1:2:ffff::9") == WINDOW
    assert refused(limiter, "fresh", "2001:db8:1:3::1") is None
    assert address_key("::ffff:10.1.2.3") == "10.1.2.3"


def test_two_workers_sharing_a_store_count_together(make, stores):
    one, two = make(store=stores()), make(store=stores())
    fail(one, "alice", "a")
    fail(two, "alice", "b")
    fail(one, "alice", "c")
    assert refused(two, "alice", "d") == WINDOW
    log_in(two, "admin1", "x")
    fail(one, "admin1", "y", N)
    assert refused(one, "admin1", "x") is None  # known, whichever worker saw the success


def test_simultaneous_attempts_on_two_workers_pass_no_more_often_than_the_limit(stores):
    workers = [LoginLimiter(N, WINDOW, store=stores()) for _ in range(2)]
    login = f"alice-{uuid.uuid4().hex}"
    barrier = threading.Barrier(24)

    def guess(i: int) -> bool:
        barrier.wait()
        try:
            workers[i % 2].attempt(login, f"10.0.{i}.1")
        except TooManyFailures:
            return False
        return True

    with ThreadPoolExecutor(24) as pool:
        passed = list(pool.map(guess, range(24)))
    assert passed.count(True) == N


# --- this process's memory --------------------------------------------------------------------


def test_memory_is_bounded_and_keeps_the_latest(clock):
    store = MemoryStore(max_entries=100)
    limiter = LoginLimiter(5, 300, clock, store=store)
    for i in range(1000):
        fail(limiter, f"user{i}", f"10.0.{i // 256}.{i % 256}")
    assert len(store) <= 100
    fail(limiter, "user999", "10.0.3.231", 4)
    assert refused(limiter, "user999", "10.0.3.231") == 300


def test_memory_forgets_what_left_the_window(clock):
    store = MemoryStore()
    limiter = LoginLimiter(5, 60, clock, store=store)
    for i in range(50):
        fail(limiter, f"user{i}", f"10.0.0.{i}")
    assert len(store) == 150
    clock.now += 61
    fail(limiter, "late", "b")
    assert len(store) == 3  # the pair, the login and the address of the late one


def test_bad_limiter_arguments():
    with pytest.raises(ValueError, match="max_failures"):
        LoginLimiter(max_failures=0)
    with pytest.raises(ValueError, match="window_seconds"):
        LoginLimiter(window_seconds=0)
    with pytest.raises(ValueError, match="max_entries"):
        MemoryStore(max_entries=0)


# --- which address a request comes from -------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.9", "1.1.1.1", "203.0.113.9"),  # not a proxy: its header proves nothing
        ("10.0.0.5", "1.1.1.1", "1.1.1.1"),
        ("10.0.0.5", "6.6.6.6, 1.1.1.1", "1.1.1.1"),  # the client's own header is on the left
        ("10.0.0.5", "1.1.1.1, 10.0.0.7", "1.1.1.1"),  # two proxies of the site
        ("10.0.0.5", "10.0.0.8, 10.0.0.7", "10.0.0.8"),  # only proxies: the farthest
        ("10.0.0.5", "1.1.1.1, unknown", "10.0.0.5"),  # no address: the last hop vouched for
        ("10.0.0.5", None, "10.0.0.5"),
        ("10.0.0.5", "1.1.1.1:5678", "1.1.1.1"),
        ("10.0.0.5", "[2001:db8::1]:443", "2001:db8::1"),
        ("10.0.0.5", "::ffff:1.1.1.1", "1.1.1.1"),
        ("::ffff:10.0.0.5", "1.1.1.1", "1.1.1.1"),
        ("", "1.1.1.1", "1.1.1.1"),  # a Unix socket, trusted below
    ],
)
def test_the_client_is_the_right_most_address_that_is_no_trusted_proxy(peer, forwarded, client):
    proxies = TrustedProxies(["10.0.0.0/24", "unix"])
    assert proxies.client(peer, forwarded) == client


def test_without_trusted_proxies_the_header_is_ignored():
    assert TrustedProxies().client("127.0.0.1", "1.1.1.1") == "127.0.0.1"
    assert TrustedProxies().client("", "1.1.1.1") == "-"
    assert TrustedProxies(["10.0.0.1"]).client("", "1.1.1.1") == "-"  # a socket, not trusted


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "nginx", "10.0.0.1/8/2", ""])
def test_a_bad_trusted_proxy_is_refused(entry):
    with pytest.raises(ValueError, match="not an address"):
        check_entry(entry)


# --- through the HTTP API ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def password_file(tmp_path_factory):
    return write_passwords(tmp_path_factory.mktemp("limiter") / "passwords")


def file_client(settings, catalog, password_file, **changes) -> falcon.testing.TestClient:
    local = settings.replace(
        auth_authenticators=("file",),
        authenticator_options={"file": {"path": str(password_file)}},
        auth_login_max_failures=N,
        auth_address_max_failures=M,
        **changes,
    )
    return falcon.testing.TestClient(create_app(local, catalog=catalog))


def login(client, login: str, password: str, peer: str, forwarded: str | None = None):
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return client.simulate_post(
        PREFIX + "/auth/login",
        json={"login": login, "password": password},
        remote_addr=peer,
        headers=headers,
    )


def test_behind_a_trusted_proxy_each_client_has_its_own_count(settings, catalog, password_file):
    client = file_client(settings, catalog, password_file, server_trusted_proxies=("192.0.2.10",))
    proxy = "192.0.2.10"
    for i in range(M):  # a sprayer at 6.6.6.6 sending its own header, changed every time
        r = login(client, f"user{i}", "guess", proxy, f"10.{i}.0.1, 6.6.6.6")
        assert r.status_code == 401, r.text
    r = login(client, "user99", "guess", proxy, "10.99.0.1, 6.6.6.6")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    r = login(client, "admin1", PASSWORDS["admin1"], proxy, "198.51.100.7")
    assert r.status_code == 200, r.text


def test_without_trusted_proxies_a_forged_header_changes_nothing(settings, catalog, password_file):
    client = file_client(settings, catalog, password_file)
    for i in range(M):
        assert login(client, f"user{i}", "guess", "6.6.6.6", f"10.{i}.0.1").status_code == 401
    assert login(client, "user99", "guess", "6.6.6.6", "10.99.0.1").status_code == 429
    assert login(client, "admin1", PASSWORDS["admin1"], "7.7.7.7").status_code == 200


def test_a_store_outage_is_a_503_with_retry_after_never_a_500(
    settings, catalog, password_file, tmp_path
):
    closed = free_port()
    for changes in (
        {"auth_limiter": "redis", "auth_limiter_url": f"redis://127.0.0.1:{closed}/0"},
        {
            "auth_limiter": "database",
            "auth_limiter_url": f"sqlite:///{tmp_path / 'no-such-directory' / 'limit.sqlite'}",
        },
        {
            "auth_limiter": "database",
            "auth_limiter_url": f"mysql+pymysql://root@127.0.0.1:{closed}/ispyb",
            "database_connect_timeout": 1,
        },
    ):
        client = file_client(settings, catalog, password_file, **changes)  # starts all the same
        r = login(client, "admin1", PASSWORDS["admin1"], "10.0.0.1")
        assert r.status_code == 503, (changes, r.text)
        assert int(r.headers["Retry-After"]) > 0
        assert r.json["title"] == "503 Service Unavailable"


def test_a_redis_outage_ends_without_a_restart(settings, catalog, password_file):
    """Cut: 503 at once; hung: 503 after the timeout; back: counted again, reconnected."""
    from .test_outage import Proxy

    url = redis_or_skip()
    target = Redis(url, timeout=2)
    proxy = Proxy(target.host, target.port)
    prefix = redis_prefix()
    client = file_client(
        settings,
        catalog,
        password_file,
        auth_limiter="redis",
        auth_limiter_url=f"redis://127.0.0.1:{proxy.port}/{target.db}?prefix={prefix}",
        database_connect_timeout=1,
    )
    try:
        assert login(client, "pi_anna", "wrong", "10.0.0.1").status_code == 401
        proxy.set("cut")
        assert login(client, "pi_anna", "wrong", "10.0.0.1").status_code == 503
        proxy.set("hang")
        started = time.monotonic()
        assert login(client, "pi_anna", "wrong", "10.0.0.1").status_code == 503
        assert time.monotonic() - started < 5
        proxy.set("forward")
        answers = [login(client, "pi_anna", "wrong", "10.0.0.1") for _ in range(N)]
        assert [a.status_code for a in answers] == [401] * (N - 1) + [429]
    finally:
        proxy.close()
        drop_redis_keys(url, prefix)


def test_a_missing_table_stops_the_start_with_what_to_run(settings, catalog, tmp_path):
    local = settings.replace(
        auth_limiter="database", auth_limiter_url=f"sqlite:///{tmp_path / 'empty.sqlite'}"
    )
    with pytest.raises(ConfigError, match="ispyb-falcon limiter init"):
        create_app(local, catalog=catalog)


def test_limiter_init_creates_the_table_once_and_prints_its_sql(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'limit.sqlite'}"
    assert main(["limiter", "init", "--database", url]) == 0
    assert "created" in capsys.readouterr().err
    assert main(["limiter", "init", "--database", url]) == 0
    assert "already there" in capsys.readouterr().err
    assert main(["limiter", "init", "--sql", "--database", "mysql+pymysql://u@h/ispyb"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("CREATE TABLE ispyb_falcon_login_limit") and "ENGINE=InnoDB" in out


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ISPYB_FALCON_SERVER_TRUSTED_PROXIES": "10.0.0.0/8, nginx"}, "TRUSTED_PROXIES"),
        ({"ISPYB_FALCON_AUTH_LIMITER": "postgres"}, "AUTH_LIMITER"),
        ({"ISPYB_FALCON_AUTH_ADDRESS_MAX_FAILURES": "0"}, "ADDRESS_MAX_FAILURES"),
        ({"ISPYB_FALCON_AUTH_KNOWN_ADDRESS_DAYS": "-1"}, "KNOWN_ADDRESS_DAYS"),
    ],
)
def test_bad_limit_settings_name_the_key(env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(None, environ=env)


def test_limit_settings_come_from_the_environment():
    settings = load_settings(
        None,
        environ={
            "ISPYB_FALCON_SERVER_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8, unix",
            "ISPYB_FALCON_AUTH_LIMITER": "redis",
            "ISPYB_FALCON_AUTH_LIMITER_URL": "redis://cache:6379/2",
            "ISPYB_FALCON_AUTH_ADDRESS_MAX_FAILURES": "50",
            "ISPYB_FALCON_AUTH_KNOWN_ADDRESS_DAYS": "0",
        },
    )
    assert settings[("server", "trusted_proxies")] == ("127.0.0.1", "10.0.0.0/8", "unix")
    assert settings[("auth", "limiter")] == "redis"
    assert settings[("auth", "limiter_url")] == "redis://cache:6379/2"
    assert settings[("auth", "address_max_failures")] == 50
    assert settings[("auth", "known_address_days")] == 0


@pytest.mark.parametrize(
    "url", ["", "http://cache:6379", "redis://cache:port/0", "redis://c/x", "redis://c/0?db=1"]
)
def test_a_bad_redis_url_is_a_config_error(settings, catalog, url):
    with pytest.raises(ConfigError, match=r"\[auth\] limiter = redis"):
        create_app(settings.replace(auth_limiter="redis", auth_limiter_url=url), catalog=catalog)


# --- four processes of one site -----------------------------------------------------------------


@pytest.fixture(scope="module")
def site_database(database_url):
    with limit_table(database_url) as url:
        yield url


def together(calls):
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


@pytest.mark.parametrize("limiter", ["database", "redis"])
def test_four_processes_allow_the_limit_not_four_times_it(limiter, site_database, tmp_path):
    """25 wrong passwords spread over four processes get N answers of 401, not 4 x N;
    so do 24 sent at once; a login that did not fail is not refused."""
    auth = {"limiter": limiter, "login_max_failures": str(N)}
    if limiter == "redis":
        prefix = redis_prefix()
        auth["limiter_url"] = f"{redis_or_skip()}?prefix={prefix}"
    try:
        with site_workers(tmp_path, site_database, 4, **auth) as ports:
            answers = [post_login(ports[i % 4], "pi_anna", f"wrong{i}") for i in range(25)]
            assert Counter(a.status for a in answers) == {401: N, 429: 25 - N}, answers
            at_once = together(
                [
                    lambda i=i: post_login(
                        ports[i % 4], "manager1", f"wrong{i}", source="127.0.0.2"
                    )
                    for i in range(24)
                ]
            )
            assert Counter(a.status for a in at_once) == {401: N, 429: 24 - N}, at_once
            for port in ports:
                assert post_login(port, "admin1", PASSWORDS["admin1"]).status == 200
    finally:
        if limiter == "redis":
            drop_redis_keys(REDIS_URL, prefix)
