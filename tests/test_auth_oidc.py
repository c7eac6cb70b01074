"""Single sign-on: bearer tokens of the site's OpenID Connect provider, through HTTP.

The test plays the provider: it makes an RSA and an EC key, publishes their
public halves as a JWK set (a file, or a URL served by a small HTTP server in
this process that counts how often it is read) and signs tokens shaped like
Keycloak's access tokens. The server, configured with the `oidc` authenticator
beside `dummy`, must take a good token as the same person as a token of its own
/auth/login, and refuse every bad one with a 401 (an unreadable key set: 503),
never a 500. Time moves on by a stand-in clock, never by sleeping.
"""

from __future__ import annotations

import base64
import configparser
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import falcon.testing
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ispyb_falcon.app import create_app, make_authenticators
from ispyb_falcon.auth import oidc
from ispyb_falcon.auth.tokens import LEEWAY_SECONDS
from ispyb_falcon.cli import main
from ispyb_falcon.config import ConfigError, load_settings

from .conftest import PREFIX
from .servers import free_port

ISSUER = "https://keycloak.example.org/realms/ispyb"  # as in the README and the example file
AUDIENCE = "ispyb-api"
ROOT = Path(__file__).resolve().parents[1]
WHOAMI = f"{PREFIX}/auth/whoami"
LISTS = {
    "/proposals": "proposalId",
    "/sessions": "sessionId",
    "/datacollections": "dataCollectionId",
    "/samples": "blSampleId",
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(obj: dict) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


@pytest.fixture(scope="module")
def keys() -> dict:
    return {
        "rsa-1": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec-1": ec.generate_private_key(ec.SECP256R1()),
        "rsa-other": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }


def jwk(private_key, kid: str, alg: str, **extra) -> dict:
    algorithm = jwt.algorithms.RSAAlgorithm if alg.startswith("RS") else jwt.algorithms.ECAlgorithm
    found = algorithm.to_jwk(private_key.public_key(), as_dict=True)
    return {**found, "kid": kid, "alg": alg, "use": "sig", **extra}


@pytest.fixture(scope="module")
def jwks(keys) -> dict:
    """As Keycloak publishes it: signing keys, and an encryption key the server must skip."""
    return {
        "keys": [
            jwk(keys["rsa-1"], "rsa-1", "RS256"),
            jwk(keys["ec-1"], "ec-1", "ES256"),
            jwk(keys["rsa-other"], "enc-1", "RSA-OAEP", use="enc"),
            # a symmetric key has no place in a public set; it must never verify anything
            {"kty": "oct", "kid": "hmac", "alg": "HS256", "k": b64url(b"s" * 32)},
        ]
    }


def claims(**overrides) -> dict:
    """A Keycloak access token's claims for pi_anna; an override of None drops the claim."""
    now = int(time.time())
    found = {
        "exp": now + 300,
        "iat": now,
        "jti": "a1b2c3",
        "iss": ISSUER,
        "aud": [AUDIENCE, "account"],
        "sub": "0b6d5c1e-9a0f-4bb5-8f57-0c1f3c8c1a11",
        "typ": "Bearer",
        "azp": "ispyb-ui",
        "preferred_username": "pi_anna",
        "realm_access": {"roles": ["offline_access", "uma_authorization"]},
    }
    found.update(overrides)
    return {k: v for k, v in found.items() if v is not None}


@pytest.fixture(scope="module")
def sign(keys):
    def make(payload: dict | None = None, kid: str = "rsa-1", key: str | None = None) -> str:
        alg = "ES256" if kid.startswith("ec") else "RS256"
        return jwt.encode(
            claims() if payload is None else payload,
            keys[key or kid],
            algorithm=alg,
            headers={"kid": kid},
        )

    return make


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def options(**extra) -> dict[str, str]:
    return {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "role_map": "admin=ispyb-admin; manager=ispyb-manager",
        "authorized_parties": "ispyb-ui, ispyb-cli",
        **extra,
    }


def oidc_settings(settings, **extra):
    return settings.replace(
        auth_authenticators=("dummy", "oidc"), authenticator_options={"oidc": options(**extra)}
    )


@pytest.fixture(scope="module")
def jwks_file(tmp_path_factory, jwks):
    path = tmp_path_factory.mktemp("oidc") / "jwks.json"
    path.write_text(json.dumps(jwks))
    return path


@pytest.fixture(scope="module")
def sso(settings, jwks_file) -> falcon.testing.TestClient:
    """A server that takes the provider's tokens (key set from a file) and its own."""
    return falcon.testing.TestClient(create_app(oidc_settings(settings, jwks_file=str(jwks_file))))


def own_token(client, login: str) -> str:
    r = client.simulate_post(f"{PREFIX}/auth/login", json={"login": login, "password": "demo"})
    assert r.status_code == 200, r.text
    return r.json["token"]


def refused(client, token: str, reason: str) -> None:
    """401, JSON, `WWW-Authenticate: Bearer`, with the reason, on whoami and on a data route."""
    for path in (WHOAMI, f"{PREFIX}/proposals"):
        r = client.simulate_get(path, headers=bearer(token))
        assert r.status_code == 401, (path, r.status_code, r.text)
        assert r.headers["WWW-Authenticate"].startswith("Bearer"), r.headers
        assert reason in r.json["description"], r.json


def listed(client, token: str) -> dict[str, list[int]]:
    found = {}
    for path, key in LISTS.items():
        r = client.simulate_get(PREFIX + path, params={"limit": 1000}, headers=bearer(token))
        assert r.status_code == 200, (path, r.text)
        found[path] = sorted(row[key] for row in r.json["results"])
    return found


# --- a good token ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kid", ["rsa-1", "ec-1"])
def test_a_provider_token_sees_what_the_api_token_of_the_same_login_sees(sso, sign, kid):
    token = sign(kid=kid)
    r = sso.simulate_get(WHOAMI, headers=bearer(token))
    assert r.status_code == 200, r.text
    own = sso.simulate_get(WHOAMI, headers=bearer(own_token(sso, "pi_anna"))).json
    assert r.json["login"] == "pi_anna" and r.json["roles"] == ["user"]
    assert r.json["personId"] == own["personId"] is not None
    assert r.json["expiresAt"] == time.strftime(
        "%Y-%m-%dT%H:%M:%SZ",
        time.gmtime(jwt.decode(token, options={"verify_signature": False})["exp"]),
    )
    mine = listed(sso, token)
    assert mine == listed(sso, own_token(sso, "pi_anna"))
    assert all(mine.values()), mine  # pi_anna sees rows of every kind
    assert mine["/proposals"] != listed(sso, own_token(sso, "admin1"))["/proposals"]


def test_a_token_just_past_its_expiry_is_taken_within_the_leeway(sso, sign):
    now = int(time.time())
    token = sign(claims(exp=now - LEEWAY_SECONDS // 2, iat=now - 300))
    assert sso.simulate_get(WHOAMI, headers=bearer(token)).status_code == 200


def test_the_api_own_tokens_still_work_beside_the_provider(sso):
    r = sso.simulate_get(WHOAMI, headers=bearer(own_token(sso, "admin1")))
    assert r.status_code == 200 and r.json["roles"] == ["admin"], r.text


def test_the_provider_is_no_login_plugin(sso):
    """Its users never give the API a password: /auth/login does not offer it."""
    r = sso.simulate_post(
        f"{PREFIX}/auth/login", json={"login": "pi_anna", "password": "demo", "plugin": "oidc"}
    )
    assert r.status_code == 422 and "unknown plugin; known: dummy" in r.text, r.text


# --- roles ------------------------------------------------------------------------------------------


def test_a_mapped_realm_role_makes_an_admin(sso, sign):
    token = sign(claims(realm_access={"roles": ["offline_access", "ispyb-admin"]}))
    r = sso.simulate_get(WHOAMI, headers=bearer(token))
    assert r.status_code == 200 and r.json["roles"] == ["admin"], r.text
    assert listed(sso, token) == listed(sso, own_token(sso, "admin1"))


def test_a_manager_role_is_mapped_too(sso, sign):
    token = sign(claims(realm_access={"roles": ["ispyb-manager"]}))
    assert sso.simulate_get(WHOAMI, headers=bearer(token)).json["roles"] == ["manager"]


@pytest.mark.parametrize(
    "extra",
    [
        {"roles": ["admin"]},  # the claim the API's own tokens carry
        {"resource_access": {"ispyb-api": {"roles": ["ispyb-admin"]}}},  # a client role
        {"realm_access": {"roles": ["admin", "ISPYB-ADMIN"]}},
        {"realm_access": None},
    ],
    ids=["own roles claim", "client role", "unmapped names", "no realm roles"],
)
def test_nothing_but_the_mapped_role_makes_an_admin(sso, sign, extra):
    token = sign(claims(**extra))
    r = sso.simulate_get(WHOAMI, headers=bearer(token))
    assert r.status_code == 200 and r.json["roles"] == ["user"], r.text


def test_without_a_default_role_only_mapped_users_are_taken(settings, jwks_file, sign):
    app = create_app(oidc_settings(settings, jwks_file=str(jwks_file), default_role=""))
    client = falcon.testing.TestClient(app)
    refused(client, sign(), "no role for this user")
    admin = sign(claims(realm_access={"roles": ["ispyb-admin"]}))
    assert client.simulate_get(WHOAMI, headers=bearer(admin)).json["roles"] == ["admin"]


def test_roles_that_are_not_a_list_of_strings_are_refused(sso, sign):
    refused(sso, sign(claims(realm_access={"roles": "ispyb-admin"})), "realm_access.roles")


# --- logins -----------------------------------------------------------------------------------------


def test_a_login_without_a_person_row_sees_no_proposal(sso, sign):
    """As with the API's own tokens: signed in, no Person, only what needs no membership."""
    token = sign(claims(preferred_username="nobody-in-ispyb"))
    r = sso.simulate_get(WHOAMI, headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json["login"] == "nobody-in-ispyb" and r.json["personId"] is None
    assert listed(sso, token) == {path: [] for path in LISTS}


def test_the_login_is_the_person_login_exactly(sso, sign):
    r = sso.simulate_get(WHOAMI, headers=bearer(sign(claims(preferred_username="PI_ANNA"))))
    assert r.status_code == 200 and r.json["personId"] is None, r.text


@pytest.mark.parametrize(
    "login", [None, "", 42, ["pi_anna"]], ids=["absent", "empty", "number", "list"]
)
def test_a_token_without_a_login_is_refused(sso, sign, login):
    refused(sso, sign(claims(preferred_username=login)), "missing claim preferred_username")


def test_a_login_that_is_no_text_is_refused(sso, sign):
    """JSON may escape half a surrogate pair; no answer can carry it (it was a 500)."""
    refused(sso, sign(claims(preferred_username="pi_\ud800")), "bad preferred_username claim")


# --- refused tokens ---------------------------------------------------------------------------------


def test_an_expired_token_is_refused(sso, sign):
    now = int(time.time())
    refused(sso, sign(claims(exp=now - LEEWAY_SECONDS - 60, iat=now - 3600)), "token expired")


def test_a_token_of_another_issuer_is_refused(sso, sign):
    for issuer in ("https://keycloak.example.org/realms/other", ISSUER + "/", "ispyb-falcon"):
        refused(sso, sign(claims(iss=issuer)), "The token was refused")


def test_a_token_for_another_audience_is_refused(sso, sign):
    refused(sso, sign(claims(aud="account")), "wrong audience")
    refused(sso, sign(claims(aud=None)), "missing claim aud")


def test_a_token_issued_to_a_client_not_accepted_is_refused(sso, sign):
    refused(sso, sign(claims(azp="some-other-app")), "azp")
    refused(sso, sign(claims(azp=None)), "azp")
    refused(sso, sign(claims(azp=["ispyb-ui"])), "azp")
    ok = sso.simulate_get(WHOAMI, headers=bearer(sign(claims(azp="ispyb-cli"))))
    assert ok.status_code == 200, ok.text


def test_a_token_signed_by_another_key_is_refused(sso, sign):
    refused(sso, sign(kid="rsa-1", key="rsa-other"), "bad signature")
    token = sign()
    header, payload, signature = token.split(".")
    forged = b64url_json(claims(realm_access={"roles": ["ispyb-admin"]}))
    refused(sso, f"{header}.{forged}.{signature}", "bad signature")


def test_a_token_naming_an_unknown_key_is_refused(sso, sign):
    refused(sso, sign(kid="rsa-other"), "unknown signing key")
    refused(sso, sign(kid="enc-1", key="rsa-other"), "unknown signing key")  # not a signing key


def test_alg_none_is_refused(sso):
    token = b64url_json({"alg": "none", "typ": "JWT", "kid": "rsa-1"}) + "."
    token += b64url_json(claims()) + "."
    refused(sso, token, "algorithm not allowed")


def test_hs256_signed_with_the_public_key_is_refused(sso, keys):
    """The classic swap: the public key (which anyone may read) used as an HMAC secret."""
    pem = (
        keys["rsa-1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for kid in ("rsa-1", "hmac"):
        signing_input = b64url_json({"alg": "HS256", "typ": "JWT", "kid": kid}) + "."
        signing_input += b64url_json(claims())
        for secret in (pem, b"s" * 32):  # the public key; the oct key of the set
            mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
            refused(sso, signing_input + "." + b64url(mac), "algorithm not allowed")


def test_a_token_with_the_algorithm_of_another_key_is_refused(sso, keys):
    """ES256 in the header, the RSA key's kid: the key's own algorithm decides."""
    token = jwt.encode(claims(), keys["ec-1"], algorithm="ES256", headers={"kid": "rsa-1"})
    refused(sso, token, "algorithm not allowed")


@pytest.mark.parametrize(
    "token",
    ["x", "a.b.c", "eyJhbGciOiJSUzI1NiJ9..", "e" * 9000],
    ids=["one part", "not base64", "empty parts", "too long"],
)
def test_malformed_tokens_are_refused(sso, token):
    r = sso.simulate_get(WHOAMI, headers=bearer(token))
    assert r.status_code == 401, r.text


# --- the key set from a URL -------------------------------------------------------------------------


class Provider:
    """The provider's certs endpoint: serves `jwks`, counting reads; `answer` can break it."""

    def __init__(self, jwks: dict) -> None:
        self.jwks = jwks
        self.reads = 0
        self.answer = "keys"  # or "error" (HTTP 500), "garbage" (not JSON)
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server name
                provider.reads += 1
                status, body = {
                    "keys": (200, json.dumps(provider.jwks).encode()),
                    "error": (500, b"Internal Server Error"),
                    "garbage": (200, b"<html>maintenance</html>"),
                }[provider.answer]
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/realms/ispyb/protocol/openid-connect/certs"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Clock:
    """Stands in for time.monotonic in the key set: moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock(monkeypatch) -> Clock:
    found = Clock()
    monkeypatch.setattr(oidc.KeySet, "clock", staticmethod(found))
    return found


@pytest.fixture()
def provider(jwks) -> Iterator[Provider]:
    found = Provider(json.loads(json.dumps(jwks)))
    yield found
    found.close()


@pytest.fixture()
def sso_url(settings, provider, clock) -> falcon.testing.TestClient:
    """A server reading the key set from the provider's URL (no read before the first token)."""
    app = create_app(
        oidc_settings(settings, jwks_url=provider.url, refetch_seconds="60", cache_seconds="3600")
    )
    return falcon.testing.TestClient(app)


def test_the_key_set_is_read_once_and_kept(sso_url, provider, sign, clock):
    assert provider.reads == 0  # the server started without asking the provider
    for kid in ("rsa-1", "ec-1", "rsa-1"):
        r = sso_url.simulate_get(WHOAMI, headers=bearer(sign(claims(jti=kid + "x"), kid=kid)))
        assert r.status_code == 200, r.text
    assert provider.reads == 1
    clock.now += 600  # within cache_seconds
    assert sso_url.simulate_get(WHOAMI, headers=bearer(sign(claims(jti="x")))).status_code == 200
    assert provider.reads == 1


def test_a_flood_of_unknown_kids_reads_the_key_set_at_most_once_per_interval(
    sso_url, provider, sign, clock
):
    assert sso_url.simulate_get(WHOAMI, headers=bearer(sign())).status_code == 200
    for n in range(20):
        refused(sso_url, sign(kid=f"bogus-{n}", key="rsa-other"), "unknown signing key")
    assert provider.reads == 1  # read for the first token; no kid made it read again yet
    clock.now += 61
    for n in range(20):
        refused(sso_url, sign(kid=f"bogus-again-{n}", key="rsa-other"), "unknown signing key")
    assert provider.reads == 2  # one more read for the whole second flood


def test_a_rotated_key_is_found_by_reading_the_set_again(sso_url, provider, keys, sign, clock):
    assert sso_url.simulate_get(WHOAMI, headers=bearer(sign())).status_code == 200
    provider.jwks["keys"].append(jwk(keys["rsa-other"], "rsa-2", "RS256"))
    clock.now += 61
    r = sso_url.simulate_get(WHOAMI, headers=bearer(sign(kid="rsa-2", key="rsa-other")))
    assert r.status_code == 200, r.text
    assert provider.reads == 2


def test_the_key_set_is_read_again_when_its_time_is_up(sso_url, provider, sign, clock):
    assert sso_url.simulate_get(WHOAMI, headers=bearer(sign())).status_code == 200
    clock.now += 3601
    assert (
        sso_url.simulate_get(WHOAMI, headers=bearer(sign(claims(jti="later")))).status_code == 200
    )
    assert provider.reads == 2


@pytest.mark.parametrize("answer", ["error", "garbage"])
def test_a_provider_that_cannot_give_its_keys_is_a_503_then_recovers(
    sso_url, provider, sign, clock, answer
):
    provider.answer = answer
    for _ in range(3):
        r = sso_url.simulate_get(WHOAMI, headers=bearer(sign()))
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] and "signing keys" in r.json["description"], r.json
        assert provider.url not in r.text  # the reason goes to the log, not to the client
    assert provider.reads == 1  # no read per request while it is down
    r = sso_url.simulate_get(WHOAMI, headers=bearer(own_token(sso_url, "pi_anna")))
    assert r.status_code == 200, r.text  # the API's own tokens do not need the provider
    provider.answer = "keys"
    clock.now += 61
    assert sso_url.simulate_get(WHOAMI, headers=bearer(sign())).status_code == 200


def test_keys_read_before_an_outage_stay_in_use(sso_url, provider, sign, clock):
    assert sso_url.simulate_get(WHOAMI, headers=bearer(sign())).status_code == 200
    provider.answer = "error"
    clock.now += 3601  # the set is due to be read again, and cannot be
    r = sso_url.simulate_get(WHOAMI, headers=bearer(sign(claims(jti="during"))))
    assert r.status_code == 200, r.text
    r = sso_url.simulate_get(WHOAMI, headers=bearer(sign(kid="rsa-new", key="rsa-other")))
    assert r.status_code == 503, r.text  # a key it may lack: cannot tell
    assert provider.reads == 2


def test_an_unreachable_provider_is_a_503(settings, sign, clock):
    url = f"http://127.0.0.1:{free_port()}/certs"  # nothing listens there
    client = falcon.testing.TestClient(
        create_app(oidc_settings(settings, jwks_url=url, timeout="2"))
    )
    r = client.simulate_get(WHOAMI, headers=bearer(sign()))
    assert r.status_code == 503 and r.headers["Retry-After"], r.text


# --- configuration ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"issuer": ""}, "option 'issuer' is required"),
        ({"audience": ""}, "option 'audience' is required"),
        ({}, "exactly one of the options 'jwks_file' and 'jwks_url'"),
        ({"jwks_file": "FILE", "jwks_url": "https://x.example.org/certs"}, "exactly one"),
        ({"jwks_file": "/nonexistent/jwks.json"}, "No such file"),
        ({"jwks_file": "GARBAGE"}, "option 'jwks_file'"),
        ({"jwks_url": "ftp://x.example.org/certs"}, "option 'jwks_url'"),
        ({"jwks_url": "http://keycloak.example.org/certs"}, "http:// only on this host"),
        ({"jwks_file": "FILE", "algorithms": "RS256, HS256"}, "HS256 not allowed"),
        ({"jwks_file": "FILE", "algorithms": "none"}, "none not allowed"),
        ({"jwks_file": "FILE", "role_map": "root=ispyb-admin"}, "unknown role 'root'"),
        ({"jwks_file": "FILE", "role_map": "admin"}, "option 'role_map'"),
        ({"jwks_file": "FILE", "default_role": "superuser"}, "default_role"),
        ({"jwks_file": "FILE", "refetch_seconds": "soon"}, "refetch_seconds"),
        ({"jwks_file": "FILE", "issuer": "ispyb-falcon"}, "[tokens] issuer"),
    ],
)
def test_a_bad_configuration_is_one_line_at_start_up(
    settings, jwks_file, tmp_path, capsys, changes, named
):
    err = start(settings, jwks_file, tmp_path, capsys, changes)
    assert err.count("\n") == 1 and named in err and "Traceback" not in err, err
    assert err.startswith("ispyb-falcon: [auth] authenticators:"), err


def test_a_good_configuration_gets_as_far_as_the_database(settings, jwks_file, tmp_path, capsys):
    err = start(settings, jwks_file, tmp_path, capsys, {"jwks_file": "FILE"})
    assert err.startswith("ispyb-falcon: cannot read the database"), err


def start(settings, jwks_file, tmp_path, capsys, changes: dict) -> str:
    """`ispyb-falcon serve` with these [authenticator:oidc] options: what it says on stderr."""
    garbage = tmp_path / "garbage.json"
    garbage.write_text('{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}')
    values = {**options(), **changes}
    values = {
        k: {"FILE": str(jwks_file), "GARBAGE": str(garbage)}.get(v, v) for k, v in values.items()
    }
    config = tmp_path / "ispyb-falcon.ini"
    config.write_text(
        "[server]\ndebug = true\n"
        # a database that cannot be reached: a configuration let through fails, never serves
        "[database]\nurl = mysql+pymysql://nobody@127.0.0.1:1/none\n"
        f"[tokens]\nsecret = {settings[('tokens', 'secret')]}\n"
        "[auth]\nauthenticators = dummy, oidc\n"
        "[authenticator:oidc]\n" + "".join(f"{k} = {v}\n" for k, v in values.items())
    )
    assert main(["--config", str(config), "serve", "--port", str(free_port())]) == 2
    return capsys.readouterr().err


def test_the_documented_configurations_are_accepted():
    """The README's [authenticator:oidc] block and the example file's, as printed."""
    readme = (ROOT / "README.md").read_text()
    blocks = [
        b for b in re.findall(r"```ini\n(.*?)```", readme, re.S) if "[authenticator:oidc]" in b
    ]
    assert len(blocks) == 1
    for text in (blocks[0], (ROOT / "conf" / "ispyb-falcon.example.ini").read_text()):
        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str
        parser.read_string(text)
        found = oidc.OidcAuthenticator(parser["authenticator:oidc"])
        assert (found.issuer, found.audience) == (ISSUER, AUDIENCE)
        assert found.keys.where == ISSUER + "/protocol/openid-connect/certs"
        assert found.role_map["ispyb-admin"] == {"admin"}


def test_an_unknown_option_is_refused():
    with pytest.raises(ValueError, match="unknown option 'audiance'"):
        oidc.OidcAuthenticator(
            {**options(), "jwks_url": "https://x.example.org/c", "audiance": "x"}
        )


def test_options_come_from_the_environment_too(jwks_file):
    settings = load_settings(
        None,
        environ={
            "ISPYB_FALCON_AUTH_AUTHENTICATORS": "oidc",
            "ISPYB_FALCON_AUTHENTICATOR_OIDC_ISSUER": ISSUER,
            "ISPYB_FALCON_AUTHENTICATOR_OIDC_AUDIENCE": AUDIENCE,
            "ISPYB_FALCON_AUTHENTICATOR_OIDC_JWKS_FILE": str(jwks_file),
            "ISPYB_FALCON_AUTHENTICATOR_OIDC_LOGIN_CLAIM": "email",
        },
    )
    (found,) = make_authenticators(settings)
    assert (found.name, found.issuer, found.login_claim) == ("oidc", ISSUER, "email")
    with pytest.raises(ConfigError, match="option 'audience' is required"):
        make_authenticators(settings.replace(authenticator_options={"oidc": {"issuer": ISSUER}}))
