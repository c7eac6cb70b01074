"""Proposals, their sessions (visits) and who belongs to them."""

from __future__ import annotations

from ..query.filters import beamline_group, mine, when
from ..query.visibility import PROPOSAL, SESSION, Via
from .declare import Count, Nested, Parent, Route, routes, writers
from .ids import proposal_match, session_match

ROUTES = routes(
    "proposals",
    Route(
        "Proposal",
        "/proposals",
        PROPOSAL,
        doc="""Proposals
        A proposal is a research group's allocation of beam time (`mx12345`: code + number).
        The id in the path is the `proposalId` or the name; `search` matches the name and title.""",
        search=(lambda t: t.c.proposalCode.concat(t.c.proposalNumber), "title"),
        match=proposal_match,
        embeds=(Count("sessions", "BLSession", (Via("proposalId", "Proposal"),)),),
    ),
    Route(
        "ProposalHasPerson",
        "/proposals/{id}/persons",
        (Via("proposalId", "Proposal"),),
        doc="""Members of a proposal
        The people linked to a proposal and their role in it; the id in the path is the `personId`.""",
        nested=Nested(parent="/proposals", column="proposalId", key="personId"),
    ),
    Route(
        "BLSession",
        "/sessions",
        SESSION,
        doc="""Sessions (visits)
        A session is one visit of a proposal to a beamline (`mx12345-3`). The id in the path is the
        `sessionId` or the visit name; `?proposal=` lists the visits of one proposal,
        `?when=current|upcoming|previous` those around, after or before now,
        `?beamLineGroup=` those on one group's beamlines and `?mine=true` the caller's own.""",
        writers=writers("acquisition"),
        search=("beamLineName", "comments"),
        match=session_match,
        embeds=(
            Parent("proposal", (Via("proposalId", "Proposal"),)),
            Count(
                "dataCollections",
                "DataCollection",
                (
                    Via("dataCollectionGroupId", "DataCollectionGroup"),
                    Via("sessionId", "BLSession"),
                ),
            ),
            Count("dataCollectionGroups", "DataCollectionGroup", (Via("sessionId", "BLSession"),)),
        ),
        filters=(when(), beamline_group(), mine()),
    ),
    Route(
        "Session_has_Person",
        "/sessions/{id}/persons",
        (Via("sessionId", "BLSession"),),
        doc="""Members of a session
        The people registered on one visit and their role; the id in the path is the `personId`.""",
        nested=Nested(parent="/sessions", column="sessionId", key="personId"),
    ),
)
