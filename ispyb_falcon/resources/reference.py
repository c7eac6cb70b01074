"""Reference data every signed-in caller reads: beamline setups and detectors."""

from __future__ import annotations

from ..query.visibility import REFERENCE
from .declare import Route, routes, writers

ROUTES = routes(
    "reference",
    Route(
        "BeamLineSetup",
        "/beamlinesetups",
        REFERENCE,
        doc="""Beamline setups
        Limits and optics of a beamline configuration.""",
        writers=writers("acquisition"),
        search=("beamlineName", "synchrotronName"),
    ),
    Route(
        "Detector",
        "/detectors",
        REFERENCE,
        doc="""Detectors
        Detector models, sizes and limits.""",
        search=("detectorModel", "detectorManufacturer", "localName"),
    ),
    # Lookup tables no route serves: any signed-in caller may name their rows in a
    # foreign key (a container's type, a protein's component type...).
    *(
        Route(table, None, REFERENCE)
        for table in (
            "BeamCalendar",
            "ComponentType",
            "ConcentrationType",
            "ContainerRegistry",
            "ContainerType",
            "ExperimentType",
            "Imager",
            "ProcessingPipeline",
            "Schedule",
        )
    ),
)
