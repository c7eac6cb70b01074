"""People, their laboratories, and the lab contacts proposals ship from."""

from __future__ import annotations

from ..query.visibility import Me, Via
from .declare import Route, routes, writers

ROUTES = routes(
    "people",
    Route(
        "Person",
        "/persons",
        (
            Me("personId"),
            Via("personId", "Proposal", "personId"),
            Via("personId", "ProposalHasPerson", "personId"),
            Via("personId", "Session_has_Person", "personId"),
        ),
        doc="""People
        Yourself, and the members of the proposals and sessions you can see.""",
        search=("familyName", "givenName", "login"),
    ),
    Route(
        "Laboratory",
        "/laboratories",
        (Via("laboratoryId", "Person", "laboratoryId"),),
        doc="""Laboratories
        The home institutes of the people you can see.""",
        search=("name", "city", "country"),
    ),
    Route(
        "LabContact",
        "/labcontacts",
        (Via("proposalId", "Proposal"),),
        doc="""Lab contacts
        The people a proposal ships samples from and returns them to.""",
        writers=writers("user"),
        search=("cardName",),
    ),
)
