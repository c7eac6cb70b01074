"""The human names of proposals (`mx12345`) and sessions (`mx12345-3`), as SQL matches.

The same functions serve an id in a path (`/proposals/mx12345`) and the
convenience filters (`?proposal=mx12345`, `?session=mx12345-3`). `parse_*`
reads the text into a kind (`id`, `name`, `visit`) and values; `*_where`
builds the predicate with those values as bind parameters named after a
prefix, so a cached statement can be run again with other values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import sqlalchemy as sa

_PROPOSAL = re.compile(r"^([A-Za-z]+)([0-9]+)$")
_VISIT = re.compile(r"^([A-Za-z]+[0-9]+)-([0-9]+)$")

Parsed = tuple[str, dict]  # (kind, values)


def integer(text: str) -> int | None:
    """A key or a visit number: at most 18 ASCII digits, which any database binds."""
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None


def parse_proposal(text: str) -> Parsed | None:
    """`141666` or `mx12345`; None when the text is neither."""
    if (n := integer(text)) is not None:
        return "id", {"id": n}
    m = _PROPOSAL.match(text)
    return ("name", {"code": m.group(1), "number": m.group(2)}) if m else None


def parse_session(text: str) -> Parsed | None:
    """`339525` or `mx12345-3`."""
    if (n := integer(text)) is not None:
        return "id", {"id": n}
    m = _VISIT.match(text)
    if not m or (proposal := parse_proposal(m.group(1))) is None:
        return None
    if (visit := integer(m.group(2))) is None:
        return None  # no visit has a number past 64 bits (SQLite could not even bind it)
    return "visit", {**proposal[1], "visit": visit}


def _bind(prefix: str, values: dict, name: str):
    return sa.bindparam(f"{prefix}_{name}", values[name])


def proposal_where(t: Mapping[str, sa.Table], parsed: Parsed, prefix: str) -> sa.ColumnElement:
    proposal = t["Proposal"]
    kind, values = parsed
    if kind == "id":
        return proposal.c.proposalId == _bind(prefix, values, "id")
    return sa.and_(
        proposal.c.proposalCode == _bind(prefix, values, "code"),
        proposal.c.proposalNumber == _bind(prefix, values, "number"),
    )


def session_where(t: Mapping[str, sa.Table], parsed: Parsed, prefix: str) -> sa.ColumnElement:
    session, proposal = t["BLSession"], t["Proposal"]
    kind, values = parsed
    if kind == "id":
        return session.c.sessionId == _bind(prefix, values, "id")
    named = proposal_where(t, ("name", values), prefix)
    return sa.and_(
        session.c.visit_number == _bind(prefix, values, "visit"),
        session.c.proposalId.in_(sa.select(proposal.c.proposalId).where(named)),
    )


def params(parsed: Parsed, prefix: str) -> dict:
    return {f"{prefix}_{k}": v for k, v in parsed[1].items()}


def proposal_match(t: Mapping[str, sa.Table], text: str) -> sa.ColumnElement | None:
    """An item path's proposal id or name, as a predicate (None: no such form)."""
    parsed = parse_proposal(text)
    return None if parsed is None else proposal_where(t, parsed, "item")


def session_match(t: Mapping[str, sa.Table], text: str) -> sa.ColumnElement | None:
    parsed = parse_session(text)
    return None if parsed is None else session_where(t, parsed, "item")


SCOPES = {
    "proposal": (parse_proposal, proposal_where),
    "session": (parse_session, session_where),
}
