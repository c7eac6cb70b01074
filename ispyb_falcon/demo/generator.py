"""Deterministic demo data for ISPyB, at any scale.

``fill`` writes ``scale`` copies of the base data set declared in
``demo.people`` (people, proposals, sessions) and below (proteins, beamlines,
detectors). The same code fills the embedded SQLite file and a MariaDB loaded
with the official schema, so it names every NOT NULL column, leaves foreign keys
to tables outside the demo NULL and allocates primary keys itself: explicit ids
make whole chunks of copies insertable with one ``executemany`` per table.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ispyb_falcon.db import transaction
from ispyb_falcon.demo import people
from ispyb_falcon.demo.people import DemoProposal, DemoSession
from ispyb_falcon.demo.pipelines import other_pipelines

BASE_DATE = datetime(2026, 1, 5, 9, 0, 0)
SEED = 20260105
CHUNK = 50  # copies per transaction

# Parents before children: the order rows are inserted in.
TABLE_ORDER: tuple[str, ...] = (
    "Permission", "UserGroup", "UserGroup_has_Permission", "Detector", "BeamLineSetup",
    "Laboratory", "Person", "UserGroup_has_Person", "Proposal", "ProposalHasPerson",
    "BLSession", "Session_has_Person", "LabContact", "Shipping", "Dewar", "Container",
    "Protein", "Crystal", "BLSample", "DataCollectionGroup", "DataCollection",
    "DataCollectionComment", "DataCollectionFileAttachment", "Image",
    "ImageQualityIndicators", "ProcessingJob", "AutoProcProgram", "AutoProcIntegration",
    "AutoProc", "AutoProcScaling", "AutoProcScaling_has_Int", "AutoProcScalingStatistics",
    "AutoProcProgramAttachment", "AutoProcProgramMessage", "EnergyScan",
    "XFEFluorescenceSpectrum", "RobotAction",
)  # fmt: skip


class _Protein(NamedTuple):
    acronym: str
    name: str
    mass: float
    space_group: str
    cell: tuple[float, float, float, float, float, float]


class _Detector(NamedTuple):
    model: str
    pixels: tuple[int, int]
    local_name: str


class _Beamline(NamedTuple):
    detector: int  # index into DETECTORS
    operator: str
    focusing: str


# Two proteins per proposal, in proposal order; the acronyms never repeat inside a copy.
PROTEINS: tuple[_Protein, ...] = (
    _Protein("lyso", "Hen egg-white lysozyme", 14313.1, "P43212", (79.1, 79.1, 37.9, 90, 90, 90)),
    _Protein("thau", "Thaumatin I", 22205.0, "P41212", (57.8, 57.8, 150.2, 90, 90, 90)),
    _Protein("insu", "Bovine insulin", 5733.5, "I213", (78.1, 78.1, 78.1, 90, 90, 90)),
    _Protein("tryp", "Bovine trypsin", 23305.0, "P212121", (54.8, 58.5, 67.4, 90, 90, 90)),
    _Protein("protk", "Proteinase K", 28930.0, "P43212", (67.9, 67.9, 102.1, 90, 90, 90)),
    _Protein("xyli", "Glucose isomerase", 43225.0, "I222", (93.9, 99.6, 102.9, 90, 90, 90)),
    _Protein("therm", "Thermolysin", 34360.0, "P6122", (92.8, 92.8, 128.5, 90, 90, 120)),
    _Protein("cona", "Concanavalin A", 25580.0, "I222", (89.5, 86.7, 62.4, 90, 90, 90)),
)
DETECTORS: tuple[_Detector, ...] = (
    _Detector("Eiger2 XE 16M", (4148, 4362), "EIGER2 16M"),
    _Detector("Eiger2 XE 9M", (3108, 3262), "EIGER2 9M"),
)
BEAMLINES: dict[str, _Beamline] = {
    "i03": _Beamline(0, "Dan Whitfield", "KB mirrors"),
    "i04": _Beamline(1, "Dan Whitfield", "CRL transfocator"),
    "i24": _Beamline(1, "Ralf Flaig", "KB mirrors, microfocus"),
}
# PI login -> (name, organization, address, city, country, postcode, url)
LABORATORIES: dict[str, tuple[str, ...]] = {
    people.PI_ANNA: (
        "Kowalski Lab", "University of Oxford", "South Parks Road", "Oxford",
        "United Kingdom", "OX1 3QU", "https://www.bioch.ox.ac.uk",
    ),
    people.PI_EVE: (
        "Marchetti Lab", "Karolinska Institutet", "Solnavagen 9", "Stockholm",
        "Sweden", "171 65", "https://ki.se",
    ),
}  # fmt: skip
# Scaling shells: (rMerge, I/sigI, completeness, CC1/2) ranges and share of the reflections.
SHELLS: dict[str, tuple[tuple[float, float], ...]] = {
    "overall": ((0.05, 0.12), (8.0, 20.0), (98.0, 100.0), (0.995, 0.999), (1.0, 1.0)),
    "innerShell": ((0.02, 0.05), (25.0, 60.0), (99.0, 100.0), (0.998, 1.0), (0.05, 0.05)),
    "outerShell": ((0.6, 1.8), (1.0, 2.5), (95.0, 100.0), (0.3, 0.7), (0.05, 0.05)),
}
EXPERIMENTS = ("OSC", "SAD")
WAVELENGTH = {"OSC": 0.9763, "SAD": 0.9792}  # 12.7 keV; the Se K edge peak
SAMPLES_PER_CONTAINER, CONTAINERS_PER_DEWAR, DEWARS, IMAGES = 4, 2, 2, 5


class _Batch:
    """Rows of one chunk per table, the next free key per table, the copy's random stream."""

    def __init__(self, next_ids: dict[str, int]) -> None:
        self.next_ids = next_ids
        self.rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.rng = random.Random(SEED)

    def add(self, table: str, key: str | None = None, **row: Any) -> int:
        """Queue a row; with ``key``, give it the next id of ``table`` and return that id."""
        new_id = 0
        if key:
            new_id = self.next_ids[table]
            self.next_ids[table] = new_id + 1
            row = {key: new_id, **row}
        self.rows[table].append(row)
        return new_id

    def uniform(self, low: float, high: float, digits: int = 2) -> float:
        return round(self.rng.uniform(low, high), digits)


