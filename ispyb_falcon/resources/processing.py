"""Automatic processing results: programs, integrations, scaling and their statistics."""

from __future__ import annotations

from ..query.visibility import Via
from .declare import Route, routes, writers

PROCESSING = writers("processing")

ROUTES = routes(
    "processing",
    Route(
        "ProcessingJob",
        None,  # not served; declares how programs reach their data collection
        (Via("dataCollectionId", "DataCollection"),),
    ),
    Route(
        "AutoProcProgram",
        "/autoprocprograms",
        (
            Via("autoProcProgramId", "AutoProcIntegration"),
            Via("processingJobId", "ProcessingJob"),
        ),
        doc="""Processing programs
        One run of a processing pipeline (command line, status, timings).""",
        writers=PROCESSING,
        search=("processingPrograms", "processingMessage"),
        refers=(Via("processingPipelineId", "ProcessingPipeline"),),
    ),
    Route(
        "AutoProcIntegration",
        "/autoprocintegrations",
        (Via("dataCollectionId", "DataCollection"),),
        doc="""Integrations
        Integration results of a program on a data collection (refined geometry, cell).""",
        writers=PROCESSING,
    ),
    Route(
        "AutoProc",
        "/autoprocs",
        (Via("autoProcProgramId", "AutoProcProgram"),),
        doc="""Processing results
        Space group and refined cell found by a program.""",
        writers=PROCESSING,
        search=("spaceGroup",),
    ),
    Route(
        "AutoProcScaling",
        "/autoprocscalings",
        (Via("autoProcId", "AutoProc"),),
        doc="""Scalings
        A scaling of a processing result.""",
        writers=PROCESSING,
    ),
    Route(
        "AutoProcScalingStatistics",
        "/autoprocscalingstatistics",
        (Via("autoProcScalingId", "AutoProcScaling"),),
        doc="""Scaling statistics
        Overall, inner and outer shell statistics (completeness, Rmerge, CC1/2, I/sigma).""",
        writers=PROCESSING,
    ),
    Route(
        "AutoProcProgramAttachment",
        "/autoprocprogramattachments",
        (Via("autoProcProgramId", "AutoProcProgram"),),
        doc="""Program attachments
        Log, result and graph files written by a program.""",
        writers=PROCESSING,
        search=("fileName",),
    ),
    Route(
        "AutoProcProgramMessage",
        "/autoprocprogrammessages",
        (Via("autoProcProgramId", "AutoProcProgram"),),
        doc="""Program messages
        Errors, warnings and notes a program reported.""",
        writers=PROCESSING,
        search=("message",),
    ),
)
