"""Shipments and what they carry: dewars, containers, samples, crystals, proteins."""

from __future__ import annotations

from ..query.visibility import Via
from .declare import Count, Parent, Route, routes, writers

USERS = writers("user")

ROUTES = routes(
    "shipping",
    # Not served, but rows of a proposal: a foreign key may name only those the caller sees.
    Route("BLSubSample", None, (Via("blSampleId", "BLSample"),)),
    Route("DewarRegistry", None, (Via("proposalId", "Proposal"),)),
    Route("Screen", None, (Via("proposalId", "Proposal"),)),
    Route("ScreenComponentGroup", None, (Via("screenId", "Screen"),)),
    Route(
        "Shipping",
        "/shippings",
        (Via("proposalId", "Proposal"),),
        doc="""Shipments
        A shipment of dewars from a lab to the facility, for one proposal.""",
        writers=USERS,
        search=("shippingName", "comments"),
        refers=(Via("laboratoryId", "Laboratory"),),
        embeds=(
            Parent("proposal", (Via("proposalId", "Proposal"),)),
            Count("dewars", "Dewar", (Via("shippingId", "Shipping"),)),
        ),
    ),
    Route(
        "Dewar",
        "/dewars",
        (Via("shippingId", "Shipping"),),
        doc="""Dewars
        The transport dewars (or toolboxes, parcels) of a shipment.""",
        writers=USERS,
        search=("code", "barCode"),
        embeds=(
            Parent("shipping", (Via("shippingId", "Shipping"),)),
            Count("containers", "Container", (Via("dewarId", "Dewar"),)),
        ),
    ),
    Route(
        "Container",
        "/containers",
        (Via("dewarId", "Dewar"),),
        doc="""Containers
        Pucks, plates and other holders inside a dewar; beamline software updates their
        positions in the sample changer.""",
        writers=writers("user", "acquisition"),
        search=("code", "barcode"),
        embeds=(
            Parent("dewar", (Via("dewarId", "Dewar"),)),
            Parent("shipping", (Via("dewarId", "Dewar"), Via("shippingId", "Shipping"))),
            Count("samples", "BLSample", (Via("containerId", "Container"),)),
        ),
    ),
    Route(
        "Protein",
        "/proteins",
        (Via("proposalId", "Proposal"),),
        doc="""Proteins
        The macromolecules a proposal works on (name, acronym, sequence, safety level).""",
        writers=USERS,
        search=("name", "acronym"),
        refers=(Via("personId", "Person"),),
    ),
    Route(
        "Crystal",
        "/crystals",
        (Via("proteinId", "Protein"),),
        doc="""Crystals
        Crystal forms of a protein (space group, cell).""",
        writers=USERS,
        search=("name",),
        embeds=(
            Parent("protein", (Via("proteinId", "Protein"),)),
            Count("samples", "BLSample", (Via("crystalId", "Crystal"),)),
        ),
    ),
    Route(
        "BLSample",
        "/samples",
        (Via("crystalId", "Crystal"), Via("containerId", "Container")),
        doc="""Samples
        Mounted samples: a crystal in a container position.""",
        writers=USERS,
        search=("name", "code"),
        embeds=(
            Parent("crystal", (Via("crystalId", "Crystal"),)),
            Parent("protein", (Via("crystalId", "Crystal"), Via("proteinId", "Protein"))),
            Parent("container", (Via("containerId", "Container"),)),
            Count(
                "dataCollections", "DataCollection", (Via("BLSAMPLEID", "BLSample", "blSampleId"),)
            ),
        ),
    ),
)