def _reference(batch: _Batch, k: int, when: datetime) -> tuple[dict[str, int], list[int]]:
    """Detectors and one BeamLineSetup per beamline: (setup id by beamline, detector ids)."""
    detectors = []
    for i, det in enumerate(DETECTORS, start=1):
        detectors.append(
            batch.add(
                "Detector", "detectorId", detectorType="Hybrid pixel",
                detectorManufacturer="Dectris", detectorModel=det.model,
                detectorPixelSizeHorizontal=0.075, detectorPixelSizeVertical=0.075,
                detectorSerialNumber=f"DEMO-{k}-{i}", detectorDistanceMin=120.0,
                detectorDistanceMax=1000.0, sensorThickness=0.45, detectorMode="Rotation",
                numberOfPixelsX=det.pixels[0], numberOfPixelsY=det.pixels[1],
                localName=det.local_name,
            )
        )  # fmt: skip
    setups = {}
    for name, line in BEAMLINES.items():
        setups[name] = batch.add(
            "BeamLineSetup", "beamLineSetupId", detectorId=detectors[line.detector],
            synchrotronMode="Top-up 300 mA", focusingOptic=line.focusing,
            monochromatorType="Si(111) DCM", setupDate=when, synchrotronName="Diamond",
            maxExposureTimePerImage=10.0, minExposureTimePerImage=0.002,
            recordTimeStamp=when, beamlineName=name, energyMin=5000.0, energyMax=25000.0,
            active=1,
        )  # fmt: skip
    return setups, detectors


def _persons(
    batch: _Batch, k: int, when: datetime, groups: dict[str, int]
) -> tuple[dict[str, int], dict[str, int]]:
    """Laboratories, Persons, memberships: (person id by base login, lab id by PI)."""
    labs = {}
    for pi, (name, org, address, city, country, postcode, url) in LABORATORIES.items():
        labs[pi] = batch.add(
            "Laboratory", "laboratoryId", name=name, address=address, city=city,
            country=country, url=url, organization=org, recordTimeStamp=when,
            postcode=postcode,
        )  # fmt: skip
    ids = {}
    for n, person in enumerate(people.PERSONS):
        login = people.login(person.login, k)
        ids[person.login] = batch.add(
            "Person", "personId", laboratoryId=labs.get(person.login),
            familyName=person.family_name, givenName=person.given_name, title=person.title,
            emailAddress=f"{login}@example.org", phoneNumber=f"+44 1235 77{n:02d}{k % 100:02d}",
            login=login, recordTimeStamp=when,
        )  # fmt: skip
        for group in person.groups:
            batch.add("UserGroup_has_Person", userGroupId=groups[group], personId=ids[person.login])
    return ids, labs


