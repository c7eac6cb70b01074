"""Cached list statements: one plan per request shape, never another caller's values."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from ispyb_falcon.query.statements import ListPlans, bind_values

from .conftest import PREFIX


def _names(r):
    return sorted(p["proposalCode"] + p["proposalNumber"] for p in r.json["results"])


def test_alternating_callers_on_one_shape_each_see_their_own(client, auth):
    for _ in range(3):
        anna = client.simulate_get(
            f"{PREFIX}/proposals", params={"limit": "10"}, headers=auth("pi_anna")
        )
        eve = client.simulate_get(
            f"{PREFIX}/proposals", params={"limit": "10"}, headers=auth("pi_eve")
        )
        fred = client.simulate_get(
            f"{PREFIX}/proposals", params={"limit": "10"}, headers=auth("user_fred")
        )
        assert _names(anna) == ["mx1001", "mx1002"]
        assert _names(eve) == ["cm2001", "in2002"]
        assert fred.json["total"] == 0


def test_alternating_filter_values_on_one_shape(client, auth):
    h = auth("admin1")
    for visit, other in (("mx1001-1", "mx1001-2"), ("mx1001-2", "mx1001-1")):
        a = client.simulate_get(
            f"{PREFIX}/datacollections", params={"session": visit}, headers=h
        ).json
        b = client.simulate_get(
            f"{PREFIX}/datacollections", params={"session": other}, headers=h
        ).json
        assert a["total"] == b["total"] == 4
        assert {r["dataCollectionId"] for r in a["results"]}.isdisjoint(
            r["dataCollectionId"] for r in b["results"]
        )


def test_a_plan_refuses_to_run_with_a_value_missing():
    table = sa.table("T", sa.column("id"), sa.column("owner"))
    plans = ListPlans(table, ["id"])
    from ispyb_falcon.query.params import ListQuery

    plan = plans.get(
        ("shape",),
        lambda: (["id"], [table.c.owner == sa.bindparam("me", 1)], ListQuery(), False, False),
    )
    assert plan.names == {"me", "limit", "offset"}
    assert plans.get(("shape",), lambda: pytest.fail("built twice")) is plan
    with pytest.raises(RuntimeError, match="me"):
        bind_values(plan, {"limit": 1, "offset": 0})
