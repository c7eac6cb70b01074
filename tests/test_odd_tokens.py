"""Signed tokens with claims the server never writes: a 401, never a 500, and the same on reuse.

The tokens are signed with the test server's own secret, so only their
claims are odd: the server verifies a token once and then trusts what it
remembered, so a claim that passes verification must be of a type every
later use can take, and must mean what it says (an empty beamline limit
limits to nothing).
"""

from __future__ import annotations

import time

import pytest

from .conftest import PREFIX
from .test_security_tokens import WHOAMI, assert_refused, bearer, claims, hs256

NOW = int(time.time())
BEAMLINE_I03 = {"beamlines": ["i03"]}
NO_BEAMLINE = {"beamlines": []}


ODD = {
    "exp as a numeric string": {"exp": str(NOW + 600)},
    "exp past year 9999": {"exp": 10**20},
    "exp with a fraction": {"exp": NOW + 600.5},
    "exp true": {"exp": True},
    "iat as a numeric string": {"iat": str(NOW)},
    "iat before 1970": {"iat": -1},
    "nbf as a numeric string": {"nbf": str(NOW)},
    "nbf a list": {"nbf": [NOW]},
}


@pytest.mark.parametrize("odd", ODD.values(), ids=ODD.keys())
def test_time_claims_other_than_whole_seconds_are_refused_every_time(client, odd):
    """A numeric-string exp was accepted once, then a 500 on reuse; exp = 10**20 was a 500."""
    token = hs256(claims(**odd))
    for _ in range(2):
        assert_refused(client, token)


def test_a_sub_that_is_no_text_is_refused_every_time(client):
    """JSON may escape half a surrogate pair: whoami could not answer with it (a 500)."""
    token = hs256(claims(sub="pi_\ud800"))
    for _ in range(2):
        assert_refused(client, token)


def test_whole_seconds_up_to_year_9999_are_accepted(client):
    last = 253402300799  # 9999-12-31T23:59:59Z
    token = hs256(claims(exp=last, nbf=NOW - 10))
    for _ in range(2):
        r = client.simulate_get(WHOAMI, headers=bearer(token))
        assert r.status_code == 200, r.text
        assert r.json["expiresAt"] == "9999-12-31T23:59:59Z"


def visible(client, token: str, path: str, **params) -> int:
    r = client.simulate_get(PREFIX + path, params=params, headers=bearer(token))
    assert r.status_code == 200, r.text
    return r.json["total"]


def test_a_service_limited_to_no_beamline_sees_and_writes_nothing(client, auth):
    """`"beamlines": []` read as no limit at all: the token saw every proposal."""
    service = claims(sub="svc-acquisition", roles=["acquisition"])
    unlimited, i03, none = (
        hs256({**service, **limit}) for limit in ({}, BEAMLINE_I03, NO_BEAMLINE)
    )
    assert visible(client, unlimited, "/proposals") > visible(client, i03, "/proposals") > 0
    for path in ("/proposals", "/sessions", "/datacollections", "/robotactions"):
        assert visible(client, none, path) == 0, path
    session = client.simulate_get(f"{PREFIX}/sessions/mx1001-1", headers=auth("admin1")).json
    r = client.simulate_post(
        f"{PREFIX}/datacollectiongroups",
        json={"sessionId": session["sessionId"], "experimentType": "OSC"},
        headers=bearer(none),
    )
    assert r.status_code == 422, r.text
    r = client.simulate_get(WHOAMI, headers=bearer(none))
    assert r.json["beamlines"] == [] and r.json["roles"] == ["acquisition"]
