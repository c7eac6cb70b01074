"""Forged, stale and misdirected tokens, login guessing and unsafe production settings,
through HTTP (API.md sections 2 and 3).

Every refused token must be a 401 with `WWW-Authenticate: Bearer` on every
route that needs a token, whatever was wrong with it; a token made by the
server (or by `ispyb-falcon token`) is accepted as a control.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import falcon.testing
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ispyb_falcon.app import StartupError, create_app, make_tokens
from ispyb_falcon.auth.passwords import set_password
from ispyb_falcon.cli import main
from ispyb_falcon.config import EXAMPLE_SECRET

from .conftest import PREFIX, SECRET

WHOAMI = f"{PREFIX}/auth/whoami"
LOGIN = f"{PREFIX}/auth/login"
PASSWORD = "correct horse battery staple"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(obj: dict) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def claims(**overrides) -> dict:
    """What the server's own tokens hold; an override of None drops the claim."""
    now = int(time.time())
    found = {
        "sub": "pi_anna",
        "roles": ["user"],
        "iat": now,
        "exp": now + 600,
        "iss": "ispyb-falcon",
        "aud": "ispyb",
        "jti": "forged",
    }
    found.update(overrides)
    return {k: v for k, v in found.items() if v is not None}


def hs256(payload: dict, secret: str = SECRET, alg: str = "HS256") -> str:
    return jwt.encode(payload, secret, algorithm=alg)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def assert_refused(client: falcon.testing.TestClient, token: str) -> None:
    """401 + WWW-Authenticate: Bearer on whoami and on data routes, as JSON."""
    for path in (WHOAMI, f"{PREFIX}/proposals", f"{PREFIX}/sessions/mx1001-1"):
        r = client.simulate_get(path, headers=bearer(token))
        assert r.status_code == 401, (path, r.status_code, r.text)
        assert r.headers["WWW-Authenticate"].startswith("Bearer"), path
        assert r.json["title"] == "401 Unauthorized"
    r = client.simulate_patch(
        f"{PREFIX}/proposals/mx1001", headers=bearer(token), json={"title": "forged"}
    )
    assert r.status_code == 401


# --- tokens -------------------------------------------------------------------------------------


def test_a_token_signed_by_the_server_is_accepted(client):
    """The control for every refusal below: the same claims, properly signed, work."""
    r = client.simulate_get(WHOAMI, headers=bearer(hs256(claims())))
    assert r.status_code == 200, r.text
    assert r.json["login"] == "pi_anna" and r.json["roles"] == ["user"]


def test_alg_none_is_refused(client):
    header = b64url_json({"alg": "none", "typ": "JWT"})
    payload = b64url_json(claims(roles=["admin"]))
    assert_refused(client, f"{header}.{payload}.")
    assert_refused(client, f"{header}.{payload}.c2lnbmF0dXJl")
    capital = b64url_json({"alg": "None", "typ": "JWT"})
    assert_refused(client, f"{capital}.{payload}.")


def test_hs256_token_signed_with_another_secret_is_refused(client):
    assert_refused(client, hs256(claims(), "another-secret-that-is-also-long-enough-32b"))


def test_rs256_token_is_refused_by_an_hs256_server(client, rsa_key):
    pem = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert_refused(client, jwt.encode(claims(), pem, algorithm="RS256"))


@pytest.mark.filterwarnings("ignore:The HMAC key is")  # the forger's problem, not ours
def test_another_hmac_algorithm_with_the_right_secret_is_refused(client):
    assert_refused(client, hs256(claims(), alg="HS512"))
    assert_refused(client, hs256(claims(), alg="HS384"))


def test_hs256_token_signed_with_the_public_key_of_an_rs256_server_is_refused(
    settings, rsa_key, tmp_path
):
    """The classic swap: the verifier's public key used as an HMAC secret."""
    private = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "key.pem").write_bytes(private)
    (tmp_path / "pub.pem").write_bytes(public)
    rs_settings = settings.replace(
        tokens_algorithm="RS256",
        tokens_secret="",
        tokens_private_key_file=str(tmp_path / "key.pem"),
        tokens_public_key_file=str(tmp_path / "pub.pem"),
    )
    client = falcon.testing.TestClient(create_app(rs_settings))
    good = jwt.encode(claims(), private, algorithm="RS256")
    assert client.simulate_get(WHOAMI, headers=bearer(good)).status_code == 200
    signing_input = f"{b64url_json({'alg': 'HS256', 'typ': 'JWT'})}.{b64url_json(claims())}"
    mac = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    assert_refused(client, f"{signing_input}.{b64url(mac)}")
    # ... and the HS256 tokens of the other server mean nothing here.
    assert_refused(client, hs256(claims()))


