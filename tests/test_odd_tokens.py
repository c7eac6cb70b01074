"""Signed tokens with claims the server never writes: a 401, never a 500, and the same on reuse.

The tokens are signed with the test server's own secret, so only their
claims are odd: the server verifies a token once and then trusts what it
remembered, so a claim that passes verification must be of a type every
later use can take.
"""

from __future__ import annotations

import time

import pytest

from .test_security_tokens import WHOAMI, assert_refused, bearer, claims, hs256

NOW = int(time.time())


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


def test_whole_seconds_up_to_year_9999_are_accepted(client):
    last = 253402300799  # 9999-12-31T23:59:59Z
    token = hs256(claims(exp=last, nbf=NOW - 10))
    for _ in range(2):
        r = client.simulate_get(WHOAMI, headers=bearer(token))
        assert r.status_code == 200, r.text
        assert r.json["expiresAt"] == "9999-12-31T23:59:59Z"
