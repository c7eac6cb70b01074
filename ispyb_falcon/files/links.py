"""Signed links: a file route's URL a browser can load without a bearer token.

`POST /auth/sign` with `{"paths": [...]}` answers one URL per path, the path
with `?sig=...&exp=...`. `sig` is `<who>.<mac>`: `who` the signing caller
(login, roles, beamline limit) as base64url JSON, `mac` an HMAC-SHA256 over
(path, exp, who) with a key derived from the token signing key, so a link
is good for that path, that caller and until `exp` only. A file route given
`sig` and no `Authorization` header takes the caller from the link (the
Authentication middleware asks `principal`); what the row lets that caller
see is decided when the link is used, as for a token.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterable, Mapping

import falcon

from .. import serialize
from ..auth.principal import Principal, PrincipalLoader, principal
from ..auth.tokens import TokenService
from ..errors import unauthorized, unprocessable
from ..resources.bodies import read_json
from ..resources.generic import ANY
from ..resources.ids import integer

MAX_PATHS = 100  # paths signed by one request: a page of thumbnails, with room to spare
PURPOSE = b"ispyb-falcon signed file links v1"
_FIELD = re.compile(r"\\\{(\w+)\\\}")


def link_key(tokens: TokenService) -> bytes | None:
    """The links' own key, derived from what signs tokens (the HS256 secret or the private
    key), so that every worker of a site agrees on it; None where this server only checks
    tokens (a public key alone): it then signs no link."""
    s = tokens.settings
    material = s.secret if s.algorithm == "HS256" else s.private_key
    if not material:
        return None
    return hmac.new(material.encode(), PURPOSE, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def fill(template: str, params: Mapping[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: params[m.group(1)], template)


class Links:
    """Signs file-route paths for a caller, and takes the caller back from a signed URL."""

    def __init__(
        self,
        key: bytes,
        prefix: str,
        minutes: int,
        principals: PrincipalLoader,
        templates: Iterable[tuple[str, tuple[int, ...]]],
    ) -> None:
        self.key = key
        self.prefix = prefix
        self.seconds = minutes * 60
        self.principals = principals
        # Each file route as a pattern (ids are integers) and the numbers its {n} takes.
        self.patterns = [
            (re.compile("^" + _FIELD.sub(r"(?P<\1>[0-9]{1,18})", re.escape(t)) + "$"), numbers)
            for t, numbers in templates
        ]

    def _mac(self, path: str, exp: int, who: str) -> str:
        message = json.dumps([path, exp, who]).encode()
        return _b64(hmac.new(self.key, message, hashlib.sha256).digest())

    def file_path(self, text: str) -> str | None:
        """The path below the prefix if `text` (with or without the prefix) is a file route's."""
        if self.prefix and text.startswith(self.prefix + "/"):
            text = text[len(self.prefix) :]
        for pattern, numbers in self.patterns:
            m = pattern.match(text)
            if m and (not numbers or int(m.groupdict().get("n", 0)) in numbers):
                return text
        return None

    def sign(self, path: str, p: Principal, now: float) -> tuple[str, int]:
        """(the URL, its expiry): not after the caller's own token expires."""
        exp = int(now) + self.seconds
        if p.expires_at:
            exp = min(exp, p.expires_at)
        limit = None if p.service_beamlines is None else sorted(p.service_beamlines)
        who = _b64(serialize.dumps([p.login, sorted(p.roles), limit]).encode())
        sig = f"{who}.{self._mac(path, exp, who)}"
        return f"{self.prefix}{path}?sig={sig}&exp={exp}", exp

    def principal(self, req: falcon.Request, template: str, params: Mapping[str, str]) -> Principal:
        """The caller who signed this request's URL, or 401."""
        sig, exp = req.params.get("sig"), req.params.get("exp")
        if not isinstance(sig, str) or not isinstance(exp, str) or integer(exp) is None:
            raise unauthorized("A signed link needs one sig and one exp (see POST /auth/sign).")
        who, _, mac = sig.partition(".")
        expected = self._mac(fill(template, params), int(exp), who)
        if not hmac.compare_digest(mac.encode(), expected.encode()):
            raise unauthorized(
                "The link's signature does not match this path (see POST /auth/sign)."
            )
        if time.time() >= int(exp):
            raise unauthorized("The signed link expired; sign it again (POST /auth/sign).")
        try:
            login, roles, limit = json.loads(_unb64(who))
        except (ValueError, TypeError, binascii.Error):  # signed by this server: not expected
            raise unauthorized("The signed link is malformed.") from None
        claims = {"sub": login, "roles": roles, "exp": int(exp)}
        if limit is not None:
            claims["beamlines"] = limit
        return self.principals.principal(claims)


class Sign:
    """`POST /auth/sign` `{"paths": [...]}` -> `{"urls": [...], "expiresAt"}`."""

    needs = {"POST": ANY}

    def __init__(self, links: Links, max_body_bytes: int) -> None:
        self.links = links
        self.max_body_bytes = max_body_bytes

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req, self.max_body_bytes)
        paths = body.get("paths") if isinstance(body, dict) else None
        errors = []
        if not isinstance(body, dict):
            errors.append({"path": "$", "message": 'expected {"paths": [...]}'})
        else:
            errors += [
                {"path": f"$.{k}", "message": "unknown member (only paths)"}
                for k in body
                if k != "paths"
            ]
            if not isinstance(paths, list) or not 1 <= len(paths) <= MAX_PATHS:
                message = f"expected an array of 1 to {MAX_PATHS} paths"
                errors.append({"path": "$.paths", "message": message})
            else:
                for i, text in enumerate(paths):
                    if not isinstance(text, str) or self.links.file_path(text) is None:
                        errors.append(
                            {
                                "path": f"$.paths[{i}]",
                                "message": "not the path of a file route (e.g."
                                " /datacollections/12/snapshots/1); only files are signed",
                            }
                        )
        if errors:
            raise unprocessable("Only the paths of file routes may be signed.", errors)
        p = principal(req)
        now = time.time()
        signed = [self.links.sign(self.links.file_path(t), p, now) for t in paths]
        exp = min(e for _, e in signed)
        expires = dt.datetime.fromtimestamp(exp, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        resp.text = serialize.dumps({"urls": [u for u, _ in signed], "expiresAt": expires})
