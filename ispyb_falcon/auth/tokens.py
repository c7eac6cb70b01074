"""JSON Web Tokens: the bearer tokens the API hands out and checks.

One `TokenService` per server, built from `TokenSettings`. It signs with exactly
one algorithm and verifies with exactly that algorithm, so `alg: none` and
algorithm swaps (an HS256 token "signed" with the RS256 public key) are refused
by construction rather than by a check someone can forget.

A client sends the same token on every request. The service remembers the tokens
it has verified (the exact text, signature included) with their claims, and only
re-checks the expiry on the next request: the signature, issuer, audience and
claim checks cannot give another answer for the same text, and verifying them is
a good part of a small request's cost.

`BearerTokens` is what the authentication middleware asks: a token whose `iss`
is that of a configured token verifier (the `oidc` authenticator: tokens of the
site's OpenID Connect provider) goes to that verifier, every other token to the
server's own `TokenService`, as before.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

if TYPE_CHECKING:
    from .authenticators import TokenVerifier

ALGORITHMS = ("HS256", "RS256", "ES256")
REQUIRED_CLAIMS = ("exp", "iat", "sub", "iss", "aud")
# RFC 7518 section 3.2: an HS256 key must be at least as long as the hash.
MIN_SECRET_BYTES = 32
MIN_RSA_BITS = 2048
# A bearer token is a few hundred bytes; refuse anything absurd before parsing it.
MAX_TOKEN_LENGTH = 8192
VERIFIED_TOKENS = 4096  # remembered verified tokens (a few hundred bytes each)
# Times in claims are whole seconds up to the end of year 9999, the last a date
# (`expiresAt`) can show; PyJWT also takes "1700000000" or 1e20.
TIMES = range(0, 253402300800)
TIME_CLAIMS = ("exp", "iat", "nbf")
# Seconds a token is still taken after its `exp` (and before its `nbf`): clocks differ a little.
LEEWAY_SECONDS = 30


class InvalidToken(Exception):
    """The token cannot be trusted; `str()` is a short reason safe to show a client."""


@dataclass(frozen=True)
class TokenSettings:
    """How tokens are signed and checked (from the `[tokens]` config section)."""

    algorithm: str = "HS256"  # HS256 | RS256 | ES256
    secret: str | None = None  # for HS256
    private_key: str | None = None  # PEM text, for RS256/ES256 signing
    public_key: str | None = None  # PEM text, for RS256/ES256 verifying
    issuer: str = "ispyb-falcon"
    audience: str = "ispyb"
    lifetime_seconds: int = 12 * 3600
    leeway_seconds: int = LEEWAY_SECONDS


class TokenService:
    """Issues and decodes the server's JWTs; settings are checked once, at start-up."""

    def __init__(self, settings: TokenSettings):
        self.settings = settings
        self._signing_key: Any = None
        self._verifying_key: Any = None
        self._load_keys(settings)
        if not settings.issuer:
            raise ValueError("issuer must not be empty")
        if not settings.audience:
            raise ValueError("audience must not be empty")
        if settings.lifetime_seconds <= 0:
            raise ValueError("lifetime_seconds must be a positive number of seconds")
        if settings.leeway_seconds < 0:
            raise ValueError("leeway_seconds must not be negative")
        self.verified = VerifiedTokens(settings.leeway_seconds)

    def _load_keys(self, settings: TokenSettings) -> None:
        """Turn the configured secret or PEM text into key objects, or say which key is wrong."""
        algorithm = settings.algorithm
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, not {algorithm!r}")
        if algorithm == "HS256":
            if not settings.secret:
                raise ValueError("secret is required for algorithm HS256")
            if len(settings.secret.encode()) < MIN_SECRET_BYTES:
                raise ValueError(f"secret must be at least {MIN_SECRET_BYTES} bytes long for HS256")
            if _looks_like_pem(settings.secret):
                raise ValueError("secret must not be a PEM key; use private_key/public_key")
            self._signing_key = self._verifying_key = settings.secret.encode()
            return
        if not settings.private_key and not settings.public_key:
            raise ValueError(f"public_key (or private_key) is required for algorithm {algorithm}")
        if settings.private_key:
            self._signing_key = _load_private_key(settings.private_key, algorithm)
        if settings.public_key:
            self._verifying_key = _load_public_key(settings.public_key, algorithm)
            if self._signing_key is not None and _spki(self._signing_key.public_key()) != _spki(
                self._verifying_key
            ):
                raise ValueError("public_key does not match private_key")
        else:
            self._verifying_key = self._signing_key.public_key()

    def issue(
        self,
        login: str,
        roles: Sequence[str],
        *,
        beamlines: Sequence[str] = (),
        lifetime_seconds: int | None = None,
        now: int | None = None,
    ) -> tuple[str, int]:
        """Sign a token for `login`; return it with its expiry (epoch seconds)."""
        if self._signing_key is None:
            raise ValueError(
                "private_key is required to issue tokens (this server can only verify)"
            )
        if not isinstance(login, str) or not login:
            raise ValueError("login must be a non-empty string")
        if isinstance(roles, str) or not all(isinstance(r, str) for r in roles):
            raise ValueError("roles must be a sequence of strings")
        if isinstance(beamlines, str) or not all(isinstance(b, str) for b in beamlines):
            raise ValueError("beamlines must be a sequence of strings")
        lifetime = self.settings.lifetime_seconds if lifetime_seconds is None else lifetime_seconds
        if lifetime <= 0:
            raise ValueError("lifetime_seconds must be positive")
        iat = int(time.time()) if now is None else int(now)
        exp = iat + int(lifetime)
        claims: dict[str, Any] = {
            "sub": login,
            "roles": list(roles),
            "iat": iat,
            "exp": exp,
            "iss": self.settings.issuer,
            "aud": self.settings.audience,
            "jti": secrets.token_urlsafe(16),
        }
        if beamlines:
            claims["beamlines"] = list(beamlines)
        token = jwt.encode(claims, self._signing_key, algorithm=self.settings.algorithm)
        return token, exp

    def decode(self, token: str) -> dict:
        """Verify `token` and return its claims, or raise `InvalidToken` with a short reason."""
        if not isinstance(token, str) or not token:
            raise InvalidToken("malformed token")
        return self.verified.claims(token, self._verify)

    def _verify(self, token: str) -> dict:
        claims = decoded(
            token,
            self._verifying_key,
            algorithms=[self.settings.algorithm],
            audience=self.settings.audience,
            issuer=self.settings.issuer,
            leeway=self.settings.leeway_seconds,
            options={"require": list(REQUIRED_CLAIMS), "strict_aud": True},
        )
        check_claim_types(claims)
        return claims


