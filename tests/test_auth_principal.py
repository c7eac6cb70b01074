"""The principal behind a verified token: built once, and never staler than the loader's ttl."""

from __future__ import annotations

import sqlalchemy as sa

from ispyb_falcon.auth import principal as principal_module
from ispyb_falcon.auth.principal import PrincipalLoader
from ispyb_falcon.config import BeamlineGroup


def tables() -> tuple[sa.MetaData, dict[str, sa.Table]]:
    md = sa.MetaData()
    found = {
        "Person": sa.Table(
            "Person",
            md,
            sa.Column("personId", sa.Integer, primary_key=True),
            sa.Column("login", sa.String(45)),
        ),
        "UserGroup_has_Person": sa.Table(
            "UserGroup_has_Person",
            md,
            sa.Column("userGroupId", sa.Integer),
            sa.Column("personId", sa.Integer),
        ),
        "UserGroup_has_Permission": sa.Table(
            "UserGroup_has_Permission",
            md,
            sa.Column("userGroupId", sa.Integer),
            sa.Column("permissionId", sa.Integer),
        ),
        "Permission": sa.Table(
            "Permission",
            md,
            sa.Column("permissionId", sa.Integer),
            sa.Column("type", sa.String(15)),
        ),
    }
    return md, found


def test_principal_is_reused_within_ttl_and_rebuilt_after(monkeypatch):
    md, t = tables()
    engine = sa.create_engine("sqlite://")
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(t["Person"].insert(), {"personId": 7, "login": "dan"})
        conn.execute(t["Permission"].insert(), {"permissionId": 1, "type": "mx_admin"})
        conn.execute(t["UserGroup_has_Permission"].insert(), {"userGroupId": 3, "permissionId": 1})
    clock = [1000.0]
    monkeypatch.setattr(principal_module.time, "monotonic", lambda: clock[0])
    loader = PrincipalLoader(engine, t, [BeamlineGroup("mx", "mx_admin", ("i03",))], ttl_seconds=30)
    claims = {"sub": "dan", "roles": ["user"], "exp": 2_000_000_000}

    first = loader.principal(claims)
    assert (first.person_id, first.permissions) == (7, frozenset())
    assert loader.principal(dict(claims)) is first  # same claims: the same object

    with engine.begin() as conn:  # dan joins the group that has mx_admin
        conn.execute(t["UserGroup_has_Person"].insert(), {"userGroupId": 3, "personId": 7})
    clock[0] += 29
    assert loader.principal(claims) is first  # still within the ttl
    clock[0] += 2
    again = loader.principal(claims)
    assert again.permissions == frozenset({"mx_admin"})
    assert again.staff_beamlines == frozenset({"i03"})


def test_other_roles_or_beamlines_in_a_token_give_another_principal():
    md, t = tables()
    engine = sa.create_engine("sqlite://")
    md.create_all(engine)
    loader = PrincipalLoader(engine, t, [])
    base = {"sub": "svc", "roles": ["service"], "exp": 2_000_000_000}
    a = loader.principal(base)
    b = loader.principal({**base, "beamlines": ["i04"]})
    c = loader.principal({**base, "roles": ["service", "admin"]})
    assert a.service_beamlines is None and b.service_beamlines == frozenset({"i04"})
    assert c.roles == frozenset({"service", "admin"}) and a.roles == frozenset({"service"})
