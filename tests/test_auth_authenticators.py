"""Authenticator plug-ins (dummy, password file, loader) and the login rate limit."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from ispyb_falcon.auth import passwords
from ispyb_falcon.auth.authenticators import (
    ALIASES,
    ROLES,
    Authenticator,
    Identity,
    load_authenticator,
)
from ispyb_falcon.auth.dummy import DummyAuthenticator
from ispyb_falcon.auth.passwords import (
    FileAuthenticator,
    hash_password,
    set_password,
    verify_password,
)

FAST = passwords.MIN_ITERATIONS  # the cheapest count the file accepts, to keep tests quick


class SiteAuthenticator(Authenticator):
    """A site plug-in, as a site would write one, loaded by dotted path in the tests."""

    def __init__(self, options):
        super().__init__(options)
        self.realm = self.option("realm")

    def authenticate(self, login, password):
        return Identity(login, ["user"]) if password == self.realm else None


class NotAnAuthenticator:
    pass


# --- Identity and dummy -------------------------------------------------------------------------


def test_identity_stores_roles_as_tuple():
    identity = Identity("alice", ["user", "manager"])
    assert identity.roles == ("user", "manager")
    assert hash(identity) == hash(Identity("alice", ("user", "manager")))


@pytest.mark.parametrize(
    ("login", "roles"),
    [
        ("admin", ("admin",)),
        ("admin2", ("admin",)),
        ("manager-x", ("manager",)),
        ("alice", ("user",)),
        ("boss-admin", ("user",)),
    ],
)
def test_dummy_role_by_login_prefix(login, roles):
    assert DummyAuthenticator({}).authenticate(login, "anything") == Identity(login, roles)


def test_dummy_refuses_empty_password_and_login():
    dummy = DummyAuthenticator({})
    assert dummy.authenticate("alice", "") is None
    assert dummy.authenticate("", "pw") is None


# --- password hashes ----------------------------------------------------------------------------


def test_hash_and_verify():
    encoded = hash_password("s3cret", iterations=FAST)
    scheme, iterations, salt, digest = encoded.split("$")
    assert (scheme, iterations) == ("pbkdf2_sha256", str(FAST))
    assert verify_password("s3cret", encoded)
    assert not verify_password("S3cret", encoded)


def test_default_iterations_and_random_salt():
    first, second = hash_password("pw"), hash_password("pw")
    assert first.split("$")[1] == "310000"
    assert first != second


def test_fixed_salt_is_deterministic():
    assert hash_password("pw", iterations=FAST, salt=b"salt") == hash_password(
        "pw", iterations=FAST, salt=b"salt"
    )


def test_too_few_iterations_refused():
    with pytest.raises(ValueError, match="iterations"):
        hash_password("pw", iterations=1000)
    weak = "pbkdf2_sha256$1000$c2FsdA==$" + "A" * 43 + "="
    assert not verify_password("pw", weak)


@pytest.mark.parametrize(
    "encoded", ["", "plain", "md5$1$a$b", "pbkdf2_sha256$x$a$b", "pbkdf2_sha256$200000$!!$!!"]
)
def test_malformed_hash_does_not_verify(encoded):
    assert not verify_password("pw", encoded)


# --- password file ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def fast_hashes(monkeypatch):
    """set_password uses the default count; make it the minimum so the suite stays fast."""
    original = passwords.hash_password

    def fast(password, *, iterations=FAST, salt=None):
        return original(password, iterations=iterations, salt=salt)

    monkeypatch.setattr(passwords, "hash_password", fast)
    monkeypatch.setattr(passwords, "DEFAULT_ITERATIONS", FAST)


@pytest.fixture
def pwfile(tmp_path):
    path = tmp_path / "passwords"
    set_password(path, "alice", "alice-pw", ["user"])
    set_password(path, "bob", "bob-pw", ["admin", "manager"])
    return path


def test_set_password_creates_file_with_mode_0600(tmp_path):
    path = tmp_path / "passwords"
    set_password(path, "alice", "pw", ["user"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    [line] = path.read_text().splitlines()
    assert line.startswith("alice:user:pbkdf2_sha256$")
    assert [p.name for p in tmp_path.iterdir()] == ["passwords"]  # no temporary file left


def test_file_authenticator_accepts_right_password(pwfile):
    auth = FileAuthenticator({"path": str(pwfile)})
    assert auth.authenticate("alice", "alice-pw") == Identity("alice", ("user",))
    assert auth.authenticate("bob", "bob-pw") == Identity("bob", ("admin", "manager"))


def test_file_authenticator_refuses_wrong_password_and_unknown_login(pwfile):
    auth = FileAuthenticator({"path": str(pwfile)})
    assert auth.authenticate("alice", "bob-pw") is None
    assert auth.authenticate("alice", "") is None
    assert auth.authenticate("mallory", "alice-pw") is None
    assert auth.authenticate("", "alice-pw") is None


def test_unknown_login_costs_a_hash(pwfile, monkeypatch):
    """No timing oracle: an unknown login runs PBKDF2 just like a known one."""
    auth = FileAuthenticator({"path": str(pwfile)})
    calls = []
    real = passwords.hashlib.pbkdf2_hmac
    monkeypatch.setattr(
        passwords.hashlib,
        "pbkdf2_hmac",
        lambda *args: calls.append(args[3]) or real(*args),
    )
    auth.authenticate("mallory", "pw")
    auth.authenticate("alice", "wrong")
    assert calls == [FAST, FAST]


def test_set_password_replaces_and_keeps_other_lines(pwfile):
    text = pwfile.read_text()
    pwfile.write_text("# site accounts\n\n" + text)
    set_password(pwfile, "alice", "new-pw", ["user", "processing"])
    lines = pwfile.read_text().splitlines()
    assert lines[:2] == ["# site accounts", ""]
    assert sum(line.startswith("alice:") for line in lines) == 1
    assert sum(line.startswith("bob:") for line in lines) == 1
    auth = FileAuthenticator({"path": str(pwfile)})
    assert auth.authenticate("alice", "alice-pw") is None
    assert auth.authenticate("alice", "new-pw") == Identity("alice", ("user", "processing"))
    assert auth.authenticate("bob", "bob-pw") is not None


def test_comments_blank_and_bad_lines_are_ignored(tmp_path, caplog):
    path = tmp_path / "passwords"
    good = hash_password("pw", iterations=FAST)
    path.write_text(
        "# comment\n"
        f"#carol:admin:{good}\n"
        "\n"
        "   \n"
        "broken line\n"
        f"dave:superuser:{good}\n"  # unknown role: refused, not silently granted
        f"erin:user:md5$abc\n"
        f"alice:user:{good}\n"
    )
    auth = FileAuthenticator({"path": str(path)})
    assert auth.authenticate("alice", "pw") == Identity("alice", ("user",))
    assert auth.authenticate("carol", "pw") is None
    assert auth.authenticate("dave", "pw") is None
    assert auth.authenticate("erin", "pw") is None
    assert "line 5" in caplog.text and good not in caplog.text


def test_reloads_when_file_changes(pwfile):
    auth = FileAuthenticator({"path": str(pwfile)})
    assert auth.authenticate("carol", "carol-pw") is None
    set_password(pwfile, "carol", "carol-pw", ["manager"])
    assert auth.authenticate("carol", "carol-pw") == Identity("carol", ("manager",))
    set_password(pwfile, "carol", "changed", ["manager"])
    assert auth.authenticate("carol", "carol-pw") is None


def test_reloads_on_in_place_edit_with_new_mtime(pwfile):
    auth = FileAuthenticator({"path": str(pwfile)})
    lines = [line for line in pwfile.read_text().splitlines() if not line.startswith("alice:")]
    st = pwfile.stat()
    pwfile.write_text("\n".join(lines) + "\n")
    os.utime(pwfile, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert auth.authenticate("alice", "alice-pw") is None


def test_removed_file_fails_closed(pwfile):
    auth = FileAuthenticator({"path": str(pwfile)})
    pwfile.unlink()
    assert auth.authenticate("alice", "alice-pw") is None


def test_missing_file_at_start_names_the_option(tmp_path):
    with pytest.raises(ValueError, match="path"):
        FileAuthenticator({"path": str(tmp_path / "nope")})
    with pytest.raises(ValueError, match="path"):
        FileAuthenticator({})


@pytest.mark.parametrize(
    ("login", "roles", "message"),
    [
        ("a:b", ["user"], "':'"),
        ("", ["user"], "login"),
        ("two words", ["user"], "spaces"),
        ("#alice", ["user"], "'#'"),
        ("alice", ["root"], "unknown role"),
        ("alice", [], "role"),
        ("alice", "user", "not a string"),
    ],
)
def test_set_password_validates(tmp_path, login, roles, message):
    with pytest.raises(ValueError, match=message):
        set_password(tmp_path / "passwords", login, "pw", roles)
    assert not (tmp_path / "passwords").exists()


def test_concurrent_logins_during_reload(pwfile):
    auth = FileAuthenticator({"path": str(pwfile)})
    errors = []

    def login():
        try:
            for _ in range(3):
                assert auth.authenticate("alice", "alice-pw") is not None
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=login) for _ in range(4)]
    for t in threads:
        t.start()
    set_password(pwfile, "carol", "x", ["user"])
    for t in threads:
        t.join()
    assert errors == []


# --- loader -------------------------------------------------------------------------------------


def test_aliases_and_roles():
    assert set(ALIASES) == {"dummy", "file", "ldap", "oidc"}
    assert ROLES == ("user", "manager", "admin", "acquisition", "processing")


def test_load_by_alias(pwfile):
    dummy = load_authenticator("dev", "dummy", {})
    assert isinstance(dummy, DummyAuthenticator) and dummy.name == "dev"
    file_auth = load_authenticator("local", "file", {"path": str(pwfile)})
    assert isinstance(file_auth, FileAuthenticator) and file_auth.name == "local"


@pytest.mark.parametrize("spec", [f"{__name__}.SiteAuthenticator", f"{__name__}:SiteAuthenticator"])
def test_load_by_dotted_path(spec):
    auth = load_authenticator("site", spec, {"realm": "r"})
    assert isinstance(auth, SiteAuthenticator)
    assert auth.name == "site"
    assert auth.authenticate("x", "r") == Identity("x", ("user",))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_package.module.Class", "no_such_package.module"),
        ("ispyb_falcon.auth.dummy.NoSuchClass", "NoSuchClass"),
        (f"{__name__}.NotAnAuthenticator", "not a subclass"),
        ("ispyb_falcon.auth.authenticators.Authenticator", "does not implement"),
        ("nodots", "alias"),
    ],
)
def test_load_bad_spec_names_it(spec, message):
    with pytest.raises(ValueError, match=message) as info:
        load_authenticator("broken", spec, {})
    assert "'broken'" in str(info.value)


def test_load_reports_bad_option_with_the_name():
    with pytest.raises(ValueError, match=r"'site'.*'realm'"):
        load_authenticator("site", f"{__name__}.SiteAuthenticator", {})


def test_option_helpers():
    auth = SiteAuthenticator({"realm": "r", "flag": "yes", "n": "2.5", "bad": "maybe"})
    assert auth.bool_option("flag") is True
    assert auth.bool_option("missing", default=True) is True
    assert auth.float_option("n", 1.0) == 2.5
    with pytest.raises(ValueError, match="'bad'"):
        auth.bool_option("bad")
    with pytest.raises(ValueError, match="'bad'"):
        auth.float_option("bad", 1.0)
