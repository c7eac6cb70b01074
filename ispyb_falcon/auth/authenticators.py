"""Authenticator plug-ins: how a site checks a login and password.

Sites differ (LDAP, a password file, a home-grown service), so the check is a
class named in the configuration, by alias or dotted path, never a branch on
the site name. Every authenticator answers the same question the same way: an
`Identity` for good credentials, `None` for bad ones, `AuthenticatorUnavailable`
when it cannot tell (so the API answers 503 rather than a misleading 401).

An authenticator that is also a `TokenVerifier` (the `oidc` one) is not asked at
/auth/login: its users never give the API a password, they arrive with a bearer
token their site's identity provider signed.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Mapping
from dataclasses import dataclass

ROLES = ("user", "manager", "admin", "acquisition", "processing")

ALIASES = {
    "dummy": "ispyb_falcon.auth.dummy.DummyAuthenticator",
    "file": "ispyb_falcon.auth.passwords.FileAuthenticator",
    "ldap": "ispyb_falcon.auth.ldap.LdapAuthenticator",
    "oidc": "ispyb_falcon.auth.oidc.OidcAuthenticator",
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class AuthenticatorUnavailable(Exception):
    """The authenticator could not reach its backend; the caller should answer 503."""


@dataclass(frozen=True)
class Identity:
    """Who a successful login is, as the authenticator sees it."""

    login: str
    roles: tuple[str, ...]

    def __post_init__(self) -> None:
        # Accept any sequence but store a tuple, so an Identity stays hashable and immutable.
        if not isinstance(self.login, str) or not self.login:
            raise ValueError("Identity.login must be a non-empty string")
        if isinstance(self.roles, str):
            raise ValueError("Identity.roles must be a sequence of role names, not a string")
        object.__setattr__(self, "roles", tuple(self.roles))
        if not all(isinstance(r, str) for r in self.roles):
            raise ValueError("Identity.roles must contain strings")


class Authenticator(abc.ABC):
    """A site's way of checking a password. Subclasses are named in the config by dotted path."""

    name: str = ""  # set by the loader: the config name

    def __init__(self, options: Mapping[str, str]) -> None:
        """Keep the config section's options; subclasses read and validate them here."""
        self.options: dict[str, str] = {str(k): str(v) for k, v in options.items()}

    @abc.abstractmethod
    def authenticate(self, login: str, password: str) -> Identity | None:
        """Return the identity for good credentials, None for bad ones.

        Raise `AuthenticatorUnavailable` when the backend cannot be asked.
        """

    # Helpers so every plug-in reports a bad option the same way: naming the key.

    def option(self, key: str, default: str | None = None) -> str:
        """The option `key`, or `default`; ValueError naming `key` if required and missing."""
        value = self.options.get(key, default)
        if value is None or (value == "" and default is None):
            raise ValueError(f"option {key!r} is required")
        return value

    def bool_option(self, key: str, default: bool = False) -> bool:
        raw = self.options.get(key)
        if raw is None:
            return default
        value = raw.strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise ValueError(f"option {key!r} must be true or false, not {raw!r}")

    def float_option(self, key: str, default: float) -> float:
        raw = self.options.get(key)
        if raw is None or raw.strip() == "":
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"option {key!r} must be a number, not {raw!r}") from None
        if value <= 0:
            raise ValueError(f"option {key!r} must be positive, not {raw!r}")
        return value

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class TokenVerifier(abc.ABC):
    """Accepts bearer tokens someone else signed: those whose `iss` is `issuer` are
    handed to `verify` instead of the server's own token service."""

    name: str = ""
    issuer: str = ""

    @abc.abstractmethod
    def verify(self, token: str) -> dict:
        """The token's claims as the server's own tokens hold them: `sub` (the ISPyB
        login), `roles` (a list of ROLES), `exp` and `iat` (whole seconds).

        Raise `ispyb_falcon.auth.tokens.InvalidToken` (a short reason a client may
        read) to refuse the token, `AuthenticatorUnavailable` when the keys to check
        it with cannot be read.
        """


def load_authenticator(name: str, spec: str, options: Mapping[str, str]) -> Authenticator:
    """Build the authenticator `spec` (an alias, "pkg.mod.Class" or "pkg.mod:Class").

    Any problem becomes one ValueError naming the config entry, so start-up
    fails with a message an operator can act on.
    """
    path = ALIASES.get(spec.strip(), spec.strip())
    if ":" in path:
        module_name, _, class_name = path.partition(":")
    else:
        module_name, _, class_name = path.rpartition(".")
    if not module_name or not class_name:
        raise ValueError(
            f"authenticator {name!r}: {spec!r} is neither an alias ({', '.join(ALIASES)}) "
            "nor a dotted path like 'package.module.Class'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(
            f"authenticator {name!r}: cannot import module {module_name!r} for {spec!r}: {exc}"
        ) from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ValueError(f"authenticator {name!r}: module {module_name!r} has no {class_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, Authenticator)):
        raise ValueError(
            f"authenticator {name!r}: {path!r} is not a subclass of "
            "ispyb_falcon.auth.authenticators.Authenticator"
        )
    if getattr(cls, "__abstractmethods__", None):
        raise ValueError(f"authenticator {name!r}: {path!r} does not implement authenticate()")
    try:
        authenticator = cls(options)
    except ValueError as exc:
        raise ValueError(f"authenticator {name!r} ({spec}): {exc}") from exc
    authenticator.name = name
    return authenticator
