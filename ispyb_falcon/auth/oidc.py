"""The `oidc` authenticator: bearer tokens signed by the site's OpenID Connect provider.

A site with single sign-on (Keycloak or another provider) lets its web pages and
scripts get an access token from the provider and send it as is: the API checks
the signature against the provider's published keys (its JWKS), the issuer, the
audience and the expiry, and takes the ISPyB login from a claim, so the caller
is the same `Person`, and sees the same rows, as with a token of /auth/login.
No password ever reaches the API, so this authenticator is never asked at
/auth/login.

Options:
    issuer              the provider's issuer, exactly as its tokens write `iss`
                        (Keycloak: https://keycloak.example.org/realms/<realm>) (required)
    audience            what the token's `aud` must hold: the API's client id (required)
    jwks_file           a file holding the provider's key set (JWKS) ...
    jwks_url            ... or its URL (Keycloak: <issuer>/protocol/openid-connect/certs;
                        https://, or http:// on this host); exactly one of the two
    login_claim         the claim holding the ISPyB login (default: preferred_username)
    roles_claim         dotted path to the list of the provider's roles in the token
                        (default: realm_access.roles, Keycloak's realm roles)
    role_map            role=provider role pairs separated by ';', e.g.
                        admin=ispyb-admin; manager=ispyb-manager
    default_role        role of users holding none of the mapped roles (default: user);
                        empty: such users are refused
    authorized_parties  if set, the `azp` claim (the client the token was issued to) must
                        be one of these (comma-separated); if not, it is not checked
    algorithms          signature algorithms accepted (default: RS256, ES256 and the other
                        RSA and EC ones); asymmetric only, so `none` and HS256 never are
    timeout             seconds to wait for jwks_url (default: 5)
    cache_seconds       how long a key set read is used before it is read again (default: 3600)
    refetch_seconds     the least time between two reads of the key set (default: 60): a
                        token naming a key the set lacks (`kid`) prompts a read, but a flood
                        of made-up kids makes at most one read per refetch_seconds

The key set is read with the standard library (urllib) rather than PyJWT's
PyJWKClient, which reads the URL again for every unknown `kid` (no lower bound on
the interval), cannot read a file, and does not keep the last good keys when the
provider is briefly down.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from .authenticators import ROLES, Authenticator, AuthenticatorUnavailable, Identity, TokenVerifier
from .tokens import (
    LEEWAY_SECONDS,
    MIN_RSA_BITS,
    InvalidToken,
    VerifiedTokens,
    check_claim_types,
    decoded,
)

log = logging.getLogger(__name__)

# Asymmetric algorithms only: the provider signs with its private key, the API
# checks with the public one; a symmetric algorithm would take the public key as
# its secret (the classic algorithm swap).
ASYMMETRIC = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
DEFAULT_ALGORITHMS = ASYMMETRIC[:-1]
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud")
MAX_JWKS_BYTES = 1 << 20  # a key set is a few kilobytes
LOOPBACK = ("localhost", "127.0.0.1", "::1")
OPTIONS = (
    "issuer",
    "audience",
    "jwks_file",
    "jwks_url",
    "login_claim",
    "roles_claim",
    "role_map",
    "default_role",
    "authorized_parties",
    "algorithms",
    "timeout",
    "cache_seconds",
    "refetch_seconds",
)


class KeySet:
    """The provider's public keys by `kid`, read with `read` and kept `cache_seconds`.

    A read happens when there are no keys yet, when they are older than
    `cache_seconds`, or when a token names a `kid` the set lacks (the provider
    rotated its keys), but never twice within `refetch_seconds`, whatever tokens
    arrive. When a read fails, the last good keys stay in use.
    """

    clock = staticmethod(time.monotonic)  # tests move it on instead of sleeping

    def __init__(
        self,
        read: Callable[[], bytes],
        where: str,
        algorithms: tuple[str, ...],
        cache_seconds: float,
        refetch_seconds: float,
    ) -> None:
        self.read = read
        self.where = where
        self.algorithms = algorithms
        self.cache_seconds = cache_seconds
        self.refetch_seconds = refetch_seconds
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._read_at: float | None = None  # the last good read
        self._tried_at: float | None = None  # the last read, good or not
        self._failure: str | None = None  # why the last read failed
        self._lock = threading.Lock()

    def key(self, kid: str | None) -> jwt.PyJWK:
        """The key named `kid`; InvalidToken if the set has none, AuthenticatorUnavailable
        if the set cannot be read (or could not be, the last time it was tried)."""
        keys = self._keys
        stale = self._read_at is None or self.clock() - self._read_at >= self.cache_seconds
        if stale or kid not in keys:
            keys = self._refresh()
        if kid in keys:
            return keys[kid]
        if self._failure is not None:
            raise AuthenticatorUnavailable(self._failure)
        raise InvalidToken("unknown signing key (kid)")

    def _refresh(self) -> dict[str | None, jwt.PyJWK]:
        """Read the set again unless it was tried within `refetch_seconds`; one thread reads."""
        with self._lock:
            if self._tried_at is not None and self.clock() - self._tried_at < self.refetch_seconds:
                return self._keys
            self._tried_at = self.clock()
            try:
                keys = self.parse(self.read())
            except (OSError, ValueError) as exc:
                self._failure = f"cannot read the key set of {self.where}: {exc}"
                log.warning("%s", self._failure)
                return self._keys
            self._keys, self._read_at, self._failure = keys, self._tried_at, None
            return keys

    def parse(self, data: bytes) -> dict[str | None, jwt.PyJWK]:
        """JWKS JSON -> the signing keys of allowed algorithms by kid; ValueError if none."""
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise ValueError("not JSON") from None
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise ValueError('not a JWK set (a JSON object with a "keys" list)')
        keys: dict[str | None, jwt.PyJWK] = {}
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue  # Keycloak also publishes an encryption key (use: enc)
            kid = entry.get("kid")
            if kid is not None and not isinstance(kid, str):
                continue
            try:
                key = jwt.PyJWK(entry)
            except (jwt.PyJWTError, ValueError, TypeError, KeyError, AttributeError):
                continue  # a kind of key this server does not use
            if key.algorithm_name not in self.algorithms:
                continue  # never a symmetric ("oct") key, whatever the set holds
            if isinstance(key.key, rsa.RSAPublicKey) and key.key.key_size < MIN_RSA_BITS:
                continue
            keys.setdefault(kid, key)
        if not keys:
            raise ValueError(
                f"no signing key for the algorithms {', '.join(self.algorithms)} in the set"
            )
        return keys


class OidcAuthenticator(Authenticator, TokenVerifier):
    """Accepts the access tokens of one OpenID Connect provider (one issuer)."""

    def __init__(self, options: Mapping[str, str]) -> None:
        super().__init__(options)
        unknown = sorted(set(self.options) - set(OPTIONS))
        if unknown:  # a mistyped option would be silently ignored
            raise ValueError(f"unknown option {unknown[0]!r}; known: {', '.join(OPTIONS)}")
        self.issuer = self.option("issuer").strip()
        self.audience = self.option("audience").strip()
        self.login_claim = self.options.get("login_claim", "").strip() or "preferred_username"
        self.roles_claim = tuple(
            (self.options.get("roles_claim", "").strip() or "realm_access.roles").split(".")
        )
        self.role_map = self._parse_role_map(self.options.get("role_map", ""))
        self.default_role = self.options.get("default_role", "user").strip()
        if self.default_role and self.default_role not in ROLES:
            raise ValueError(
                f"option 'default_role': unknown role {self.default_role!r}; "
                f"known: {', '.join(ROLES)}"
            )
        self.authorized_parties = frozenset(
            p.strip() for p in self.options.get("authorized_parties", "").split(",") if p.strip()
        )
        self.algorithms = self._parse_algorithms(self.options.get("algorithms", ""))
        self.timeout = self.float_option("timeout", 5.0)
        self.keys = self._key_set()
        self._verified = VerifiedTokens(LEEWAY_SECONDS)

    def _parse_role_map(self, text: str) -> dict[str, frozenset[str]]:
        """'admin=ispyb-admin; manager=ispyb-manager' -> {provider role: API roles}."""
        found: dict[str, set[str]] = {}
        for item in text.split(";"):
            if not item.strip():
                continue
            role, sep, value = (part.strip() for part in item.partition("="))
            if not sep or not value:
                raise ValueError(f"option 'role_map': expected role=provider role, got {item!r}")
            if role not in ROLES:
                raise ValueError(
                    f"option 'role_map': unknown role {role!r}; known: {', '.join(ROLES)}"
                )
            found.setdefault(value, set()).add(role)
        return {value: frozenset(roles) for value, roles in found.items()}

    def _parse_algorithms(self, text: str) -> tuple[str, ...]:
        names = tuple(a.strip() for a in text.split(",") if a.strip()) or DEFAULT_ALGORITHMS
        wrong = [a for a in names if a not in ASYMMETRIC]
        if wrong:
            raise ValueError(
                f"option 'algorithms': {', '.join(wrong)} not allowed; "
                f"choose from {', '.join(ASYMMETRIC)}"
            )
        return names

    def _key_set(self) -> KeySet:
        """From jwks_file (read now: a bad file is a start-up error) or jwks_url (read
        when the first token arrives: the provider may be down while the API starts)."""
        path = self.options.get("jwks_file", "").strip()
        url = self.options.get("jwks_url", "").strip()
        if bool(path) == bool(url):
            raise ValueError("exactly one of the options 'jwks_file' and 'jwks_url' is required")
        cache = self.float_option("cache_seconds", 3600.0)
        refetch = self.float_option("refetch_seconds", 60.0)
        if path:
            keys = KeySet(lambda: Path(path).read_bytes(), path, self.algorithms, cache, refetch)
            try:
                keys.parse(Path(path).read_bytes())
            except OSError as exc:
                raise ValueError(f"option 'jwks_file': {path}: {exc.strerror}") from None
            except ValueError as exc:
                raise ValueError(f"option 'jwks_file': {path}: {exc}") from None
            return keys
        parts = urlsplit(url)
        local = parts.scheme == "http" and parts.hostname in LOOPBACK
        if not (parts.scheme == "https" or local) or not parts.hostname:
            # keys read over plain HTTP could be anyone's, and so could the tokens they pass
            raise ValueError(
                f"option 'jwks_url' must be an https:// URL (http:// only on this host), not {url!r}"
            )
        return KeySet(lambda: self._fetch(url), url, self.algorithms, cache, refetch)

    def _fetch(self, url: str) -> bytes:
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310
                data = answer.read(MAX_JWKS_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise OSError(f"HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:  # refused, timed out, no such host
            raise OSError(str(getattr(exc, "reason", exc))) from None
        except http.client.HTTPException as exc:  # a connection cut mid-answer
            raise OSError(f"{type(exc).__name__}: {exc}") from None
        if len(data) > MAX_JWKS_BYTES:
            raise ValueError(f"larger than {MAX_JWKS_BYTES} bytes")
        return data

    def authenticate(self, login: str, password: str) -> Identity | None:
        """Passwords are the provider's business: this authenticator never checks one."""
        return None

    def verify(self, token: str) -> dict:
        return self._verified.claims(token, self._verify)

    def _verify(self, token: str) -> dict:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("malformed token") from None
        if header.get("alg") not in self.algorithms:
            raise InvalidToken("algorithm not allowed")  # before any key is looked up
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("malformed token")
        key = self.keys.key(kid)
        claims = decoded(
            token,
            key,
            algorithms=list(self.algorithms),
            audience=self.audience,
            issuer=self.issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": list(REQUIRED_CLAIMS)},
        )
        azp = claims.get("azp")
        if self.authorized_parties and not (
            isinstance(azp, str) and azp in self.authorized_parties
        ):
            raise InvalidToken("token issued to a client this server does not accept (azp)")
        login = claims.get(self.login_claim)
        if not isinstance(login, str) or not login:
            raise InvalidToken(f"missing claim {self.login_claim}")
        try:
            login.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidToken(f"bad {self.login_claim} claim") from None
        roles = self.roles(claims)
        if not roles:
            raise InvalidToken("no role for this user")
        found = {"sub": login, "roles": roles, "iss": self.issuer}
        found.update({k: claims[k] for k in ("exp", "iat", "nbf") if k in claims})
        check_claim_types(found)
        return found

    def roles(self, claims: dict) -> list[str]:
        """The API roles the provider's roles map to, else the default role (if any)."""
        value: Any = claims
        for step in self.roles_claim:
            value = value.get(step) if isinstance(value, dict) else None
        if value is None:
            value = []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidToken(f"{'.'.join(self.roles_claim)} must be a list of strings")
        roles = {r for v in value for r in self.role_map.get(v, ())}
        if not roles and self.default_role:
            roles.add(self.default_role)
        return sorted(roles)
