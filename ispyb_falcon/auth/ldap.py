"""The `ldap` authenticator: bind as the user, read roles from group membership.

Binding as the user (rather than with a service account that can read
passwords) means the server needs no LDAP secret. The login is DN-escaped
before it goes into the template, so `*`, `,` or `=` in a login cannot point
the bind, or the group search, at someone else.

Options:
    url               ldap://host:389 or ldaps://host:636 (required)
    user_dn_template  e.g. uid={login},ou=people,dc=example,dc=org (required)
    role_groups       role=group DN pairs separated by ';', e.g.
                      admin=cn=ispyb-admins,ou=groups,dc=example,dc=org; manager=cn=...
    group_base        optional: search this subtree once for the user's groups
                      (otherwise each role group is read on its own)
    default_role      role for users in none of the role groups (default: user);
                      empty: such users are refused
    timeout           seconds for connecting and for each answer (default: 5)
    start_tls         upgrade ldap:// with StartTLS (default: false)
    ca_file           CA certificates (PEM) to check the server's certificate with
"""

from __future__ import annotations

import logging
import math
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from .authenticators import ROLES, Authenticator, AuthenticatorUnavailable, Identity

log = logging.getLogger(__name__)

INSTALL_HINT = "install ldap3 (pip install ispyb-falcon[ldap])"
# Result codes that mean "the directory could not answer", not "wrong password".
_UNAVAILABLE_CODES = {3, 11, 51, 52, 80}  # timeLimit, adminLimit, busy, unavailable, other
MAX_LOGIN_LENGTH = 256


def _import_ldap3() -> Any:
    """Import ldap3 only when LDAP is configured, so it stays an optional dependency."""
    try:
        import ldap3
        import ldap3.core.exceptions
        import ldap3.utils.conv
        import ldap3.utils.dn
    except ImportError:
        raise ValueError(INSTALL_HINT) from None
    return ldap3


