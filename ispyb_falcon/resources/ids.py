"""The human names of proposals (`mx12345`) and sessions (`mx12345-3`), as SQL matches.

The same functions serve an id in a path (`/proposals/mx12345`) and the
convenience filters (`?proposal=mx12345`, `?session=mx12345-3`). Each takes
the reflected tables and the text, and returns a predicate on its table, or
None when the text is no id of that kind (the caller answers 404 or 400).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import sqlalchemy as sa

_PROPOSAL = re.compile(r"^([A-Za-z]+)([0-9]+)$")
_VISIT = re.compile(r"^([A-Za-z]+[0-9]+)-([0-9]+)$")


def integer(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None


def proposal_match(t: Mapping[str, sa.Table], text: str) -> sa.ColumnElement | None:
    """`141666` or `mx12345`."""
    proposal = t["Proposal"]
    if (n := integer(text)) is not None:
        return proposal.c.proposalId == n
    m = _PROPOSAL.match(text)
    if not m:
        return None
    return sa.and_(proposal.c.proposalCode == m.group(1), proposal.c.proposalNumber == m.group(2))


def session_match(t: Mapping[str, sa.Table], text: str) -> sa.ColumnElement | None:
    """`339525` or `mx12345-3`."""
    session, proposal = t["BLSession"], t["Proposal"]
    if (n := integer(text)) is not None:
        return session.c.sessionId == n
    m = _VISIT.match(text)
    if not m:
        return None
    named = proposal_match(t, m.group(1))
    return sa.and_(
        session.c.visit_number == int(m.group(2)),
        session.c.proposalId.in_(sa.select(proposal.c.proposalId).where(named)),
    )
