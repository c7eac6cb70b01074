"""The tables the API serves, plus the ones it needs to answer for them.

One list so that schema generation, the demo database and the drift check all
agree on what "the catalog" is.
"""

CATALOG_TABLES: tuple[str, ...] = (
    "Proposal",
    "ProposalHasPerson",
    "BLSession",
    "Session_has_Person",
    "Person",
    "Laboratory",
    "LabContact",
    "Shipping",
    "Dewar",
    "Container",
    "Protein",
    "Crystal",
    "BLSample",
    "DataCollectionGroup",
    "DataCollection",
    "DataCollectionComment",
    "Image",
    "ImageQualityIndicators",
    "EnergyScan",
    "XFEFluorescenceSpectrum",
    "RobotAction",
    "AutoProcProgram",
    "AutoProcIntegration",
    "AutoProc",
    "AutoProcScaling",
    "AutoProcScalingStatistics",
    "AutoProcProgramAttachment",
    "AutoProcProgramMessage",
    "AutoProcScaling_has_Int",
    "ProcessingJob",
    "BeamLineSetup",
    "Detector",
    "UserGroup",
    "UserGroup_has_Person",
    "UserGroup_has_Permission",
    "Permission",
)