class LdapAuthenticator(Authenticator):
    """Checks a password by binding to LDAP as the user; groups give the roles."""

    def __init__(self, options: Mapping[str, str]) -> None:
        super().__init__(options)
        self._ldap3 = _import_ldap3()
        self.url = self.option("url").strip()
        parts = urlsplit(self.url)
        if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
            raise ValueError(f"option 'url' must look like ldap://host:389, not {self.url!r}")
        try:
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise ValueError(f"option 'url' has a bad port: {self.url!r}") from None
        self.user_dn_template = self.option("user_dn_template").strip()
        if self.user_dn_template.count("{login}") != 1:
            raise ValueError("option 'user_dn_template' must contain {login} exactly once")
        # uid={login},ou=people,...: the directory spells the login in the uid attribute.
        first, _, _ = self.user_dn_template.partition(",")
        attribute, _, value = first.partition("=")
        self.login_attribute = attribute.strip() if value.strip() == "{login}" else None
        self.group_base = self.options.get("group_base", "").strip() or None
        self.role_groups = self._parse_role_groups(self.options.get("role_groups", ""))
        self.default_role = self.options.get("default_role", "user").strip()
        if self.default_role and self.default_role not in ROLES:
            raise ValueError(
                f"option 'default_role': unknown role {self.default_role!r}; "
                f"known: {', '.join(ROLES)}"
            )
        self.timeout = self.float_option("timeout", 5.0)
        self.start_tls = self.bool_option("start_tls", False)
        if self.start_tls and parts.scheme == "ldaps":
            raise ValueError("option 'start_tls' makes no sense with an ldaps:// url")
        self.ca_file = self.options.get("ca_file", "").strip() or None
        if self.group_base:
            self._check_dn("group_base", self.group_base)

    def _check_dn(self, key: str, dn: str) -> None:
        try:
            self._ldap3.utils.dn.parse_dn(dn)
        except Exception:
            raise ValueError(f"option {key!r}: {dn!r} is not a valid DN") from None

    def _parse_role_groups(self, text: str) -> list[tuple[str, str, str]]:
        """'role=DN; role=DN' -> [(role, DN, normalized DN)]."""
        groups = []
        for item in text.split(";"):
            item = item.strip()
            if not item:
                continue
            role, sep, dn = item.partition("=")
            role, dn = role.strip(), dn.strip()
            if not sep or not dn:
                raise ValueError(f"option 'role_groups': expected role=group DN, got {item!r}")
            if role not in ROLES:
                raise ValueError(
                    f"option 'role_groups': unknown role {role!r}; known: {', '.join(ROLES)}"
                )
            self._check_dn("role_groups", dn)
            groups.append((role, dn, self._normalize_dn(dn)))
        return groups

    def _normalize_dn(self, dn: str) -> str:
        """Case- and space-insensitive form, to compare group DNs the server returns."""
        rdns = self._ldap3.utils.dn.parse_dn(dn, escape=False, strip=True)
        return ",".join(f"{attr.lower()}={value.lower()}" for attr, value, _ in rdns)

    def user_dn(self, login: str) -> str:
        """The bind DN for `login`, with the login escaped as one RDN value."""
        return self.user_dn_template.replace("{login}", self._ldap3.utils.dn.escape_rdn(login))

    def authenticate(self, login: str, password: str) -> Identity | None:
        # An empty password would be an anonymous ("unauthenticated") bind that succeeds.
        if not login or not password:
            return None
        # The server ignores padding spaces in uid, so " alice" would bind as alice while
        # the rest of the API saw another login; refuse it (and control characters) up front.
        if len(login) > MAX_LOGIN_LENGTH or not login.isprintable() or login != login.strip():
            return None
        ldap3 = self._ldap3
        exc = ldap3.core.exceptions
        dn = self.user_dn(login)
        conn = self._connection(dn, password)
        try:
            try:
                conn.open()
                # Never send the password in clear because StartTLS quietly failed.
                if self.start_tls and not conn.start_tls():
                    raise AuthenticatorUnavailable(f"LDAP server {self.url} refused StartTLS")
                bound = conn.bind()
            except (
                exc.LDAPCommunicationError,
                exc.LDAPResponseTimeoutError,
                exc.LDAPStartTLSError,
                OSError,
            ) as e:
                raise AuthenticatorUnavailable(f"LDAP server {self.url} unreachable: {e}") from e
            if not bound:
                code = (conn.result or {}).get("result")
                if code in _UNAVAILABLE_CODES:
                    raise AuthenticatorUnavailable(
                        f"LDAP server {self.url} answered {conn.result.get('description')}"
                    )
                return None
            roles = self._roles(conn, dn)
            if roles:
                login = self._directory_login(conn, dn, login)
        finally:
            try:
                conn.unbind()
            except Exception:  # closing a dead connection must not hide the real outcome
                pass
        if not roles:
            return None
        return Identity(login=login, roles=roles)

    def _connection(self, dn: str, password: str) -> Any:
        ldap3 = self._ldap3
        tls = None
        if self.start_tls or self.url.lower().startswith("ldaps:"):
            tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=self.ca_file)
        server = ldap3.Server(self.url, connect_timeout=self.timeout, get_info=ldap3.NONE, tls=tls)
        return ldap3.Connection(
            server,
            user=dn,
            password=password,
            authentication=ldap3.SIMPLE,
            auto_bind=ldap3.AUTO_BIND_NONE,
            client_strategy=ldap3.SYNC,
            read_only=True,
            raise_exceptions=False,
            # ldap3 packs this into SO_RCVTIMEO as a C int: whole seconds only.
            receive_timeout=max(1, math.ceil(self.timeout)),
            auto_referrals=False,
        )

    def _roles(self, conn: Any, dn: str) -> tuple[str, ...]:
        """Roles from the role groups listing `dn` as member/uniqueMember, else the default."""
        ldap3 = self._ldap3
        exc = ldap3.core.exceptions
        escaped = ldap3.utils.conv.escape_filter_chars(dn)
        member_filter = f"(|(member={escaped})(uniqueMember={escaped}))"
        roles: list[str] = []
        try:
            if self.group_base:
                found = self._search(conn, self.group_base, ldap3.SUBTREE, member_filter)
                for role, _, normalized in self.role_groups:
                    if normalized in found and role not in roles:
                        roles.append(role)
            else:
                for role, group_dn, _ in self.role_groups:
                    if role not in roles and self._search(
                        conn, group_dn, ldap3.BASE, member_filter
                    ):
                        roles.append(role)
        except (exc.LDAPCommunicationError, exc.LDAPResponseTimeoutError, OSError) as e:
            raise AuthenticatorUnavailable(
                f"LDAP server {self.url} failed during group search: {e}"
            ) from e
        if not roles and self.default_role:
            roles.append(self.default_role)
        return tuple(roles)

    def _directory_login(self, conn: Any, dn: str, login: str) -> str:
        """The login as the directory spells it: `Alice` binds as uid=alice (the match
        ignores case), and Person.login, matched exactly, is alice."""
        if self.login_attribute is None:
            return login
        exc = self._ldap3.core.exceptions
        try:
            conn.search(
                dn,
                "(objectClass=*)",
                search_scope=self._ldap3.BASE,
                attributes=[self.login_attribute],
                time_limit=max(1, math.ceil(self.timeout)),
            )
        except (exc.LDAPCommunicationError, exc.LDAPResponseTimeoutError, OSError) as e:
            raise AuthenticatorUnavailable(
                f"LDAP server {self.url} failed reading {dn}: {e}"
            ) from e
        for entry in conn.response or ():
            if entry.get("type") != "searchResEntry":
                continue
            values = entry.get("attributes", {}).get(self.login_attribute) or ()
            for value in [values] if isinstance(values, str) else values:
                if isinstance(value, str) and value.casefold() == login.casefold():
                    return value
        return login

    def _search(self, conn: Any, base: str, scope: Any, search_filter: str) -> set[str]:
        """Normalized DNs of the matching entries; a refused search finds nothing."""
        ok = conn.search(
            base,
            search_filter,
            search_scope=scope,
            attributes=self._ldap3.NO_ATTRIBUTES,
            time_limit=max(1, math.ceil(self.timeout)),
        )
        if not ok:
            code = (conn.result or {}).get("result")
            if code in _UNAVAILABLE_CODES:
                raise AuthenticatorUnavailable(f"LDAP server {self.url} answered {conn.result}")
            if code not in (0, 32):  # 32: noSuchObject, the group is not there / not visible
                log.warning("LDAP group search under %r failed: %s", base, conn.result)
            return set()
        return {
            self._normalize_dn(entry["dn"])
            for entry in conn.response or ()
            if entry.get("type") == "searchResEntry"
        }