def _copy(batch: _Batch, k: int, groups: dict[str, int]) -> None:
    """Queue every row of copy ``k`` of the base data set."""
    batch.rng = random.Random(SEED + k)  # per copy: a copy's rows do not depend on chunking
    shift = timedelta(days=7 * (k % 52))
    when = BASE_DATE - timedelta(days=90) + shift
    site = _reference(batch, k, when)
    persons, labs = _persons(batch, k, when, groups)
    sessions_of: dict[str, list[DemoSession]] = defaultdict(list)
    for session in people.SESSIONS:
        sessions_of[session.proposal].append(session)
    for p, proposal in enumerate(people.PROPOSALS):
        _proposal(batch, k, shift, proposal, PROTEINS[2 * p : 2 * p + 2],
                  sessions_of[proposal.name], persons, labs[proposal.pi], site)  # fmt: skip


def _proposal(
    batch: _Batch,
    k: int,
    shift: timedelta,
    proposal: DemoProposal,
    proteins: Iterable[_Protein],
    sessions: list[DemoSession],
    persons: dict[str, int],
    lab: int,
    site: tuple[dict[str, int], list[int]],
) -> None:
    """A proposal with its members, sessions, lab contact, shipment and experiments."""
    setups, detectors = site
    number = people.proposal_number(proposal.number, k)
    name = f"{proposal.code}{number}"
    pi = persons[proposal.pi]
    start = BASE_DATE - timedelta(days=30) + shift
    if proposal.state == "Closed":
        start -= timedelta(days=365)
    proposal_id = batch.add(
        "Proposal", "proposalId", personId=pi, title=proposal.title,
        proposalCode=proposal.code, proposalNumber=str(number), bltimeStamp=start,
        proposalType="MX", state=proposal.state, startDate=start,
        endDate=start + timedelta(days=365),
    )  # fmt: skip
    for member, role in proposal.members:
        batch.add("ProposalHasPerson", "proposalHasPersonId", proposalId=proposal_id,
                  personId=persons[member], role=role)  # fmt: skip
    session_ids = []
    for session in sessions:
        begins = BASE_DATE + timedelta(days=session.day) + shift
        session_ids.append(
            batch.add(
                "BLSession", "sessionId", beamLineSetupId=setups[session.beamline],
                proposalId=proposal_id, startDate=begins, endDate=begins + timedelta(hours=48),
                beamLineName=session.beamline, scheduled=1, nbShifts=6,
                comments=f"{name}-{session.visit_number} on {session.beamline}",
                beamLineOperator=BEAMLINES[session.beamline].operator, bltimeStamp=begins,
                visit_number=session.visit_number, usedFlag=1,
                lastUpdate=begins + timedelta(hours=48), archived=0, purgedProcessedData=0,
            )
        )  # fmt: skip
        for visitor in session.visitors:
            batch.add("Session_has_Person", sessionId=session_ids[-1], personId=persons[visitor],
                      role="Team Member", remote=1)  # fmt: skip
    person = next(p for p in people.PERSONS if p.login == proposal.pi)
    contact = batch.add(
        "LabContact", "labContactId", personId=pi,
        cardName=f"{person.given_name} {person.family_name}", proposalId=proposal_id,
        defaultCourrierCompany="DHL", courierAccount=f"{960000000 + number}",
        billingReference=f"PO-{name}", dewarAvgCustomsValue=500,
        dewarAvgTransportValue=250, recordTimeStamp=start,
    )  # fmt: skip
    owner = _Owner(name, proposal_id, pi, lab, contact, start, session_ids[0])
    samples = _shipment(batch, owner, proteins)
    for session, session_id in zip(sessions, session_ids, strict=True):
        begins = BASE_DATE + timedelta(days=session.day) + shift
        _session(batch, session, f"{name}-{session.visit_number}", session_id, begins,
                 samples, detectors[BEAMLINES[session.beamline].detector], pi)  # fmt: skip


class _Owner(NamedTuple):
    """What a proposal's shipment hangs from."""

    name: str
    proposal_id: int
    pi: int
    lab: int
    contact: int
    start: datetime
    first_session: int


class _Sample(NamedTuple):
    id: int
    name: str
    protein: _Protein
    container: int
    location: int


