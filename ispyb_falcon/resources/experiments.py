"""What happens at the beamline: data collections, images, scans, spectra, robot actions."""

from __future__ import annotations

from ..query.visibility import Via
from .declare import Count, Nested, Parent, Route, routes, writers

ACQUISITION = writers("acquisition")
GROUP = Via("dataCollectionGroupId", "DataCollectionGroup")
SESSION_OF_GROUP = Via("sessionId", "BLSession")

ROUTES = routes(
    "experiments",
    Route(
        "DataCollectionGroup",
        "/datacollectiongroups",
        (Via("sessionId", "BLSession"),),
        doc="""Data collection groups
        A group of data collections on one sample in one session (e.g. the sweeps of a MAD).""",
        writers=ACQUISITION,
        search=("comments",),
        embeds=(
            Parent("session", (SESSION_OF_GROUP,)),
            Parent("sample", (Via("blSampleId", "BLSample"),)),
            Count("dataCollections", "DataCollection", (GROUP,)),
        ),
    ),
    Route(
        "DataCollection",
        "/datacollections",
        (Via("dataCollectionGroupId", "DataCollectionGroup"),),
        doc="""Data collections
        One sweep of images with its beam and detector parameters; `?session=mx12345-3` lists a
        visit's collections.""",
        writers=ACQUISITION,
        search=("imagePrefix", "comments", "imageDirectory"),
        refers=(
            Via("SESSIONID", "BLSession", "sessionId"),
            Via("BLSAMPLEID", "BLSample", "blSampleId"),
        ),
        embeds=(
            Parent("group", (GROUP,)),
            Parent("session", (GROUP, SESSION_OF_GROUP)),
            Parent("sample", (Via("BLSAMPLEID", "BLSample", "blSampleId"),)),
            Parent("detector", (Via("detectorId", "Detector"),)),
            Count("images", "Image", (Via("dataCollectionId", "DataCollection"),)),
        ),
    ),
    Route(
        "DataCollectionComment",
        "/datacollections/{id}/comments",
        (Via("dataCollectionId", "DataCollection"),),
        doc="""Comments on a data collection
        Notes people leave on a collection; the id in the path is the `dataCollectionCommentId`.
        Whoever may see the collection lists and adds them (`personId` is set to the caller);
        only their author or an admin changes and deletes them.""",
        nested=Nested(
            parent="/datacollections", column="dataCollectionId", key="dataCollectionCommentId"
        ),
        author="personId",
        search=("comments",),
    ),
    Route(
        "DataCollectionFileAttachment",
        "/datacollections/{id}/attachments",
        (Via("dataCollectionId", "DataCollection"),),
        doc="""Files attached to a data collection
        Logs, snapshots and other files the beamline attached to a collection; the id in the
        path is the `dataCollectionFileAttachmentId`, and `.../{key}/file` serves the file.""",
        nested=Nested(
            parent="/datacollections",
            column="dataCollectionId",
            key="dataCollectionFileAttachmentId",
        ),
        writers=ACQUISITION,
        search=("fileFullPath",),
    ),
    Route(
        "Image",
        "/images",
        (Via("dataCollectionId", "DataCollection"),),
        doc="""Images
        The image files of a data collection.""",
        writers=ACQUISITION,
        search=("fileName",),
        embeds=(Parent("dataCollection", (Via("dataCollectionId", "DataCollection"),)),),
    ),
    Route(
        "ImageQualityIndicators",
        "/imagequalityindicators",
        (Via("dataCollectionId", "DataCollection"),),
        doc="""Image quality indicators
        Per-image spot counts and resolution estimates (keyed by dataCollectionId + imageNumber;
        list only).""",
        writers=writers("processing"),
        item=False,
        refers=(Via("autoProcProgramId", "AutoProcProgram"),),
    ),
    Route(
        "EnergyScan",
        "/energyscans",
        (Via("sessionId", "BLSession"),),
        doc="""Energy scans
        Absorption edge scans and their f'/f'' results.""",
        writers=ACQUISITION,
        search=("element", "comments"),
        embeds=(
            Parent("session", (Via("sessionId", "BLSession"),)),
            Parent("sample", (Via("blSampleId", "BLSample"),)),
        ),
    ),
    Route(
        "XFEFluorescenceSpectrum",
        "/xfespectra",
        (Via("sessionId", "BLSession"),),
        doc="""XRF spectra
        X-ray fluorescence spectra recorded during a session.""",
        writers=ACQUISITION,
        search=("filename", "comments"),
    ),
    Route(
        "RobotAction",
        "/robotactions",
        (Via("blsessionId", "BLSession", "sessionId"),),
        doc="""Robot actions
        Sample changer loads, unloads and other robot actions of a session.""",
        writers=ACQUISITION,
        search=("message", "sampleBarcode"),
    ),
)