def test_a_bad_signature_is_refused(client):
    header, payload, signature = hs256(claims()).split(".")
    raw = bytearray(unb64url(signature))
    raw[0] ^= 0x01
    assert_refused(client, f"{header}.{payload}.{b64url(bytes(raw))}")
    assert_refused(client, f"{header}.{payload}.")
    assert_refused(client, f"{header}.{payload}")


@pytest.mark.parametrize("claim", ("exp", "iat", "sub", "iss", "aud"))
def test_a_token_without_a_required_claim_is_refused(client, claim):
    assert_refused(client, hs256(claims(**{claim: None})))


def test_an_expired_token_is_refused(client):
    now = int(time.time())
    assert_refused(client, hs256(claims(iat=now - 7200, exp=now - 3600)))


def test_a_token_from_another_issuer_is_refused(client):
    assert_refused(client, hs256(claims(iss="someone-else")))


def test_a_token_for_another_audience_is_refused(client):
    assert_refused(client, hs256(claims(aud="another-service")))
    assert_refused(client, hs256(claims(aud=["ispyb", "another-service"])))


def test_edited_roles_with_the_old_signature_are_refused(client, auth):
    token = auth("pi_anna")["Authorization"].split(" ", 1)[1]
    assert client.simulate_get(WHOAMI, headers=bearer(token)).status_code == 200
    header, payload, signature = token.split(".")
    data = json.loads(unb64url(payload))
    assert data["roles"] == ["user"]
    for change in ({"roles": ["admin"]}, {"sub": "admin1"}, {"exp": data["exp"] + 86400}):
        forged = b64url_json({**data, **change})
        assert_refused(client, f"{header}.{forged}.{signature}")


def test_edited_beamline_limit_with_the_old_signature_is_refused(client, settings):
    token, _ = make_tokens(settings).issue("svc-acq", ["acquisition"], beamlines=["i03"])
    header, payload, signature = token.split(".")
    data = json.loads(unb64url(payload))
    data.pop("beamlines")  # an unlimited service would see every beamline
    assert_refused(client, f"{header}.{b64url_json(data)}.{signature}")


@pytest.mark.parametrize(
    "header",
    (
        "Bearer",
        "Bearer ",
        "Basic cGlfYW5uYTpkZW1v",
        "Token abc",
        "Bearer not-a-jwt",
        "Bearer a.b.c",
    ),
)
def test_a_missing_or_malformed_authorization_header_is_401(client, header):
    r = client.simulate_get(WHOAMI, headers={"Authorization": header})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


# --- logins -------------------------------------------------------------------------------------


@pytest.fixture()
def password_file(tmp_path):
    path = tmp_path / "passwords"
    set_password(path, "pi_anna", PASSWORD, ["user"])
    return path


def file_app(settings, path, **changes) -> falcon.testing.TestClient:
    app = create_app(
        settings.replace(
            auth_authenticators=("file",),
            authenticator_options={"file": {"path": str(path)}},
            **changes,
        )
    )
    return falcon.testing.TestClient(app)


def test_failed_logins_are_limited(settings, password_file):
    client = file_app(settings, password_file, auth_login_max_failures=3)
    for _ in range(3):
        r = client.simulate_post(LOGIN, json={"login": "pi_anna", "password": "wrong"})
        assert r.status_code == 401, r.text
    r = client.simulate_post(LOGIN, json={"login": "pi_anna", "password": "wrong"})
    assert r.status_code == 429, r.text
    assert int(r.headers["Retry-After"]) > 0
    assert r.json["title"] == "429 Too Many Requests"
    # While blocked, even the right password is not tried, by JSON or by HTTP Basic.
    r = client.simulate_post(LOGIN, json={"login": "pi_anna", "password": PASSWORD})
    assert r.status_code == 429
    basic = base64.b64encode(f"pi_anna:{PASSWORD}".encode()).decode()
    r = client.simulate_get(LOGIN, headers={"Authorization": f"Basic {basic}"})
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) > 0


