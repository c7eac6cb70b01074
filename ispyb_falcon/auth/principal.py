"""Who is calling: the token's claims joined with ISPyB's own people and permissions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from ..config import BeamlineGroup

SEE_ALL_ROLES = frozenset({"admin", "manager"})
SEE_ALL_PERMISSIONS = frozenset({"super_admin", "all_proposals"})
SERVICE_ROLES = frozenset({"acquisition", "processing"})


@dataclass(frozen=True)
class Principal:
    """The caller, as every route sees it (on `req.context.principal`)."""

    login: str
    roles: frozenset[str]
    person_id: int | None = None
    permissions: frozenset[str] = frozenset()
    staff_beamlines: frozenset[str] = frozenset()
    service_beamlines: frozenset[str] | None = None  # a service token limited to beamlines
    expires_at: int = 0

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @property
    def sees_all(self) -> bool:
        """Managers, admins, super_admin/all_proposals, and service accounts without a beamline limit."""
        if self.roles & SEE_ALL_ROLES or self.permissions & SEE_ALL_PERMISSIONS:
            return True
        return bool(self.roles & SERVICE_ROLES) and self.service_beamlines is None

    @property
    def beamlines(self) -> frozenset[str]:
        """Beamlines whose sessions this caller sees as staff (or as a limited service)."""
        return self.staff_beamlines | (self.service_beamlines or frozenset())

    def public(self) -> dict:
        return {
            "login": self.login,
            "personId": self.person_id,
            "roles": sorted(self.roles),
            "permissions": sorted(self.permissions),
            "beamlines": sorted(self.beamlines),
            "expiresAt": self.expires_at,
        }


def principal(req) -> Principal:
    """Who sent this request (the authentication middleware put it there)."""
    return req.context.principal


class PrincipalLoader:
    """One statement per login (cached briefly): person id and permission types."""

    def __init__(
        self,
        engine: sa.Engine,
        tables: Mapping[str, sa.Table],
        groups: Sequence[BeamlineGroup],
        ttl_seconds: float = 30.0,
        storable: Callable[[str], bool] = lambda login: True,
    ) -> None:
        self.engine = engine
        self.storable = storable
        self.groups = tuple(groups)
        self.ttl = ttl_seconds
        self._cache: dict[str, tuple[float, int | None, frozenset[str]]] = {}
        self._lock = threading.Lock()
        self._principals: dict[tuple, tuple[float, Principal]] = {}
        t = tables
        person, ugp, ugperm, perm = (
            t["Person"],
            t["UserGroup_has_Person"],
            t["UserGroup_has_Permission"],
            t["Permission"],
        )
        self._statement = (
            sa.select(person.c.personId, perm.c.type, person.c.login)
            .select_from(
                person.outerjoin(ugp, ugp.c.personId == person.c.personId)
                .outerjoin(ugperm, ugperm.c.userGroupId == ugp.c.userGroupId)
                .outerjoin(perm, perm.c.permissionId == ugperm.c.permissionId)
            )
            .where(person.c.login == sa.bindparam("login"))
        )

    def lookup(self, login: str) -> tuple[float, int | None, frozenset[str]]:
        """(when it was read, personId, permissions) of a login, read at most every `ttl` s."""
        now = time.monotonic()
        if not self.storable(login):  # no Person.login can hold it (MariaDB would refuse)
            return now, None, frozenset()
        with self._lock:
            hit = self._cache.get(login)
        if hit and now - hit[0] < self.ttl:
            return hit
        with self.engine.connect() as conn:
            rows = conn.execute(self._statement, {"login": login}).all()
        # The very login: MariaDB's collations also match `PI_ANNA` and `pi_anna ` to
        # pi_anna, which an authenticator may know as other accounts.
        rows = [r for r in rows if r[2] == login]
        found = (now, rows[0][0] if rows else None, frozenset(r[1] for r in rows if r[1]))
        with self._lock:
            if len(self._cache) > 10000:
                self._cache.clear()
            self._cache[login] = found
        return found

    def staff_for(self, permissions: frozenset[str]) -> frozenset[str]:
        return frozenset(b for g in self.groups if g.permission in permissions for b in g.beamlines)

    def principal(self, claims: dict) -> Principal:
        """The caller of a verified token: built once, then reused while its lookup is fresh."""
        limited = claims.get("beamlines")  # absent: no limit; a list, even empty: only those
        limit = None if limited is None else tuple(limited)
        key = (claims["sub"], tuple(claims.get("roles", ())), limit, claims["exp"])
        hit = self._principals.get(key)
        if hit and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        read_at, person_id, permissions = self.lookup(claims["sub"])
        built = Principal(
            login=claims["sub"],
            roles=frozenset(claims.get("roles", ())),
            person_id=person_id,
            permissions=permissions,
            staff_beamlines=self.staff_for(permissions),
            service_beamlines=None if limit is None else frozenset(limit),
            expires_at=int(claims.get("exp", 0)),
        )
        with self._lock:
            if len(self._principals) > 10000:
                self._principals.clear()
            self._principals[key] = (read_at, built)  # as fresh as the lookup it holds
        return built