def _shipment(batch: _Batch, owner: _Owner, proteins: Iterable[_Protein]) -> list[_Sample]:
    """Proteins, crystals, one shipping with its dewars, pucks and samples."""
    name, proposal_id, pi, lab, contact, start, first_session = owner
    crystals = []
    for protein in proteins:
        protein_id = batch.add(
            "Protein", "proteinId", proposalId=proposal_id, name=protein.name,
            acronym=protein.acronym, description=f"{protein.name}, demo stock",
            hazardGroup=1, containmentLevel=1, safetyLevel="GREEN",
            molecularMass=protein.mass, proteinType="protein", personId=pi,
            bltimeStamp=start, isCreatedBySampleSheet=0, **{"global": 0},
        )  # fmt: skip
        a, b, c, alpha, beta, gamma = protein.cell
        crystal_id = batch.add(
            "Crystal", "crystalId", proteinId=protein_id, name=f"{protein.acronym}-x1",
            spaceGroup=protein.space_group, morphology="tetragonal bipyramid",
            color="colourless", size_X=batch.uniform(0.05, 0.3), size_Y=batch.uniform(0.05, 0.3),
            size_Z=batch.uniform(0.02, 0.1), cell_a=a, cell_b=b, cell_c=c, cell_alpha=alpha,
            cell_beta=beta, cell_gamma=gamma, recordTimeStamp=start,
        )  # fmt: skip
        crystals.append((crystal_id, protein))
    shipped = start + timedelta(days=20)
    shipping_id = batch.add(
        "Shipping", "shippingId", proposalId=proposal_id, shippingName=f"{name} shipment 1",
        deliveryAgent_agentName="DHL", deliveryAgent_shippingDate=shipped.date(),
        deliveryAgent_deliveryDate=(shipped + timedelta(days=2)).date(),
        deliveryAgent_agentCode=f"DHL{proposal_id % 100000:05d}", shippingStatus="at facility",
        bltimeStamp=shipped, laboratoryId=lab, isStorageShipping=0, creationDate=shipped,
        comments="Please keep cold", sendingLabContactId=contact, returnLabContactId=contact,
        returnCourier="DHL", shippingType="Dewar", SAFETYLEVEL="Green", source="demo",
    )  # fmt: skip
    samples: list[_Sample] = []
    per_crystal = [0] * len(crystals)
    for d in range(1, DEWARS + 1):
        dewar_id = batch.add(
            "Dewar", "dewarId", shippingId=shipping_id, code=f"{name}-d{d}",
            storageLocation="i03 stores", dewarStatus="at facility", bltimeStamp=shipped,
            isStorageDewar=0, barCode=f"DEMO-{name}-D{d}", firstExperimentId=first_session,
            customsValue=500, transportValue=250, type="Dewar",
            facilityCode=f"DLS-MX-{proposal_id % 10000:04d}{d}", weight=batch.uniform(18, 24, 1),
            source="demo",
        )  # fmt: skip
        for c in range(1, CONTAINERS_PER_DEWAR + 1):
            puck = (d - 1) * CONTAINERS_PER_DEWAR + c
            container_id = batch.add(
                "Container", "containerId", dewarId=dewar_id, code=f"{name}-puck{puck}",
                containerType="Puck", capacity=16, containerStatus="at facility",
                bltimeStamp=shipped, barcode=f"DEMO-{name}-P{puck}", sessionId=first_session,
                ownerId=pi, requestedReturn=0, priorityPipelineId=None, source="demo",
            )  # fmt: skip
            for location in range(1, SAMPLES_PER_CONTAINER + 1):
                which = (location - 1) % len(crystals)
                crystal_id, protein = crystals[which]
                per_crystal[which] += 1
                sample = f"{protein.acronym}-x1-{per_crystal[which]}"
                sample_id = batch.add(
                    "BLSample", "blSampleId", crystalId=crystal_id, containerId=container_id,
                    name=sample, location=str(location), loopType="Nylon", loopLength=0.1,
                    blSampleStatus="ready", isInSampleChanger=0, recordTimeStamp=shipped,
                    source="demo",
                )  # fmt: skip
                samples.append(_Sample(sample_id, sample, protein, puck, location))
    return samples


