"""A password-less authenticator for development and the demo.

It lets a newcomer log in as any role without setting anything up. It checks
nothing, so the server refuses it in production.
"""

from __future__ import annotations

from collections.abc import Mapping

from .authenticators import Authenticator, Identity


class DummyAuthenticator(Authenticator):
    """Accepts any non-empty password; the login's prefix picks the role."""

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        super().__init__(options or {})

    def authenticate(self, login: str, password: str) -> Identity | None:
        if not login or not password:
            return None
        if login.startswith("admin"):
            roles: tuple[str, ...] = ("admin",)
        elif login.startswith("manager"):
            roles = ("manager",)
        else:
            roles = ("user",)
        return Identity(login=login, roles=roles)