def test_the_right_password_logs_in_with_the_file_authenticator(settings, password_file):
    client = file_app(settings, password_file)
    r = client.simulate_post(LOGIN, json={"login": "pi_anna", "password": PASSWORD})
    assert r.status_code == 200, r.text
    assert r.json["login"] == "pi_anna" and r.json["tokenType"] == "Bearer"
    who = client.simulate_get(WHOAMI, headers=bearer(r.json["token"]))
    assert who.status_code == 200 and who.json["roles"] == ["user"]


def test_unknown_login_and_wrong_password_get_the_same_401(settings, password_file):
    client = file_app(settings, password_file)
    wrong = client.simulate_post(LOGIN, json={"login": "pi_anna", "password": "wrong"})
    unknown = client.simulate_post(LOGIN, json={"login": "nobody_zz", "password": "wrong"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json == unknown.json
    assert wrong.headers.get("WWW-Authenticate") == unknown.headers.get("WWW-Authenticate")
    assert "token" not in wrong.json

    def basic(login: str) -> falcon.testing.Result:
        encoded = base64.b64encode(f"{login}:wrong".encode()).decode()
        return client.simulate_get(LOGIN, headers={"Authorization": f"Basic {encoded}"})

    wrong, unknown = basic("pi_anna"), basic("nobody_zz")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json == unknown.json


# --- production refusals ------------------------------------------------------------------------


def production(settings, tmp_path, **changes):
    path = tmp_path / "passwords"
    set_password(path, "admin1", PASSWORD, ["admin"])
    base = dict(
        server_debug=False,
        auth_authenticators=("file",),
        authenticator_options={"file": {"path": str(path)}},
    )
    return settings.replace(**{**base, **changes})


def test_production_starts_with_a_real_authenticator_and_secret(settings, tmp_path):
    client = falcon.testing.TestClient(create_app(production(settings, tmp_path)))
    assert client.simulate_get(f"{PREFIX}/health").status_code == 200


def test_production_refuses_the_dummy_authenticator(settings):
    with pytest.raises(StartupError, match="dummy"):
        create_app(settings.replace(server_debug=False))


def test_production_refuses_a_short_secret(settings, tmp_path):
    with pytest.raises(StartupError, match="32 bytes"):
        create_app(production(settings, tmp_path, tokens_secret="short-secret"))


def test_production_refuses_the_example_secret(settings, tmp_path):
    with pytest.raises(StartupError, match="example secret"):
        create_app(production(settings, tmp_path, tokens_secret=EXAMPLE_SECRET))


# --- the token command --------------------------------------------------------------------------


def cli_token(tmp_path, capsys, secret: str, *args: str) -> str:
    config = tmp_path / "ispyb-falcon.ini"
    config.write_text(f"[tokens]\nsecret = {secret}\n", encoding="utf-8")
    assert main(["--config", str(config), "token", *args]) == 0
    out = capsys.readouterr().out.strip()
    assert out.count(".") == 2, out
    return out


def test_cli_token_is_accepted_and_carries_the_beamline_limit(client, tmp_path, capsys):
    token = cli_token(
        tmp_path, capsys, SECRET, "--login", "svc-acq", "--role", "acquisition", "--beamline", "i03"
    )
    r = client.simulate_get(WHOAMI, headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json["login"] == "svc-acq"
    assert r.json["roles"] == ["acquisition"]
    assert r.json["beamlines"] == ["i03"]
    r = client.simulate_get(f"{PREFIX}/sessions/mx1001-1", headers=bearer(token))
    assert r.status_code == 200
    r = client.simulate_get(f"{PREFIX}/sessions/mx1001-2", headers=bearer(token))
    assert r.status_code == 404  # i04


def test_cli_token_signed_with_another_secret_is_refused(client, tmp_path, capsys):
    token = cli_token(
        tmp_path,
        capsys,
        "a-different-secret-of-at-least-thirty-two-bytes",
        "--login",
        "svc-proc",
        "--role",
        "processing",
    )
    assert_refused(client, token)


def test_cli_token_without_a_secret_is_a_config_error(tmp_path, capsys):
    config = tmp_path / "empty.ini"
    config.write_text("[tokens]\n", encoding="utf-8")
    assert main(["--config", str(config), "token", "--login", "x", "--role", "processing"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "secret" in captured.err
