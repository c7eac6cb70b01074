"""The demo's other processing pipelines: what a collection's processing page shows
beside the xia2/DIALS run every collection has (generator._processing).

In each session: the first collection also has an autoPROC run with two results (the
isotropic one and the STARANISO one, which reaches further and so is its best), the
second a fast_dp run that failed, the third an xia2 3dii run still going; the last two
have no results and reach their collection only by their ProcessingJob. Every value
follows from the collection's (no random draw), so the rest of the data set is the
same with or without them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

# (collection in the session, 1-based) -> pipeline
PIPELINES = {1: "autoPROC", 2: "fast_dp", 3: "xia2 3dii"}
# autoPROC's results: (name, factor on the collection's resolution)
AUTOPROC_RESULTS = (("autoPROC", 1.08), ("autoPROC STARANISO", 0.96))
# shell -> (rMerge, I/sigI, completeness, multiplicity)
SHELLS = {
    "overall": (0.071, 14.2, 99.4, 6.8),
    "innerShell": (0.031, 41.5, 99.9, 6.5),
    "outerShell": (1.12, 1.6, 97.2, 6.9),
}


def other_pipelines(
    batch: Any,
    slot: int,
    dc_id: int,
    space_group: str,
    cell: tuple[float, ...],
    ends: datetime,
    resolution: float,
) -> None:
    """Queue the pipeline of the collection at `slot` in its session, if it has one."""
    pipeline = PIPELINES.get(slot)
    if pipeline is None:
        return
    started = ends + timedelta(minutes=3)
    job = batch.add(
        "ProcessingJob", "processingJobId", dataCollectionId=dc_id, displayName=pipeline,
        recordTimestamp=ends, recipe=f"autoprocessing-{pipeline.split()[0].lower()}",
        automatic=1,
    )  # fmt: skip
    done = {"autoPROC": started + timedelta(minutes=31), "fast_dp": started + timedelta(minutes=2)}
    program = batch.add(
        "AutoProcProgram", "autoProcProgramId", processingCommandLine=pipeline,
        processingPrograms=pipeline,
        processingStatus={"autoPROC": 1, "fast_dp": 0}.get(pipeline),
        processingMessage={"autoPROC": "processing successful",
                           "fast_dp": "indexing failed"}.get(pipeline, "running"),
        processingStartTime=started, processingEndTime=done.get(pipeline),
        processingEnvironment="cluster=hamilton cpus=20", recordTimeStamp=started,
        processingJobId=job,
    )  # fmt: skip
    if pipeline == "autoPROC":
        _autoproc(batch, dc_id, program, space_group, cell, done[pipeline], resolution)


def _autoproc(
    batch: Any,
    dc_id: int,
    program: int,
    space_group: str,
    cell: tuple[float, ...],
    done: datetime,
    resolution: float,
) -> None:
    """One integration and two results, each scaled with its three shells."""
    a, b, c, alpha, beta, gamma = cell
    integration = batch.add(
        "AutoProcIntegration", "autoProcIntegrationId", dataCollectionId=dc_id,
        autoProcProgramId=program, startImageNumber=1, endImageNumber=3600,
        refinedDetectorDistance=None, refinedXBeam=None, refinedYBeam=None,
        cell_a=a, cell_b=b, cell_c=c, cell_alpha=alpha, cell_beta=beta, cell_gamma=gamma,
        recordTimeStamp=done, anomalous=0,
    )  # fmt: skip
    for n, (_name, factor) in enumerate(AUTOPROC_RESULTS):
        high = round(resolution * factor, 2)
        auto_proc = batch.add(
            "AutoProc", "autoProcId", autoProcProgramId=program, spaceGroup=space_group,
            refinedCell_a=round(a + 0.01 * n, 2), refinedCell_b=round(b + 0.01 * n, 2),
            refinedCell_c=round(c + 0.01 * n, 2), refinedCell_alpha=alpha,
            refinedCell_beta=beta, refinedCell_gamma=gamma, recordTimeStamp=done,
        )  # fmt: skip
        scaling = batch.add("AutoProcScaling", "autoProcScalingId", autoProcId=auto_proc,
                            recordTimeStamp=done)  # fmt: skip
        batch.add("AutoProcScaling_has_Int", "autoProcScaling_has_IntId",
                  autoProcScalingId=scaling, autoProcIntegrationId=integration,
                  recordTimeStamp=done)  # fmt: skip
        for shell, (r_merge, i_sig, complete, multiplicity) in SHELLS.items():
            batch.add(
                "AutoProcScalingStatistics", "autoProcScalingStatisticsId",
                autoProcScalingId=scaling, scalingStatisticsType=shell,
                resolutionLimitLow=round(high * 1.04, 2) if shell == "outerShell" else 48.5,
                resolutionLimitHigh=round(high * 2.7, 2) if shell == "innerShell" else high,
                rMerge=round(r_merge + 0.004 * n, 3), rMeasWithinIPlusIMinus=None,
                rMeasAllIPlusIMinus=None, rPimWithinIPlusIMinus=None, rPimAllIPlusIMinus=None,
                nTotalObservations=None, nTotalUniqueObservations=None,
                meanIOverSigI=round(i_sig - n, 1), completeness=round(complete - n, 1),
                multiplicity=multiplicity, anomalousCompleteness=None,
                anomalousMultiplicity=None, recordTimeStamp=done, anomalous=0, ccHalf=None,
                ccAnomalous=None, resIOverSigI2=None,
            )  # fmt: skip
