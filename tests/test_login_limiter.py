"""The login limit and the client's address: from X-Forwarded-For only when the
connection comes from one of `[server] trusted_proxies`, as the right-most address
that is not itself a trusted proxy."""

from __future__ import annotations

import falcon.testing
import pytest

from ispyb_falcon.app import create_app
from ispyb_falcon.auth.passwords import MIN_ITERATIONS, hash_password
from ispyb_falcon.auth.proxies import TrustedProxies, check_entry
from ispyb_falcon.config import ConfigError, load_settings

from .conftest import PREFIX

N = 3  # failures per login at an address
M = 4 * N  # failures per address
PASSWORDS = {"admin1": "right-admin"}


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
    path = tmp_path_factory.mktemp("limiter") / "passwords"
    path.write_text(
        f"admin1:admin:{hash_password(PASSWORDS['admin1'], iterations=MIN_ITERATIONS)}\n"
    )
    return path


def file_client(settings, catalog, password_file, **changes) -> falcon.testing.TestClient:
    local = settings.replace(
        auth_authenticators=("file",),
        authenticator_options={"file": {"path": str(password_file)}},
        auth_login_max_failures=N,
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


def test_a_bad_trusted_proxy_setting_names_the_key():
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
        load_settings(None, environ={"ISPYB_FALCON_SERVER_TRUSTED_PROXIES": "10.0.0.0/8, nginx"})


def test_trusted_proxies_come_from_the_environment():
    settings = load_settings(
        None, environ={"ISPYB_FALCON_SERVER_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8, unix"}
    )
    assert settings[("server", "trusted_proxies")] == ("127.0.0.1", "10.0.0.0/8", "unix")