# PyJWT's refusals, as the reason a 401 gives (the first that fits: DecodeError, which
# an InvalidSignatureError also is, comes last).
REFUSALS = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.DecodeError, "malformed token"),
)


def decoded(token: str, key: Any, **checks: Any) -> dict:
    """`jwt.decode(token, key, **checks)`, its refusals as InvalidToken with a short reason."""
    try:
        return jwt.decode(token, key, **checks)
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidToken(f"missing claim {exc.claim}") from None
    except jwt.PyJWTError as exc:
        reason = next((r for kind, r in REFUSALS if isinstance(exc, kind)), "invalid token")
        raise InvalidToken(reason) from None


class VerifiedTokens:
    """Tokens verified before (the exact text) with their claims; only the expiry is
    checked again. The oldest are forgotten past `VERIFIED_TOKENS`."""

    def __init__(self, leeway_seconds: int) -> None:
        self.leeway = leeway_seconds
        self._claims: OrderedDict[str, dict] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, token: str) -> dict | None:
        """The claims of `token` if verified before, None if not; InvalidToken once expired."""
        claims = self._claims.get(token)
        if claims is None or time.time() < claims["exp"] + self.leeway:
            return claims
        with self._lock:
            self._claims.pop(token, None)
        raise InvalidToken("token expired")

    def claims(self, token: str, verify: Callable[[str], dict]) -> dict:
        """The claims of `token`: remembered, or `verify(token)` and then remembered."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("token too long")
        claims = self.get(token)
        if claims is None:
            claims = verify(token)
            self.add(token, claims)
        return claims

    def add(self, token: str, claims: dict) -> None:
        with self._lock:
            self._claims[token] = claims
            if len(self._claims) > VERIFIED_TOKENS:
                self._claims.popitem(last=False)  # the oldest

    def __contains__(self, token: object) -> bool:
        return token in self._claims

    def __iter__(self) -> Iterator[str]:
        """The remembered tokens, oldest first."""
        return iter(list(self._claims))


class BearerTokens:
    """Sends each bearer token to the verifier of its issuer: a configured provider's
    (by the token's `iss`, read before anything is verified, only to choose), else the
    server's own `TokenService`, which refuses any other issuer."""

    def __init__(self, own: TokenService, verifiers: Sequence[TokenVerifier] = ()) -> None:
        self.own = own
        self.by_issuer: dict[str, TokenVerifier] = {}
        for verifier in verifiers:
            if verifier.issuer == own.settings.issuer:
                raise ValueError(
                    f"{verifier.name}: issuer {verifier.issuer!r} is the issuer of this"
                    " server's own tokens ([tokens] issuer); they must differ"
                )
            if verifier.issuer in self.by_issuer:
                raise ValueError(
                    f"{verifier.name}: issuer {verifier.issuer!r} is also the issuer of"
                    f" {self.by_issuer[verifier.issuer].name}"
                )
            self.by_issuer[verifier.issuer] = verifier

    def decode(self, token: str) -> dict:
        """The claims of a verified token (`sub` the login, `roles`, `exp`), or raise
        `InvalidToken`; a verifier that cannot read its keys raises AuthenticatorUnavailable."""
        if self.by_issuer and token not in self.own.verified:  # remembered: its issuer's
            verifier = self.by_issuer.get(unverified_issuer(token))
            if verifier is not None:
                return verifier.verify(token)
        return self.own.decode(token)


def unverified_issuer(token: str) -> str | None:
    """The `iss` a token claims, unverified: only to choose who verifies it."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        return None
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    issuer = claims.get("iss")
    return issuer if isinstance(issuer, str) else None


def check_claim_types(claims: dict) -> None:
    """Refuse claims our own `issue` would never write, so callers can trust the types."""
    if not _text(claims.get("sub")):
        raise InvalidToken("bad sub claim")
    for name in TIME_CLAIMS:
        value = claims.get(name, 0)
        if type(value) is not int or value not in TIMES:  # bool is an int too
            raise InvalidToken(f"{name} must be whole seconds since 1970, up to year 9999")
    roles = claims.get("roles")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise InvalidToken("roles must be a list of strings")
    if "beamlines" in claims:
        beamlines = claims["beamlines"]
        if not isinstance(beamlines, list) or not all(isinstance(b, str) for b in beamlines):
            raise InvalidToken("beamlines must be a list of strings")


def _text(value: Any) -> bool:
    """A non-empty string that is text: JSON may escape half a surrogate pair ("\\ud800"),
    which no answer can carry and no column store."""
    if not isinstance(value, str) or not value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _spki(public_key: Any) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _looks_like_pem(text: str) -> bool:
    return "-----BEGIN" in text


def _check_key_type(key: Any, algorithm: str, what: str) -> None:
    """A key of the wrong kind is a configuration error, reported at start-up."""
    if algorithm == "RS256":
        if not isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
            raise ValueError(f"{what} must be an RSA key for RS256")
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"{what} must be at least {MIN_RSA_BITS} bits for RS256")
    elif algorithm == "ES256":
        if not isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
            raise ValueError(f"{what} must be an EC key for ES256")
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError(f"{what} must be on curve P-256 for ES256")


def _load_private_key(pem: str, algorithm: str) -> Any:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"private_key is not a readable unencrypted PEM private key: {exc}"
        ) from None
    _check_key_type(key, algorithm, "private_key")
    return key


def _load_public_key(pem: str, algorithm: str) -> Any:
    data = pem.encode()
    try:
        if b"BEGIN CERTIFICATE" in data:
            key = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"public_key is not a readable PEM public key: {exc}") from None
    _check_key_type(key, algorithm, "public_key")
    return key
