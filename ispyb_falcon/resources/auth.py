"""Login (JSON or HTTP Basic) and "who am I"."""

from __future__ import annotations

import base64
import datetime as dt
import logging
from collections.abc import Sequence

import falcon

from .. import serialize
from ..auth.authenticators import Authenticator, AuthenticatorUnavailable, Identity
from ..auth.principal import PrincipalLoader, principal
from ..auth.ratelimit import LimiterUnavailable, LoginLimiter, TooManyFailures
from ..auth.tokens import TokenService
from ..catalog.store import unicode_text
from ..errors import ApiError, bad_request, unauthorized, unavailable, unprocessable
from .bodies import read_json
from .generic import ANY

log = logging.getLogger("ispyb_falcon.auth")
BAD_CREDENTIALS = "Unknown login or wrong password."


def _iso(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Login:
    """`POST /auth/login` with {login, password, plugin?}, or `GET` with HTTP Basic."""

    public = True

    def __init__(
        self,
        authenticators: Sequence[Authenticator],
        tokens: TokenService,
        principals: PrincipalLoader,
        limiter: LoginLimiter,
        max_body_bytes: int,
    ) -> None:
        self.authenticators = {a.name: a for a in authenticators}
        self.tokens = tokens
        self.principals = principals
        self.limiter = limiter
        self.max_body_bytes = max_body_bytes

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req, self.max_body_bytes)
        errors = []
        if not isinstance(body, dict):
            raise unprocessable(
                "The login body must be a JSON object.",
                [{"path": "$", "message": "expected an object"}],
            )
        for key in ("login", "password"):
            if not isinstance(body.get(key), str) or not body.get(key):
                errors.append({"path": f"$.{key}", "message": "a non-empty string is required"})
                continue
            try:  # JSON can escape half a surrogate pair; no authenticator can take it
                unicode_text(body[key])
            except ValueError as exc:
                errors.append({"path": f"$.{key}", "message": str(exc)})
        for key in sorted(set(body) - {"login", "password", "plugin"}):
            errors.append({"path": f"$.{key}", "message": f"unknown field {key!r}"})
        plugin = body.get("plugin")
        if plugin is not None and (
            not isinstance(plugin, str) or plugin not in self.authenticators
        ):
            errors.append(
                {
                    "path": "$.plugin",
                    "message": f"unknown plugin; known: {', '.join(self.authenticators)}",
                }
            )
        if errors:
            raise unprocessable("The login body is not valid.", errors)
        self.login(req, resp, body["login"], body["password"], plugin)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        header = req.get_header("Authorization") or ""
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            raise ApiError(
                falcon.HTTP_401,
                "Send HTTP Basic credentials (curl -u login:password) or POST a JSON body.",
                headers={"WWW-Authenticate": 'Basic realm="ispyb"'},
            )
        try:
            login, sep, password = (
                base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
            )
        except (ValueError, UnicodeDecodeError):
            raise bad_request(
                "The Basic credentials are not valid base64 of login:password."
            ) from None
        if not sep or not login:
            raise bad_request("The Basic credentials must be login:password.")
        plugin = req.get_param("plugin")
        if plugin is not None and plugin not in self.authenticators:
            raise bad_request(f"unknown plugin; known: {', '.join(self.authenticators)}", "plugin")
        self.login(req, resp, login, password, plugin)

    def login(self, req, resp, login: str, password: str, plugin: str | None) -> None:
        # The client's address, from X-Forwarded-For only behind a trusted proxy.
        address = self.limiter.client_address(req.remote_addr, req.get_header("X-Forwarded-For"))
        try:
            attempt = self.limiter.attempt(login, address)  # counted as failed until it succeeds
        except TooManyFailures as exc:
            raise ApiError(
                falcon.HTTP_429,
                "Too many failed logins; try again later.",
                headers={"Retry-After": str(exc.seconds)},
            ) from None
        except LimiterUnavailable:  # no password is tried uncounted (README, Authentication)
            raise unavailable("The login service is unavailable; try again shortly.") from None
        try:
            identity = self.authenticate(login, password, plugin)
        except BaseException:
            self.limiter.withdraw(attempt)  # no answer about the password (e.g. a 503)
            raise
        if identity is None:
            log.info("failed login for %r from %s", login, address)
            raise unauthorized(BAD_CREDENTIALS)
        self.limiter.succeeded(attempt)
        token, expires = self.tokens.issue(identity.login, identity.roles)
        who = self.principals.principal(
            {"sub": identity.login, "roles": list(identity.roles), "exp": expires}
        )
        resp.text = serialize.dumps(
            {"token": token, "tokenType": "Bearer", "expiresAt": _iso(expires), **_identity(who)}
        )

    def authenticate(self, login: str, password: str, plugin: str | None) -> Identity | None:
        """The first authenticator that knows the login decides; an outage is a 503 only if none did."""
        chosen = [self.authenticators[plugin]] if plugin else list(self.authenticators.values())
        down = False
        for authenticator in chosen:
            try:
                identity = authenticator.authenticate(login, password)
            except AuthenticatorUnavailable as exc:
                log.warning("authenticator %s unavailable: %s", authenticator.name, exc)
                down = True
                continue
            if identity is not None:
                return identity
        if down:
            raise unavailable("The login service is unavailable; try again shortly.")
        return None


def _identity(who) -> dict:
    data = who.public()
    data.pop("expiresAt", None)
    return data


class WhoAmI:
    """`GET /auth/whoami`: who the token says you are."""

    needs = {"GET": ANY}

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        who = principal(req)
        resp.text = serialize.dumps({**_identity(who), "expiresAt": _iso(who.expires_at)})