def _session(
    batch: _Batch,
    session: DemoSession,
    visit: str,
    session_id: int,
    begins: datetime,
    samples: list[_Sample],
    detector_id: int,
    pi: int,
) -> None:
    """Robot actions, scans, data collection groups and what hangs from them; the PI's
    comment on the visit's first data collection."""
    root = f"/dls/{session.beamline}/data/{begins.year}/{visit}/"
    first = samples[(2 * (session.visit_number - 1)) % len(samples)]
    troubled = session.visit_number == 2  # a stopped collection, a failed processing and unload
    for action, minutes in (("LOAD", 10), ("UNLOAD", 290)):
        at = begins + timedelta(minutes=minutes)
        failed = troubled and action == "UNLOAD"
        batch.add(
            "RobotAction", "robotActionId", blsessionId=session_id, blsampleId=first.id,
            actionType=action, startTimestamp=at, endTimestamp=at + timedelta(seconds=42),
            status="ERROR" if failed else "SUCCESS",
            message="Sample unload failed: gripper error" if failed else f"Sample {action.lower()}ed",
            containerLocation=first.location, dewarLocation=first.container,
        )  # fmt: skip
    at = begins + timedelta(minutes=20)
    batch.add(
        "EnergyScan", "energyScanId", sessionId=session_id, blSampleId=first.id,
        fluorescenceDetector="Vortex-EM", scanFileFullPath=f"{root}edge/Se_01.raw",
        jpegChoochFileFullPath=f"{root}edge/Se_01.png", element="Se", startEnergy=12.60,
        endEnergy=12.72, transmissionFactor=10.0, exposureTime=1.0, synchrotronCurrent=300.0,
        temperature=100.0, peakEnergy=12.6618, peakFPrime=-8.2, peakFDoublePrime=5.1,
        inflectionEnergy=12.6592, inflectionFPrime=-10.3, inflectionFDoublePrime=2.9,
        startTime=at, endTime=at + timedelta(minutes=4), edgeEnergy="K", filename="Se_01.raw",
        beamSizeVertical=20.0, beamSizeHorizontal=80.0, choochFileFullPath=f"{root}edge/Se_01.efs",
        flux=2.1e12, flux_end=2.1e12, workingDirectory=root,
    )  # fmt: skip
    batch.add(
        "XFEFluorescenceSpectrum", "xfeFluorescenceSpectrumId", sessionId=session_id,
        blSampleId=first.id, jpegScanFileFullPath=f"{root}xrf/xrf_01.png",
        startTime=at + timedelta(minutes=5), endTime=at + timedelta(minutes=6),
        filename="xrf_01.dat", exposureTime=2.0, axisPosition=0.0, beamTransmission=5.0,
        fittedDataFileFullPath=f"{root}xrf/xrf_01.fit", scanFileFullPath=f"{root}xrf/xrf_01.dat",
        energy=13.5, beamSizeVertical=20.0, beamSizeHorizontal=80.0, flux=1.8e12,
        flux_end=1.8e12, workingDirectory=f"{root}xrf/",
    )  # fmt: skip
    for g, experiment in enumerate(EXPERIMENTS):
        sample = samples[(2 * (session.visit_number - 1) + g) % len(samples)]
        start = begins + timedelta(minutes=40 + 120 * g)
        group_id = batch.add(
            "DataCollectionGroup", "dataCollectionGroupId", sessionId=session_id,
            comments=f"{experiment} of {sample.name}", blSampleId=sample.id,
            experimentType=experiment, startTime=start, endTime=start + timedelta(minutes=60),
            actualSampleSlotInContainer=sample.location, actualContainerSlotInSC=sample.container,
        )  # fmt: skip
        for n in (1, 2):
            dc_id, ends, resolution = _collection(
                batch, session, root, session_id, group_id, experiment, sample, n,
                start + timedelta(minutes=25 * (n - 1)), detector_id,
                stopped=troubled and g == 1 and n == 2,
            )  # fmt: skip
            other_pipelines(batch, 2 * g + n, dc_id, sample.protein.space_group,
                            sample.protein.cell, ends, resolution)  # fmt: skip
            if g == 0 and n == 1:
                batch.add(
                    "DataCollectionComment", "dataCollectionCommentId", dataCollectionId=dc_id,
                    personId=pi, comments=f"{sample.name}: sharp spots, collect a full sweep",
                    createTime=start + timedelta(minutes=30),
                )  # fmt: skip


