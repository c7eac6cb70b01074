"""LDAP authenticator against a real slapd (started by tests/ldap_server.py)."""

from __future__ import annotations

import os
import socket
import sys
import threading

import pytest

from ispyb_falcon.auth.authenticators import AuthenticatorUnavailable, Identity, load_authenticator
from ispyb_falcon.auth.ldap import LdapAuthenticator

try:
    from ldap_server import find_slapd, free_port, running_slapd
except ImportError:  # tests/ is a package, or pytest runs with another import mode
    from tests.ldap_server import find_slapd, free_port, running_slapd

pytest.importorskip("ldap3")


@pytest.fixture(scope="module")
def slapd():
    if find_slapd() is None:
        message = "slapd is not installed (apt-get install slapd ldap-utils)"
        if os.environ.get("ISPYB_FALCON_TEST_REQUIRE_LDAP") == "1":
            pytest.fail(message + "; ISPYB_FALCON_TEST_REQUIRE_LDAP=1 requires it")
        pytest.skip(message)
    with running_slapd() as server:
        yield server


@pytest.fixture(params=["per-group", "group_base"])
def ldap_auth(request, slapd) -> LdapAuthenticator:
    """Both ways of finding groups: reading each role group, or one search under group_base."""
    overrides = {"group_base": slapd.groups} if request.param == "group_base" else {}
    return LdapAuthenticator(slapd.options(**overrides))


def test_user_without_groups_gets_default_role(ldap_auth):
    assert ldap_auth.authenticate("alice", "alice-pw") == Identity("alice", ("user",))


def test_member_attribute_gives_role(ldap_auth):
    assert ldap_auth.authenticate("bob", "bob-pw") == Identity("bob", ("admin",))


def test_unique_member_attribute_gives_role(ldap_auth):
    assert ldap_auth.authenticate("carol", "carol-pw") == Identity("carol", ("manager",))


@pytest.mark.parametrize("typed", ["Alice", "ALICE"])
def test_the_login_is_spelled_as_the_directory_spells_it(ldap_auth, typed):
    """The directory matches uid ignoring case; the API matches Person.login exactly."""
    assert ldap_auth.authenticate(typed, "alice-pw") == Identity("alice", ("user",))


def test_wrong_password(ldap_auth):
    assert ldap_auth.authenticate("alice", "bob-pw") is None
    assert ldap_auth.authenticate("bob", "BOB-PW") is None


def test_unknown_login(ldap_auth):
    assert ldap_auth.authenticate("mallory", "alice-pw") is None


def test_empty_password_is_never_an_anonymous_bind(ldap_auth):
    assert ldap_auth.authenticate("alice", "") is None
    assert ldap_auth.authenticate("", "") is None


@pytest.mark.parametrize(
    "login",
    [
        "*",
        "al*",
        "alice,ou=people",
        "bob,ou=people,dc=example,dc=org",
        "x,uid=bob",
        "uid=bob",
        "bob)(uid=*",
        "bob\\2c",
        "alice\x00",
        " alice",
        "#bob",
    ],
)
def test_special_characters_cannot_inject(ldap_auth, login):
    # Try every real password: none may succeed for a login that is not exactly the account.
    for password in ("alice-pw", "bob-pw", "carol-pw"):
        assert ldap_auth.authenticate(login, password) is None


def test_login_is_escaped_in_the_dn(ldap_auth):
    assert ldap_auth.user_dn("a,b=c*") == "uid=a\\,b\\=c*,ou=people,dc=example,dc=org"


def test_default_role_empty_refuses_users_outside_role_groups(slapd):
    auth = LdapAuthenticator(slapd.options(default_role=""))
    assert auth.authenticate("alice", "alice-pw") is None
    assert auth.authenticate("bob", "bob-pw") == Identity("bob", ("admin",))


def test_several_groups_give_several_roles(slapd):
    options = slapd.options(
        role_groups=(
            f"admin={slapd.admins_dn}; processing={slapd.admins_dn}; manager={slapd.managers_dn}"
        )
    )
    assert LdapAuthenticator(options).authenticate("bob", "bob-pw") == Identity(
        "bob", ("admin", "processing")
    )


def test_missing_role_group_is_not_an_error(slapd):
    options = slapd.options(role_groups=f"admin=cn=nobody,{slapd.groups}")
    assert LdapAuthenticator(options).authenticate("bob", "bob-pw") == Identity("bob", ("user",))


def test_loaded_by_alias(slapd):
    auth = load_authenticator("directory", "ldap", slapd.options())
    assert auth.name == "directory"
    assert auth.authenticate("bob", "bob-pw") == Identity("bob", ("admin",))


# --- failures that must not look like a wrong password --------------------------------------------


def test_failed_start_tls_never_sends_the_password(slapd):
    """The test slapd has no certificate, so StartTLS fails: that is 503, not a clear-text bind."""
    auth = LdapAuthenticator(slapd.options(start_tls="true"))
    with pytest.raises(AuthenticatorUnavailable):
        auth.authenticate("alice", "alice-pw")


def test_unreachable_server_is_unavailable():
    auth = LdapAuthenticator(
        {
            "url": f"ldap://127.0.0.1:{free_port()}",
            "user_dn_template": "uid={login},ou=people,dc=example,dc=org",
            "timeout": "2",
        }
    )
    with pytest.raises(AuthenticatorUnavailable):
        auth.authenticate("alice", "alice-pw")


def test_silent_server_times_out_as_unavailable():
    """A server that accepts the connection but never answers must not hang the login."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    accepted = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        auth = LdapAuthenticator(
            {
                "url": f"ldap://127.0.0.1:{listener.getsockname()[1]}",
                "user_dn_template": "uid={login},ou=people,dc=example,dc=org",
                "timeout": "1",
            }
        )
        with pytest.raises(AuthenticatorUnavailable):
            auth.authenticate("alice", "alice-pw")
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


# --- configuration --------------------------------------------------------------------------------

BASE = {
    "url": "ldap://127.0.0.1:389",
    "user_dn_template": "uid={login},ou=people,dc=example,dc=org",
}


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"user_dn_template": BASE["user_dn_template"]}, "url"),
        ({**BASE, "url": "http://example.org"}, "url"),
        ({**BASE, "url": "ldap://host:notaport"}, "url"),
        ({"url": BASE["url"]}, "user_dn_template"),
        ({**BASE, "user_dn_template": "uid=alice,ou=people"}, "user_dn_template"),
        ({**BASE, "role_groups": "root=cn=x,dc=example,dc=org"}, "role_groups"),
        ({**BASE, "role_groups": "admin"}, "role_groups"),
        ({**BASE, "default_role": "superuser"}, "default_role"),
        ({**BASE, "timeout": "soon"}, "timeout"),
        ({**BASE, "timeout": "0"}, "timeout"),
        ({**BASE, "start_tls": "perhaps"}, "start_tls"),
        ({**BASE, "url": "ldaps://127.0.0.1", "start_tls": "true"}, "start_tls"),
    ],
)
def test_bad_option_names_the_key(options, key):
    with pytest.raises(ValueError, match=key):
        LdapAuthenticator(options)


def test_without_ldap3_a_clear_message(monkeypatch):
    for name in [m for m in sys.modules if m == "ldap3" or m.startswith("ldap3.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ldap3", None)  # makes "import ldap3" raise ImportError
    with pytest.raises(ValueError, match=r"pip install ispyb-falcon\[ldap\]"):
        LdapAuthenticator(BASE)
