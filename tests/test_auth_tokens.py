"""Tokens: what the server issues decodes, and every forged or stale token is refused."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ispyb_falcon.auth import tokens
from ispyb_falcon.auth.tokens import InvalidToken, TokenService, TokenSettings

SECRET = "0123456789abcdef0123456789abcdef-test-secret"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(obj: dict) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def good_claims(**overrides) -> dict:
    now = int(time.time())
    claims = {
        "sub": "alice",
        "roles": ["user"],
        "iat": now,
        "exp": now + 600,
        "iss": "ispyb-falcon",
        "aud": "ispyb",
        "jti": "x",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def pem_private(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def pem_public(key) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def hs_service() -> TokenService:
    return TokenService(TokenSettings(secret=SECRET))


@pytest.fixture
def rs_service(rsa_key) -> TokenService:
    return TokenService(
        TokenSettings(
            algorithm="RS256", private_key=pem_private(rsa_key), public_key=pem_public(rsa_key)
        )
    )


def reason(service: TokenService, token: str) -> str:
    with pytest.raises(InvalidToken) as info:
        service.decode(token)
    return str(info.value)


# --- round trips --------------------------------------------------------------------------------


def test_hs256_round_trip(hs_service):
    token, exp = hs_service.issue("alice", ["user", "manager"], now=int(time.time()))
    claims = hs_service.decode(token)
    assert claims["sub"] == "alice"
    assert claims["roles"] == ["user", "manager"]
    assert claims["exp"] == exp == claims["iat"] + 12 * 3600
    assert claims["iss"] == "ispyb-falcon" and claims["aud"] == "ispyb"
    assert claims["jti"]
    assert "beamlines" not in claims
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_each_token_has_its_own_jti(hs_service):
    first, _ = hs_service.issue("alice", ["user"])
    second, _ = hs_service.issue("alice", ["user"])
    assert hs_service.decode(first)["jti"] != hs_service.decode(second)["jti"]


def test_beamlines_claim_for_service_accounts(hs_service):
    token, _ = hs_service.issue("gda-i03", ["acquisition"], beamlines=["i03", "i04"])
    assert hs_service.decode(token)["beamlines"] == ["i03", "i04"]


def test_custom_lifetime(hs_service):
    now = int(time.time())
    token, exp = hs_service.issue(
        "pipeline", ["processing"], lifetime_seconds=3600 * 24 * 90, now=now
    )
    assert exp == now + 3600 * 24 * 90
    assert hs_service.decode(token)["exp"] == exp


def test_rs256_round_trip(rs_service):
    token, _ = rs_service.issue("bob", ["admin"])
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert rs_service.decode(token)["roles"] == ["admin"]


def test_es256_round_trip(ec_key):
    service = TokenService(TokenSettings(algorithm="ES256", private_key=pem_private(ec_key)))
    token, _ = service.issue("carol", ["manager"])
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    assert service.decode(token)["sub"] == "carol"


def test_verify_only_server_decodes_but_cannot_issue(rs_service, rsa_key):
    verifier = TokenService(TokenSettings(algorithm="RS256", public_key=pem_public(rsa_key)))
    token, _ = rs_service.issue("bob", ["admin"])
    assert verifier.decode(token)["sub"] == "bob"
    with pytest.raises(ValueError, match="private_key"):
        verifier.issue("bob", ["admin"])


def test_leeway_accepts_just_expired_token(hs_service):
    token, _ = hs_service.issue("alice", ["user"], lifetime_seconds=10, now=int(time.time()) - 20)
    assert hs_service.decode(token)["sub"] == "alice"


# --- remembered tokens -----------------------------------------------------------------------------


def test_a_remembered_token_still_expires(monkeypatch):
    service = TokenService(TokenSettings(secret=SECRET, leeway_seconds=30))
    token, exp = service.issue("alice", ["user"], lifetime_seconds=60)
    assert service.decode(token)["sub"] == "alice"  # verified, and remembered
    assert service.decode(token)["sub"] == "alice"  # from memory
    monkeypatch.setattr(tokens.time, "time", lambda: exp + 31)
    assert reason(service, token) == "token expired"
    assert token not in service.verified  # forgotten


def test_a_remembered_token_vouches_for_no_other_text(hs_service):
    token, _ = hs_service.issue("alice", ["user"])
    assert hs_service.decode(token)["roles"] == ["user"]
    header, _, signature = token.split(".")
    forged = header + "." + b64url_json(good_claims(roles=["admin"])) + "." + signature
    assert reason(hs_service, forged) == "bad signature"
    assert reason(hs_service, token + "x") == "bad signature"


def test_remembered_tokens_are_bounded(monkeypatch):
    monkeypatch.setattr(tokens, "VERIFIED_TOKENS", 3)
    service = TokenService(TokenSettings(secret=SECRET))
    issued = [service.issue(f"user{i}", ["user"])[0] for i in range(5)]
    for token in issued:
        service.decode(token)
    assert list(service.verified) == issued[2:]  # the newest three
    assert service.decode(issued[0])["sub"] == "user0"  # verified again


# --- refusals -----------------------------------------------------------------------------------


def test_refuses_alg_none(hs_service):
    token = b64url_json({"alg": "none", "typ": "JWT"}) + "." + b64url_json(good_claims()) + "."
    assert reason(hs_service, token) == "algorithm not allowed"


def test_refuses_alg_none_with_garbage_signature(hs_service):
    token = b64url_json({"alg": "none"}) + "." + b64url_json(good_claims()) + "." + b64url(b"x")
    with pytest.raises(InvalidToken):
        hs_service.decode(token)


def test_refuses_hs256_signed_with_rs256_public_key(rs_service, rsa_key):
    """The classic swap: the attacker knows the public key and uses it as an HMAC secret."""
    import hashlib
    import hmac

    public_pem = pem_public(rsa_key).encode()
    signing_input = (
        b64url_json({"alg": "HS256", "typ": "JWT"})
        + "."
        + b64url_json(good_claims(roles=["admin"]))
    )
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = signing_input + "." + b64url(signature)
    assert reason(rs_service, token) == "algorithm not allowed"


def test_refuses_token_signed_with_other_algorithm(ec_key, rs_service):
    token = jwt.encode(good_claims(), ec_key, algorithm="ES256")
    assert reason(rs_service, token) == "algorithm not allowed"


def test_refuses_token_signed_with_another_secret(hs_service):
    token = jwt.encode(good_claims(), "another-secret-that-is-long-enough-32", algorithm="HS256")
    assert reason(hs_service, token) == "bad signature"


def test_refuses_token_signed_with_another_rsa_key(rs_service):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(good_claims(), other, algorithm="RS256")
    assert reason(rs_service, token) == "bad signature"


def test_refuses_edited_payload_with_old_signature(hs_service):
    token, _ = hs_service.issue("alice", ["user"])
    header, _, signature = token.split(".")
    forged = header + "." + b64url_json(good_claims(roles=["admin"])) + "." + signature
    assert reason(hs_service, forged) == "bad signature"


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "iss", "aud"])
def test_refuses_missing_required_claim(hs_service, claim):
    token = jwt.encode(good_claims(**{claim: None}), SECRET, algorithm="HS256")
    assert reason(hs_service, token) == f"missing claim {claim}"


def test_refuses_expired_token(hs_service):
    token, _ = hs_service.issue("alice", ["user"], lifetime_seconds=60, now=int(time.time()) - 3600)
    assert reason(hs_service, token) == "token expired"


def test_refuses_token_issued_in_the_future(hs_service):
    token, _ = hs_service.issue("alice", ["user"], now=int(time.time()) + 3600)
    assert reason(hs_service, token) == "token not yet valid"


def test_refuses_wrong_issuer(hs_service):
    token = jwt.encode(good_claims(iss="someone-else"), SECRET, algorithm="HS256")
    assert reason(hs_service, token) == "wrong issuer"


def test_refuses_wrong_audience(hs_service):
    token = jwt.encode(good_claims(aud="other-service"), SECRET, algorithm="HS256")
    assert reason(hs_service, token) == "wrong audience"


def test_refuses_audience_list(hs_service):
    token = jwt.encode(good_claims(aud=["ispyb", "other"]), SECRET, algorithm="HS256")
    with pytest.raises(InvalidToken):
        hs_service.decode(token)


@pytest.mark.parametrize("roles", ["admin", [1], None, {"admin": True}])
def test_refuses_roles_that_are_not_a_list_of_strings(hs_service, roles):
    claims = good_claims()
    claims["roles"] = roles
    if roles is None:
        del claims["roles"]
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    assert reason(hs_service, token) == "roles must be a list of strings"


def test_refuses_beamlines_that_are_not_a_list(hs_service):
    token = jwt.encode(good_claims(beamlines="i03"), SECRET, algorithm="HS256")
    assert reason(hs_service, token) == "beamlines must be a list of strings"


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "x" * 10000])
def test_refuses_garbage(hs_service, token):
    with pytest.raises(InvalidToken):
        hs_service.decode(token)


# --- settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (TokenSettings(), "secret"),
        (TokenSettings(secret="short"), "secret"),
        (TokenSettings(algorithm="HS512", secret=SECRET), "algorithm"),
        (TokenSettings(algorithm="none", secret=SECRET), "algorithm"),
        (TokenSettings(algorithm="RS256"), "public_key"),
        (TokenSettings(algorithm="RS256", public_key="not a pem"), "public_key"),
        (TokenSettings(secret=SECRET, lifetime_seconds=0), "lifetime_seconds"),
        (TokenSettings(secret=SECRET, issuer=""), "issuer"),
    ],
)
def test_bad_settings_name_the_key(settings, message):
    with pytest.raises(ValueError, match=message):
        TokenService(settings)


def test_es256_refuses_an_rsa_key(rsa_key):
    with pytest.raises(ValueError, match="private_key"):
        TokenService(TokenSettings(algorithm="ES256", private_key=pem_private(rsa_key)))


def test_mismatched_key_pair_is_refused(rsa_key):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(ValueError, match="does not match"):
        TokenService(
            TokenSettings(
                algorithm="RS256", private_key=pem_private(rsa_key), public_key=pem_public(other)
            )
        )


def test_pem_as_hs256_secret_is_refused(rsa_key):
    with pytest.raises(ValueError, match="secret"):
        TokenService(TokenSettings(secret=pem_public(rsa_key)))