def _collection(
    batch: _Batch,
    session: DemoSession,
    root: str,
    session_id: int,
    group_id: int,
    experiment: str,
    sample: _Sample,
    number: int,
    start: datetime,
    detector_id: int,
    stopped: bool = False,
) -> tuple[int, datetime, float]:
    """One DataCollection, its log (an attachment), images, quality indicators and xia2 processing (which fails
    on a collection `stopped` before its end): (its id, its end, its resolution)."""
    wavelength = WAVELENGTH[experiment]
    resolution = batch.uniform(1.2, 2.4)
    exposure = batch.rng.choice((0.002, 0.004, 0.01))
    images = 3600
    ends = start + timedelta(seconds=round(images * exposure + 30))
    pixels = DETECTORS[BEAMLINES[session.beamline].detector].pixels
    half_width = pixels[0] * 0.075 / 2
    distance = round(half_width / math.tan(2 * math.asin(wavelength / (2 * resolution))), 1)
    directory = f"{root}{sample.protein.acronym}/"
    prefix = f"{sample.name}_{number}"
    dc_id = batch.add(
        "DataCollection", "dataCollectionId", BLSAMPLEID=sample.id, SESSIONID=session_id,
        experimenttype=experiment, dataCollectionNumber=number, startTime=start, endTime=ends,
        runStatus="DataCollection Stopped" if stopped else "DataCollection Successful", axisStart=0.0, axisEnd=360.0, axisRange=0.1,
        overlap=0.0, numberOfImages=images, startImageNumber=1, numberOfPasses=1,
        exposureTime=exposure, imageDirectory=directory, imagePrefix=sample.name,
        imageSuffix="cbf", fileTemplate=f"{prefix}_#####.cbf", wavelength=wavelength,
        resolution=resolution, detectorDistance=distance, xBeam=round(half_width, 2),
        yBeam=round(pixels[1] * 0.075 / 2, 2), transmission=batch.uniform(5, 50, 1),
        synchrotronMode="Top-up", rotationAxis="Omega", omegaStart=0.0, phiStart=0.0,
        kappaStart=0.0, beamSizeAtSampleX=0.08, beamSizeAtSampleY=0.02,
        centeringMethod="xray", dataCollectionGroupId=group_id, detectorId=detector_id,
        flux=batch.uniform(1e12, 4e12, -9),
        xtalSnapshotFullPath1=f"{directory}snapshots/{prefix}_0.png",
    )  # fmt: skip
    batch.add(
        "DataCollectionFileAttachment", "dataCollectionFileAttachmentId", dataCollectionId=dc_id,
        fileFullPath=f"{directory}{prefix}_collect.log", fileType="log", createTime=ends,
    )  # fmt: skip
    for i in range(1, IMAGES + 1):
        frame = (i - 1) * (images // IMAGES) + 1
        file_name = f"{prefix}_{frame:05d}.cbf"
        taken = start + timedelta(seconds=frame * exposure)
        image_id = batch.add(
            "Image", "imageId", dataCollectionId=dc_id, imageNumber=frame, fileName=file_name,
            fileLocation=directory, measuredIntensity=batch.uniform(10, 60),
            jpegFileFullPath=f"{directory}jpegs/{file_name[:-4]}.jpeg",
            jpegThumbnailFileFullPath=f"{directory}jpegs/{file_name[:-4]}.thumb.jpeg",
            temperature=100.0, synchrotronCurrent=300.0, BLTIMESTAMP=taken,
            recordTimeStamp=taken,
        )  # fmt: skip
        spots = batch.rng.randint(150, 1500)
        batch.add(
            "ImageQualityIndicators", dataCollectionId=dc_id, imageNumber=frame,
            imageId=image_id, spotTotal=spots, inResTotal=int(spots * 0.85),
            goodBraggCandidates=int(spots * 0.7), iceRings=batch.rng.choice((0, 0, 0, 1)),
            method1Res=batch.uniform(resolution, resolution + 0.8),
            method2Res=batch.uniform(resolution, resolution + 0.6),
            totalIntegratedSignal=spots * 812.5,
            dozor_score=batch.uniform(5, 60), recordTimeStamp=taken + timedelta(seconds=3),
        )  # fmt: skip
    _processing(batch, root, dc_id, experiment, sample, prefix, ends, resolution, stopped)
    return dc_id, ends, resolution


def _processing(
    batch: _Batch,
    root: str,
    dc_id: int,
    experiment: str,
    sample: _Sample,
    prefix: str,
    ends: datetime,
    resolution: float,
    failed: bool = False,
) -> None:
    """xia2/DIALS processing of one collection, with three scaling shells (its program's
    processingStatus 0 if it `failed`)."""
    started = ends + timedelta(minutes=2)
    done = started + timedelta(minutes=batch.rng.randint(8, 25))
    anomalous = int(experiment == "SAD")
    job = batch.add(
        "ProcessingJob", "processingJobId", dataCollectionId=dc_id, displayName="xia2 dials",
        recordTimestamp=ends, recipe="autoprocessing-multi-xia2-dials", automatic=1,
    )  # fmt: skip
    program = batch.add(
        "AutoProcProgram", "autoProcProgramId",
        processingCommandLine=f"xia2 pipeline=dials atom={'Se' if anomalous else ''}".strip(),
        processingPrograms="xia2 dials", processingStatus=0 if failed else 1,
        processingMessage="processing failed" if failed else "processing successful", processingStartTime=started,
        processingEndTime=done, processingEnvironment="cluster=hamilton cpus=20",
        recordTimeStamp=started, processingJobId=job,
    )  # fmt: skip
    a, b, c, alpha, beta, gamma = (round(v * batch.rng.uniform(0.998, 1.002), 2)
                                   for v in sample.protein.cell)  # fmt: skip
    integration = batch.add(
        "AutoProcIntegration", "autoProcIntegrationId", dataCollectionId=dc_id,
        autoProcProgramId=program, startImageNumber=1, endImageNumber=3600,
        refinedDetectorDistance=None, refinedXBeam=None, refinedYBeam=None,
        cell_a=a, cell_b=b, cell_c=c, cell_alpha=alpha, cell_beta=beta, cell_gamma=gamma,
        recordTimeStamp=done, anomalous=anomalous,
    )  # fmt: skip
    auto_proc = batch.add(
        "AutoProc", "autoProcId", autoProcProgramId=program,
        spaceGroup=sample.protein.space_group, refinedCell_a=a, refinedCell_b=b,
        refinedCell_c=c, refinedCell_alpha=alpha, refinedCell_beta=beta,
        refinedCell_gamma=gamma, recordTimeStamp=done,
    )  # fmt: skip
    scaling = batch.add("AutoProcScaling", "autoProcScalingId", autoProcId=auto_proc,
                        recordTimeStamp=done)  # fmt: skip
    batch.add("AutoProcScaling_has_Int", "autoProcScaling_has_IntId", autoProcScalingId=scaling,
              autoProcIntegrationId=integration, recordTimeStamp=done)  # fmt: skip
    unique = batch.rng.randint(15000, 90000)
    multiplicity = batch.uniform(6.0, 13.0, 1)
    low = batch.uniform(35.0, 60.0)
    for shell, (r_merge, i_sig, complete, cc_half, share) in SHELLS.items():
        merge = batch.uniform(*r_merge, 3)
        count = int(unique * share[0])
        batch.add(
            "AutoProcScalingStatistics", "autoProcScalingStatisticsId",
            autoProcScalingId=scaling, scalingStatisticsType=shell,
            resolutionLimitLow=round(resolution * 1.03, 2) if shell == "outerShell" else low,
            resolutionLimitHigh=round(resolution * 2.7, 2) if shell == "innerShell" else resolution,
            rMerge=merge, rMeasWithinIPlusIMinus=round(merge * 1.08, 3),
            rMeasAllIPlusIMinus=round(merge * 1.07, 3),
            rPimWithinIPlusIMinus=round(merge / math.sqrt(multiplicity / 2), 3),
            rPimAllIPlusIMinus=round(merge / math.sqrt(multiplicity), 3),
            nTotalObservations=int(count * multiplicity), nTotalUniqueObservations=count,
            meanIOverSigI=batch.uniform(*i_sig, 1), completeness=batch.uniform(*complete, 1),
            multiplicity=multiplicity,
            anomalousCompleteness=batch.uniform(*complete, 1) if anomalous else None,
            anomalousMultiplicity=round(multiplicity / 2, 1) if anomalous else None,
            recordTimeStamp=done, anomalous=anomalous, ccHalf=batch.uniform(*cc_half, 3),
            ccAnomalous=batch.uniform(0.1, 0.6, 3) if anomalous else None,
            resIOverSigI2=round(resolution * 0.97, 2) if shell == "overall" else None,
        )  # fmt: skip
    batch.add(
        "AutoProcProgramAttachment", "autoProcProgramAttachmentId", autoProcProgramId=program,
        fileType="Log", fileName="xia2.html",
        filePath=f"{root}processed/{sample.protein.acronym}/{prefix}/xia2/dials-run/",
        recordTimeStamp=done, importanceRank=1, deleted=0,
    )  # fmt: skip
    batch.add(
        "AutoProcProgramMessage", "autoProcProgramMessageId", autoProcProgramId=program,
        recordTimeStamp=done, severity="WARNING" if anomalous else "INFO",
        message="Weak anomalous signal" if anomalous else "xia2 processing finished",
        description=None,
    )  # fmt: skip


def _reflect(engine: Engine) -> dict[str, sa.Table]:
    metadata = sa.MetaData()
    metadata.reflect(engine, only=list(TABLE_ORDER), resolve_fks=False)
    return {name: metadata.tables[name] for name in TABLE_ORDER}


def _next_ids(conn: Connection, tables: dict[str, sa.Table]) -> dict[str, int]:
    """One past the largest id of every table with a single-column key."""
    next_ids = {}
    for name, table in tables.items():
        keys = list(table.primary_key.columns)
        if len(keys) == 1:
            next_ids[name] = (conn.execute(sa.select(sa.func.max(keys[0]))).scalar() or 0) + 1
    return next_ids


def _ensure_groups(conn: Connection, tables: dict[str, sa.Table], batch: _Batch) -> dict[str, int]:
    """Find (or queue) the Permission and UserGroup rows the demo's staff rely on."""
    permission, group = tables["Permission"], tables["UserGroup"]
    permission_ids = {}
    for kind, description in people.PERMISSIONS.items():
        found = conn.execute(
            sa.select(sa.func.min(permission.c.permissionId)).where(permission.c.type == kind)
        ).scalar()
        permission_ids[kind] = found or batch.add(
            "Permission", "permissionId", type=kind, description=description
        )
    group_ids = {}
    link = tables["UserGroup_has_Permission"]
    for name, kinds in people.USER_GROUPS.items():
        found = conn.execute(sa.select(group.c.userGroupId).where(group.c.name == name)).scalar()
        group_ids[name] = found or batch.add("UserGroup", "userGroupId", name=name)
        for kind in kinds:
            exists = conn.execute(
                sa.select(sa.func.count())
                .select_from(link)
                .where(
                    link.c.userGroupId == group_ids[name],
                    link.c.permissionId == permission_ids[kind],
                )
            ).scalar()
            if not exists:
                batch.add("UserGroup_has_Permission", userGroupId=group_ids[name],
                          permissionId=permission_ids[kind])  # fmt: skip
    return group_ids


def _existing_copies(conn: Connection, person: sa.Table, scale: int) -> set[int]:
    """Copies whose pi_anna is already there (a copy is written in one transaction)."""
    by_login = {people.login(people.PI_ANNA, k): k for k in range(scale)}
    found: set[int] = set()
    logins = list(by_login)
    for i in range(0, len(logins), 500):
        query = sa.select(person.c.login).where(person.c.login.in_(logins[i : i + 500]))
        found.update(by_login[login] for login in conn.execute(query).scalars())
    return found


def _write(conn: Connection, tables: dict[str, sa.Table], batch: _Batch) -> dict[str, int]:
    counts = {}
    for name in TABLE_ORDER:
        rows = batch.rows.get(name)
        if rows:
            conn.execute(tables[name].insert(), rows)
        counts[name] = len(rows or ())
    return counts


def fill(
    engine: Engine,
    scale: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, int]:
    """Insert copies 0..scale-1 that are not there yet; returns rows inserted per table."""
    tables = _reflect(engine)
    totals = dict.fromkeys(TABLE_ORDER, 0)
    with transaction(engine) as conn:
        next_ids = _next_ids(conn, tables)
        batch = _Batch(next_ids)
        groups = _ensure_groups(conn, tables, batch)
        for name, count in _write(conn, tables, batch).items():
            totals[name] += count
        existing = _existing_copies(conn, tables["Person"], scale)
    for first in range(0, scale, CHUNK):
        batch = _Batch(next_ids)
        for k in range(first, min(first + CHUNK, scale)):
            if k not in existing:
                _copy(batch, k, groups)
        if batch.rows:
            with transaction(engine) as conn:
                for name, count in _write(conn, tables, batch).items():
                    totals[name] += count
        if progress:
            progress(min(first + CHUNK, scale), scale)
    return totals
