"""Request id and timing, authentication, authorization: the steps every request passes.

Order in the app: RequestLog -> CORS -> Authentication -> Authorization.
A resource says what it needs with a `needs` mapping (method -> roles, or
`ANY` for any signed-in caller); a resource with `public = True` needs no
token. A resource that declares neither still needs a token: the safe default.
A file route (`signed_links`) also takes its caller from a signed link instead.
"""

from __future__ import annotations

import itertools
import json
import logging
import secrets
import time

import falcon

from .auth.authenticators import AuthenticatorUnavailable
from .auth.principal import PrincipalLoader
from .auth.tokens import BearerTokens, InvalidToken
from .errors import forbidden, unauthorized, unavailable
from .resources.generic import ANY

access_log = logging.getLogger("ispyb_falcon.access")


class RequestLog:
    """Gives each request an id (also in `X-Request-Id`) and logs one JSON line when done."""

    def __init__(self) -> None:
        # 16 hex characters: a random prefix per process, then a counter. itertools.count
        # is safe across threads, and needs no random bytes (a syscall) per request.
        self.prefix = secrets.token_hex(4)
        self.counter = itertools.count(1)

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.request_id = f"{self.prefix}{next(self.counter) & 0xFFFFFFFF:08x}"
        req.context.started = time.perf_counter()
        resp.set_header("X-Request-Id", req.context.request_id)

    def process_response(self, req, resp, resource, req_succeeded: bool) -> None:
        started = getattr(req.context, "started", None)
        if started is None or not access_log.isEnabledFor(logging.INFO):
            return
        principal = getattr(req.context, "principal", None)
        line = json.dumps(
            {
                "requestId": req.context.request_id,
                "login": principal.login if principal else None,
                "method": req.method,
                "path": req.path,
                "status": resp.status_code,
                "rows": getattr(req.context, "rows", None),
                "ms": round((time.perf_counter() - started) * 1000, 1),
            }
        )
        # The record made directly: Logger.info would also walk the stack for the
        # caller's file and line, which an access line does not need.
        access_log.handle(
            access_log.makeRecord(access_log.name, logging.INFO, __file__, 0, line, None, None)
        )


class Cors:
    """falcon-cors, also on answers that never reached a resource (unknown routes)."""

    def __init__(self, cors) -> None:
        self.cors = cors

    def process_resource(self, req: falcon.Request, resp, resource, params) -> None:
        req.context.cors_done = True
        self.cors.process(req, resp, resource)

    def process_response(self, req: falcon.Request, resp, resource, req_succeeded: bool) -> None:
        if not getattr(req.context, "cors_done", False):
            self.cors.process(req, resp, resource)


def _public(resource) -> bool:
    return resource is None or getattr(resource, "public", False)


class Authentication:
    """Decodes the bearer token once per request and puts the principal on `req.context`."""

    def __init__(self, tokens: BearerTokens, principals: PrincipalLoader) -> None:
        self.tokens = tokens
        self.principals = principals

    def process_resource(self, req: falcon.Request, resp, resource, params) -> None:
        if req.method == "OPTIONS" or _public(resource):
            return
        header = req.get_header("Authorization") or ""
        links = getattr(resource, "signed_links", None)  # file routes (ispyb_falcon/files)
        if links is not None and not header and "sig" in req.params:
            req.context.principal = links.principal(req, resource.template, params)
            return
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized(
                "This route needs 'Authorization: Bearer <token>' (see /auth/login)."
            )
        try:
            claims = self.tokens.decode(token.strip())
        except InvalidToken as exc:
            raise unauthorized(f"The token was refused: {exc}.") from None
        except AuthenticatorUnavailable:  # logged by the verifier, with the reason
            raise unavailable(
                "The signing keys of the token's issuer cannot be read; try again shortly."
            ) from None
        req.context.principal = self.principals.principal(claims)


class Authorization:
    """Checks the route's declared need for this method against the principal's roles."""

    def process_resource(self, req: falcon.Request, resp, resource, params) -> None:
        if req.method == "OPTIONS" or _public(resource):
            return
        need = getattr(resource, "needs", {}).get(req.method)
        if need is None or need is ANY:
            return  # an undeclared method is Falcon's 405; ANY: the token sufficed
        if not req.context.principal.roles & need:
            raise forbidden(
                f"{req.method} {req.path} needs one of the roles: {', '.join(sorted(need))}."
            )
