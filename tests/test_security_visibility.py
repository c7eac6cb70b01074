"""Who sees and changes what, through HTTP (API.md sections 2, 4 and 6).

Every named person of the demo data set (demo/people.py) and two service
accounts look at proposals, sessions, data collections, samples and shipments;
then they try to change them, and to probe across the line by every door the
API has: ids in paths, filter values, foreign keys in payloads, search terms,
exports, sub-collections and /persons.

Rows are identified by name (proposal code + number, visit), never by numeric
id, so the same tests run on the SQLite demo and on a MariaDB that also holds
the official ISPyB test data (proposals of other people): exact totals are
asserted for people who see only demo rows, and "demo rows seen + others
absent" where the official data may add rows (staff, managers).

The data set's shape: per proposal 1 lab contact, 1 shipping, 2 dewars,
4 containers, 2 proteins, 2 crystals, 16 samples (8 per crystal); per session
2 data collection groups, 4 data collections, 20 images.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
from collections.abc import Iterator

import falcon.testing
import pytest
import sqlalchemy as sa

from ispyb_falcon.app import create_app, make_tokens

from .conftest import PREFIX

PROPOSALS = ("mx1001", "mx1002", "cm2001", "in2002")
MISSING = 987654321  # an id no table holds
VISITS = {
    "mx1001-1": "i03",
    "mx1001-2": "i04",
    "mx1001-3": "i24",
    "mx1002-1": "i03",
    "cm2001-1": "i24",
    "cm2001-2": "i04",
    "in2002-1": "i24",
}
PROTEIN_ACRONYMS = {
    "mx1001": ("lyso", "thau"),
    "mx1002": ("insu", "tryp"),
    "cm2001": ("protk", "xyli"),
    "in2002": ("therm", "cona"),
}
PER_PROPOSAL = {
    "/labcontacts": 1,
    "/shippings": 1,
    "/dewars": 2,
    "/containers": 4,
    "/proteins": 2,
    "/crystals": 2,
    "/samples": 16,
}
PER_SESSION = {"/datacollectiongroups": 2, "/datacollections": 4, "/images": 20}

# What each named person sees of the demo data set (API.md section 4).
SEES_PROPOSALS = {
    "pi_anna": {"mx1001", "mx1002"},  # PI of both
    "member_ben": {"mx1001"},  # ProposalHasPerson
    "visitor_cara": {"mx1001"},  # Session_has_Person of mx1001-2
    "staff_dan": {"mx1001", "mx1002", "cm2001"},  # staff for i03, i04
    "pi_eve": {"cm2001", "in2002"},
    "user_fred": set(),
}
SEES_VISITS = {
    "pi_anna": {"mx1001-1", "mx1001-2", "mx1001-3", "mx1002-1"},
    "member_ben": {"mx1001-1", "mx1001-2", "mx1001-3"},
    "visitor_cara": {"mx1001-2"},
    "staff_dan": {"mx1001-1", "mx1001-2", "mx1002-1", "cm2001-2"},
    "pi_eve": {"cm2001-1", "cm2001-2", "in2002-1"},
    "user_fred": set(),
}
# People who are in no row of the official test data: their totals are exact on any database.
ONLY_DEMO = ("pi_anna", "member_ben", "visitor_cara", "pi_eve", "user_fred")
SEE_ALL = ("manager1", "admin1", "gus_super")
NOWHERE = 999_999_999


# --- helpers ------------------------------------------------------------------------------------


def login(client: falcon.testing.TestClient, name: str) -> dict[str, str]:
    r = client.simulate_post(f"{PREFIX}/auth/login", json={"login": name, "password": "demo"})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json['token']}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Demo:
    """Ids of the demo rows, found by name through the admin's eyes."""

    def __init__(self, client: falcon.testing.TestClient, headers: dict[str, str]) -> None:
        self.client = client
        self.admin = headers
        self.proposal_id = {n: self.get(f"/proposals/{n}")["proposalId"] for n in PROPOSALS}
        self.proposal_of = {v: k for k, v in self.proposal_id.items()}
        self.session_id = {v: self.get(f"/sessions/{v}")["sessionId"] for v in VISITS}
        self.visit_of = {v: k for k, v in self.session_id.items()}
        self.person_id = {
            name: self.list("/persons", login=name)["results"][0]["personId"]
            for name in (
                "pi_anna",
                "member_ben",
                "visitor_cara",
                "staff_dan",
                "pi_eve",
                "user_fred",
            )
        }
        # The first row (by key) of each sample/shipping table, per proposal.
        self.first = {
            (path, name): self.list(path, proposal=name, limit=1)["results"][0]
            for path in PER_PROPOSAL
            for name in PROPOSALS
        }

    def get(self, path: str) -> dict:
        r = self.client.simulate_get(PREFIX + path, headers=self.admin)
        assert r.status_code == 200, (path, r.text)
        return r.json

    def list(self, path: str, **params) -> dict:
        r = self.client.simulate_get(PREFIX + path, headers=self.admin, params=params)
        assert r.status_code == 200, (path, r.text)
        return r.json

    def total(self, path: str, **params) -> int:
        return self.list(path, **params)["total"]

    def key(self, path: str, proposal: str) -> int:
        row = self.first[(path, proposal)]
        return row[KEYS[path]]


KEYS = {
    "/labcontacts": "labContactId",
    "/shippings": "shippingId",
    "/dewars": "dewarId",
    "/containers": "containerId",
    "/proteins": "proteinId",
    "/crystals": "crystalId",
    "/samples": "blSampleId",
}


@pytest.fixture(scope="module")
def demo(app) -> Demo:
    client = falcon.testing.TestClient(app)
    return Demo(client, login(client, "admin1"))


@pytest.fixture(scope="module")
def tokens(settings):
    return make_tokens(settings)


@pytest.fixture(scope="module")
def acquisition_i03(tokens) -> dict[str, str]:
    token, _ = tokens.issue("svc-acq", ["acquisition"], beamlines=["i03"])
    return bearer(token)


@pytest.fixture(scope="module")
def processing(tokens) -> dict[str, str]:
    token, _ = tokens.issue("svc-proc", ["processing"])
    return bearer(token)


@contextlib.contextmanager
def on_session(client, demo, visit: str, who: str) -> Iterator[None]:
    """`who` is on the team of `visit` (added by admin1) for the length of the block."""
    person = demo.person_id[who]
    r = client.simulate_post(
        f"{PREFIX}/sessions/{visit}/persons",
        headers=demo.admin,
        json={"personId": person, "role": "Team Member"},
    )
    assert r.status_code == 201, r.text
    try:
        yield
    finally:
        gone = client.simulate_delete(
            f"{PREFIX}/sessions/{visit}/persons/{person}", headers=demo.admin
        )
        assert gone.status_code == 204


def listing(client, headers, path: str, **params) -> falcon.testing.Result:
    params.setdefault("limit", 1000)
    r = client.simulate_get(PREFIX + path, headers=headers, params=params)
    assert r.status_code == 200, (path, params, r.text)
    return r


def proposal_names(results: list[dict]) -> list[str]:
    return [f"{p['proposalCode']}{p['proposalNumber']}" for p in results]


def visits(demo: Demo, results: list[dict]) -> list[str]:
    """Visit names of the demo sessions in `results`; other sessions as `other`."""
    return [demo.visit_of.get(s["sessionId"], "other") for s in results]


def count(engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


def same_message(a: dict, b: dict, *values: int) -> bool:
    """The two error bodies are equal once the probed ids are written as <id>."""

    def blank(body: dict) -> str:
        text = json.dumps(body, sort_keys=True)
        for v in values:
            text = re.sub(rf"\b{v}\b", "<id>", text)
        return text

    return blank(a) == blank(b)


# --- 1. what each person sees -------------------------------------------------------------------


@pytest.mark.parametrize("who", ONLY_DEMO)
def test_people_see_exactly_their_proposals(client, auth, who):
    r = listing(client, auth(who), "/proposals")
    assert sorted(proposal_names(r.json["results"])) == sorted(SEES_PROPOSALS[who])
    assert r.json["total"] == len(SEES_PROPOSALS[who])


@pytest.mark.parametrize("who", ONLY_DEMO)
def test_people_see_exactly_their_sessions(client, auth, demo, who):
    r = listing(client, auth(who), "/sessions")
    assert sorted(visits(demo, r.json["results"])) == sorted(SEES_VISITS[who])
    assert r.json["total"] == len(SEES_VISITS[who])


def test_member_sees_all_sessions_of_the_proposal(client, auth, demo):
    r = listing(client, auth("member_ben"), "/sessions", proposal="mx1001")
    assert sorted(visits(demo, r.json["results"])) == ["mx1001-1", "mx1001-2", "mx1001-3"]


def test_session_member_sees_the_proposal_but_only_her_session(client, auth, demo):
    h = auth("visitor_cara")
    assert client.simulate_get(f"{PREFIX}/proposals/mx1001", headers=h).status_code == 200
    r = listing(client, h, "/sessions", proposal="mx1001")
    assert visits(demo, r.json["results"]) == ["mx1001-2"]
    for visit in ("mx1001-1", "mx1001-3"):
        assert client.simulate_get(f"{PREFIX}/sessions/{visit}", headers=h).status_code == 404


def test_staff_sees_the_proposals_and_sessions_of_their_beamlines(client, auth, demo):
    h = auth("staff_dan")
    r = listing(client, h, "/proposals")
    names = set(proposal_names(r.json["results"]))
    assert names & set(PROPOSALS) == SEES_PROPOSALS["staff_dan"]
    assert "in2002" not in names  # its only session is on i24
    # Exactly the proposals with a session on i03 or i04 (official data included, if any).
    on_lines = {
        s["proposalId"]
        for s in demo.list("/sessions", beamLineName="i03,i04", limit=1000)["results"]
    }
    assert r.json["total"] == len(on_lines)

    r = listing(client, h, "/sessions")
    seen = visits(demo, r.json["results"])
    assert {v for v in seen if v != "other"} == SEES_VISITS["staff_dan"]
    assert {s["beamLineName"] for s in r.json["results"]} <= {"i03", "i04"}
    assert r.json["total"] == demo.total("/sessions", beamLineName="i03,i04")
    for visit, line in VISITS.items():
        status = client.simulate_get(f"{PREFIX}/sessions/{visit}", headers=h).status_code
        assert status == (200 if line in ("i03", "i04") else 404), visit


def test_staff_sees_data_collections_of_their_beamlines_only(client, auth):
    h = auth("staff_dan")
    for visit, line in VISITS.items():
        r = listing(client, h, "/datacollections", session=visit)
        assert r.json["total"] == (4 if line in ("i03", "i04") else 0), visit


@pytest.mark.parametrize("who", SEE_ALL)
def test_managers_admins_and_super_admins_see_everything(client, auth, demo, engine, who):
    h = auth(who)
    r = listing(client, h, "/proposals")
    assert set(PROPOSALS) <= set(proposal_names(r.json["results"]))
    assert r.json["total"] == count(engine, "Proposal")
    r = listing(client, h, "/sessions")
    assert set(VISITS) <= set(visits(demo, r.json["results"]))
    assert r.json["total"] == count(engine, "BLSession")
    for path, table in (
        ("/datacollections", "DataCollection"),
        ("/samples", "BLSample"),
        ("/shippings", "Shipping"),
    ):
        assert listing(client, h, path, limit=1).json["total"] == count(engine, table), path
    for visit in VISITS:
        assert client.simulate_get(f"{PREFIX}/sessions/{visit}", headers=h).status_code == 200
        assert listing(client, h, "/datacollections", session=visit).json["total"] == 4


def test_super_admin_permission_shows_in_whoami(client, auth):
    r = client.simulate_get(f"{PREFIX}/auth/whoami", headers=auth("gus_super"))
    assert r.status_code == 200
    assert r.json["roles"] == ["user"]
    assert "super_admin" in r.json["permissions"]


@pytest.mark.parametrize("login", ["PI_ANNA", "Pi_Anna", "pi_anna ", " pi_anna"])
def test_a_login_is_its_person_only_when_it_is_the_very_same_text(client, tokens, login):
    """MariaDB's collation matches these to pi_anna; an authenticator may know other people."""
    token, _ = tokens.issue(login, ["user"])
    r = client.simulate_get(f"{PREFIX}/auth/whoami", headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json["personId"] is None
    assert listing(client, bearer(token), "/proposals").json["total"] == 0
    anna, _ = tokens.issue("pi_anna", ["user"])
    assert listing(client, bearer(anna), "/proposals").json["total"] == 2


def test_user_in_nothing_sees_nothing(client, auth):
    h = auth("user_fred")
    for path in (
        "/proposals",
        "/sessions",
        "/datacollectiongroups",
        "/datacollections",
        "/images",
        "/samples",
        "/shippings",
        "/dewars",
        "/containers",
        "/proteins",
        "/crystals",
        "/labcontacts",
        "/energyscans",
        "/xfespectra",
        "/robotactions",
        "/autoprocprograms",
        "/autoprocintegrations",
        "/autoprocs",
        "/autoprocscalings",
        "/autoprocscalingstatistics",
        "/autoprocprogramattachments",
        "/autoprocprogrammessages",
        "/imagequalityindicators",
    ):
        r = listing(client, h, path)
        assert (r.json["total"], r.json["results"]) == (0, []), path
    for path in ("/proposals/mx1001", "/sessions/mx1001-2", "/proposals/cm2001"):
        assert client.simulate_get(PREFIX + path, headers=h).status_code == 404, path


def test_reference_data_is_read_by_everyone_signed_in(client, auth, engine):
    h = auth("user_fred")
    assert listing(client, h, "/detectors").json["total"] == count(engine, "Detector")
    assert listing(client, h, "/beamlinesetups").json["total"] == count(engine, "BeamLineSetup")


@pytest.mark.parametrize("who", ONLY_DEMO)
def test_people_see_exactly_the_data_collections_of_their_sessions(client, auth, who):
    h = auth(who)
    mine = SEES_VISITS[who]
    for path, per in PER_SESSION.items():
        assert listing(client, h, path, limit=1).json["total"] == per * len(mine), path
    for visit in VISITS:
        for path, per in PER_SESSION.items():
            r = listing(client, h, path, session=visit)
            assert r.json["total"] == (per if visit in mine else 0), (path, visit)


@pytest.mark.parametrize("who", ONLY_DEMO)
def test_people_see_exactly_the_samples_and_shipments_of_their_proposals(client, auth, who):
    h = auth(who)
    mine = SEES_PROPOSALS[who]
    for path, per in PER_PROPOSAL.items():
        assert listing(client, h, path, limit=1).json["total"] == per * len(mine), path
        for name in PROPOSALS:
            r = listing(client, h, path, proposal=name)
            assert r.json["total"] == (per if name in mine else 0), (path, name)
    r = listing(client, h, "/samples")
    acronyms = {s["name"].split("-")[0] for s in r.json["results"]}
    assert acronyms == {a for name in mine for a in PROTEIN_ACRONYMS[name]}
    r = listing(client, h, "/shippings")
    assert sorted(s["shippingName"] for s in r.json["results"]) == sorted(
        f"{name} shipment 1" for name in mine
    )


def test_staff_sees_samples_of_proposals_with_sessions_on_their_beamlines(client, auth):
    h = auth("staff_dan")
    for name in PROPOSALS:
        r = listing(client, h, "/samples", proposal=name)
        assert r.json["total"] == (16 if name in SEES_PROPOSALS["staff_dan"] else 0), name


@pytest.mark.parametrize("who", ("pi_anna", "member_ben", "visitor_cara", "staff_dan"))
def test_items_by_name_and_by_id_of_a_visible_proposal(client, auth, demo, who):
    h = auth(who)
    by_name = client.simulate_get(f"{PREFIX}/proposals/mx1001", headers=h)
    by_id = client.simulate_get(f"{PREFIX}/proposals/{demo.proposal_id['mx1001']}", headers=h)
    assert by_name.status_code == by_id.status_code == 200
    assert by_name.json == by_id.json
    assert proposal_names([by_name.json]) == ["mx1001"]
    by_visit = client.simulate_get(f"{PREFIX}/sessions/mx1001-2", headers=h)
    by_id = client.simulate_get(f"{PREFIX}/sessions/{demo.session_id['mx1001-2']}", headers=h)
    assert by_visit.status_code == by_id.status_code == 200
    assert by_visit.json == by_id.json
    assert by_visit.json["beamLineName"] == "i04"
    sample = demo.first[("/samples", "mx1001")]
    r = client.simulate_get(f"{PREFIX}/samples/{sample['blSampleId']}", headers=h)
    assert r.status_code == 200 and r.json["name"] == sample["name"]


@pytest.mark.parametrize("who", ("pi_eve", "user_fred"))
def test_items_of_an_invisible_proposal_are_404(client, auth, demo, who):
    h = auth(who)
    for path in (
        "/proposals/mx1001",
        f"/proposals/{demo.proposal_id['mx1001']}",
        "/sessions/mx1001-2",
        f"/sessions/{demo.session_id['mx1001-2']}",
        f"/samples/{demo.key('/samples', 'mx1001')}",
        f"/shippings/{demo.key('/shippings', 'mx1001')}",
    ):
        assert client.simulate_get(PREFIX + path, headers=h).status_code == 404, path


def test_service_limited_to_a_beamline_sees_only_its_sessions(client, acquisition_i03, demo):
    h = acquisition_i03
    r = listing(client, h, "/sessions")
    seen = visits(demo, r.json["results"])
    assert {v for v in seen if v != "other"} == {"mx1001-1", "mx1002-1"}
    assert {s["beamLineName"] for s in r.json["results"]} == {"i03"}
    assert r.json["total"] == demo.total("/sessions", beamLineName="i03")
    for visit, line in VISITS.items():
        status = client.simulate_get(f"{PREFIX}/sessions/{visit}", headers=h).status_code
        assert status == (200 if line == "i03" else 404), visit
        r = listing(client, h, "/datacollections", session=visit)
        assert r.json["total"] == (4 if line == "i03" else 0), visit
    names = set(proposal_names(listing(client, h, "/proposals").json["results"]))
    assert names & set(PROPOSALS) == {"mx1001", "mx1002"}


def test_whoami_of_a_limited_service_shows_its_beamlines(client, acquisition_i03):
    r = client.simulate_get(f"{PREFIX}/auth/whoami", headers=acquisition_i03)
    assert r.status_code == 200
    assert r.json["login"] == "svc-acq"
    assert r.json["roles"] == ["acquisition"]
    assert r.json["beamlines"] == ["i03"]
    assert r.json["personId"] is None


def test_unlimited_processing_service_sees_every_session(client, processing, engine):
    r = listing(client, processing, "/sessions", limit=1)
    assert r.json["total"] == count(engine, "BLSession")
    r = listing(client, processing, "/datacollections", limit=1)
    assert r.json["total"] == count(engine, "DataCollection")


# --- 2. who may change what ---------------------------------------------------------------------

TEXT_FIELD = {
    "/labcontacts": "cardName",
    "/shippings": "shippingName",
    "/dewars": "code",
    "/containers": "code",
    "/proteins": "name",
    "/crystals": "name",
    "/samples": "name",
}


def patch_same(client, headers, demo: Demo, path: str, proposal: str) -> falcon.testing.Result:
    """PATCH one text field of the first row of `proposal` with its current value."""
    row = demo.first[(path, proposal)]
    field = TEXT_FIELD[path]
    return client.simulate_patch(
        f"{PREFIX}{path}/{row[KEYS[path]]}", headers=headers, json={field: row[field]}
    )


@pytest.mark.parametrize("path", PER_PROPOSAL)
def test_pi_updates_sample_and_shipping_rows_of_an_open_proposal(client, auth, demo, path):
    r = patch_same(client, auth("pi_anna"), demo, path, "mx1001")
    assert r.status_code == 200, r.text
    assert r.json == demo.get(f"{path}/{demo.key(path, 'mx1001')}")


@pytest.mark.parametrize("path", PER_PROPOSAL)
def test_member_updates_sample_and_shipping_rows_of_an_open_proposal(client, auth, demo, path):
    r = patch_same(client, auth("member_ben"), demo, path, "mx1001")
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("path", PER_PROPOSAL)
def test_pi_may_not_update_rows_of_a_closed_proposal(client, auth, demo, path):
    r = patch_same(client, auth("pi_anna"), demo, path, "mx1002")
    assert r.status_code == 403, r.text
    assert r.json["title"] == "403 Forbidden"


@pytest.mark.parametrize("path", PER_PROPOSAL)
def test_pi_may_not_update_rows_of_anothers_proposal(client, auth, demo, path):
    r = patch_same(client, auth("pi_anna"), demo, path, "cm2001")
    assert r.status_code == 404, r.text


def test_pi_patches_a_sample_and_only_that_field_changes(client, auth, demo):
    h = auth("pi_anna")
    sample = demo.first[("/samples", "mx1001")]
    url = f"{PREFIX}/samples/{sample['blSampleId']}"
    try:
        r = client.simulate_patch(url, headers=h, json={"comments": "checked by anna"})
        assert r.status_code == 200, r.text
        assert r.json["comments"] == "checked by anna"
        assert {k: v for k, v in r.json.items() if k != "comments"} == {
            k: v for k, v in sample.items() if k != "comments"
        }
    finally:
        client.simulate_patch(url, headers=demo.admin, json={"comments": sample["comments"]})


def test_sample_patch_status_follows_proposal_state_and_visibility(client, auth, demo):
    h = auth("pi_anna")
    for proposal, status in (("mx1001", 200), ("mx1002", 403), ("cm2001", 404)):
        sample = demo.first[("/samples", proposal)]
        r = client.simulate_patch(
            f"{PREFIX}/samples/{sample['blSampleId']}", headers=h, json={"name": sample["name"]}
        )
        assert r.status_code == status, (proposal, r.text)


def test_pi_creates_a_protein_in_an_open_proposal(client, auth, demo):
    h = auth("pi_anna")
    body = {"proposalId": demo.proposal_id["mx1001"], "acronym": "secp", "name": "Security probe"}
    r = client.simulate_post(f"{PREFIX}/proteins", headers=h, json=body)
    assert r.status_code == 201, r.text
    try:
        assert r.json["acronym"] == "secp"
        assert r.headers["Location"] == f"{PREFIX}/proteins/{r.json['proteinId']}"
        assert listing(client, h, "/proteins", proposal="mx1001").json["total"] == 3
        # Others still do not see it.
        got = client.simulate_get(r.headers["Location"], headers=auth("pi_eve"))
        assert got.status_code == 404
    finally:
        gone = client.simulate_delete(
            f"{PREFIX}/proteins/{r.json['proteinId']}", headers=demo.admin
        )
        assert gone.status_code == 204
    assert listing(client, h, "/proteins", proposal="mx1001").json["total"] == 2


@pytest.mark.parametrize(("who", "proposal"), (("pi_eve", "in2002"), ("pi_anna", "mx1002")))
def test_nobody_creates_a_protein_in_a_cancelled_or_closed_proposal(
    client, auth, demo, who, proposal
):
    body = {"proposalId": demo.proposal_id[proposal], "acronym": "late", "name": "Too late"}
    r = client.simulate_post(f"{PREFIX}/proteins", headers=auth(who), json=body)
    assert r.status_code == 422, r.text
    assert [e["path"] for e in r.json["errors"]] == ["$.proposalId"]
    assert listing(client, demo.admin, "/proteins", proposal=proposal).json["total"] == 2


@pytest.mark.parametrize(
    ("path", "body"),
    (
        ("/proposals", {"title": "mine now"}),
        ("/sessions", {"comments": "mine now"}),
    ),
)
def test_users_cannot_write_proposals_or_sessions(client, auth, demo, path, body):
    h = auth("pi_anna")
    target = {"/proposals": "mx1001", "/sessions": "mx1001-1"}[path]
    r = client.simulate_patch(f"{PREFIX}{path}/{target}", headers=h, json=body)
    assert r.status_code == 403, r.text
    r = client.simulate_post(f"{PREFIX}{path}", headers=h, json=body)
    assert r.status_code == 403, r.text


def test_users_cannot_write_data_collections(client, auth, demo):
    h = auth("pi_anna")
    dc = listing(client, h, "/datacollections", session="mx1001-1", limit=1).json["results"][0]
    r = client.simulate_patch(
        f"{PREFIX}/datacollections/{dc['dataCollectionId']}", headers=h, json={"comments": "x"}
    )
    assert r.status_code == 403, r.text
    r = client.simulate_post(
        f"{PREFIX}/datacollectiongroups",
        headers=h,
        json={"sessionId": demo.session_id["mx1001-1"]},
    )
    assert r.status_code == 403, r.text


@pytest.mark.parametrize("who", ("pi_anna", "manager1", "gus_super"))
def test_only_admin_deletes(client, auth, demo, who):
    own = demo.key("/samples", "mx1001")
    r = client.simulate_delete(f"{PREFIX}/samples/{own}", headers=auth(who))
    assert r.status_code == 403, r.text
    assert client.simulate_get(f"{PREFIX}/samples/{own}", headers=demo.admin).status_code == 200


def test_deleting_an_invisible_row_is_404_not_403(client, auth, demo):
    other = demo.key("/samples", "cm2001")
    r = client.simulate_delete(f"{PREFIX}/samples/{other}", headers=auth("pi_anna"))
    nowhere = client.simulate_delete(f"{PREFIX}/samples/{NOWHERE}", headers=auth("pi_anna"))
    assert r.status_code == nowhere.status_code == 404
    assert r.json == nowhere.json


def test_super_admin_permission_writes_like_a_user_in_any_open_proposal(client, auth, demo):
    h = auth("gus_super")
    assert patch_same(client, h, demo, "/samples", "cm2001").status_code == 200
    assert patch_same(client, h, demo, "/samples", "in2002").status_code == 403
    r = client.simulate_patch(f"{PREFIX}/proposals/cm2001", headers=h, json={"title": "x"})
    assert r.status_code == 403


def test_admin_writes_in_a_closed_proposal(client, demo):
    r = patch_same(client, demo.admin, demo, "/samples", "mx1002")
    assert r.status_code == 200, r.text


def test_acquisition_limited_to_i03_creates_a_group_in_an_i03_session(
    client, acquisition_i03, demo
):
    body = {"sessionId": demo.session_id["mx1001-1"], "experimentType": "OSC", "comments": "svc"}
    r = client.simulate_post(f"{PREFIX}/datacollectiongroups", headers=acquisition_i03, json=body)
    assert r.status_code == 201, r.text
    key = r.json["dataCollectionGroupId"]
    try:
        assert r.json["sessionId"] == demo.session_id["mx1001-1"]
        got = client.simulate_get(f"{PREFIX}/datacollectiongroups/{key}", headers=acquisition_i03)
        assert got.status_code == 200
    finally:
        gone = client.simulate_delete(f"{PREFIX}/datacollectiongroups/{key}", headers=demo.admin)
        assert gone.status_code == 204
    assert (
        client.simulate_get(f"{PREFIX}/datacollectiongroups/{key}", headers=demo.admin).status_code
        == 404
    )


def test_acquisition_limited_to_i03_cannot_create_in_an_i04_session(client, acquisition_i03, demo):
    before = demo.total("/datacollectiongroups", session="mx1001-2")
    body = {"sessionId": demo.session_id["mx1001-2"], "experimentType": "OSC"}
    r = client.simulate_post(f"{PREFIX}/datacollectiongroups", headers=acquisition_i03, json=body)
    assert r.status_code == 422, r.text
    assert [e["path"] for e in r.json["errors"]] == ["$.sessionId"]
    assert demo.total("/datacollectiongroups", session="mx1001-2") == before
    # ... and says the same as for a session that does not exist.
    nowhere = client.simulate_post(
        f"{PREFIX}/datacollectiongroups",
        headers=acquisition_i03,
        json={**body, "sessionId": NOWHERE},
    )
    assert nowhere.status_code == 422
    assert same_message(r.json, nowhere.json, demo.session_id["mx1001-2"], NOWHERE)


def test_acquisition_cannot_move_a_group_to_another_beamline(client, acquisition_i03, demo):
    group = listing(client, acquisition_i03, "/datacollectiongroups", session="mx1001-1")
    key = group.json["results"][0]["dataCollectionGroupId"]
    r = client.simulate_patch(
        f"{PREFIX}/datacollectiongroups/{key}",
        headers=acquisition_i03,
        json={"sessionId": demo.session_id["mx1001-2"]},
    )
    assert r.status_code == 422, r.text
    assert demo.get(f"/datacollectiongroups/{key}")["sessionId"] == demo.session_id["mx1001-1"]


def test_acquisition_does_not_write_processing_or_samples(client, acquisition_i03, demo):
    r = client.simulate_post(
        f"{PREFIX}/autoprocprograms", headers=acquisition_i03, json={"processingPrograms": "x"}
    )
    assert r.status_code == 403
    r = client.simulate_post(
        f"{PREFIX}/proteins",
        headers=acquisition_i03,
        json={"proposalId": demo.proposal_id["mx1001"], "acronym": "acq"},
    )
    assert r.status_code == 403


def test_processing_writes_auto_processing_rows(client, processing, demo):
    r = client.simulate_post(
        f"{PREFIX}/autoprocprograms",
        headers=processing,
        json={"processingPrograms": "security-probe", "processingStatus": 1},
    )
    assert r.status_code == 201, r.text
    program = r.json["autoProcProgramId"]
    auto_proc = None
    try:
        r = client.simulate_post(
            f"{PREFIX}/autoprocs",
            headers=processing,
            json={"autoProcProgramId": program, "spaceGroup": "P1"},
        )
        assert r.status_code == 201, r.text
        auto_proc = r.json["autoProcId"]
        r = client.simulate_patch(
            f"{PREFIX}/autoprocs/{auto_proc}", headers=processing, json={"spaceGroup": "P21"}
        )
        assert r.status_code == 200 and r.json["spaceGroup"] == "P21"
        # Deleting is for admins only, even for the service that wrote the row.
        r = client.simulate_delete(f"{PREFIX}/autoprocs/{auto_proc}", headers=processing)
        assert r.status_code == 403
        # The program is referenced by the AutoProc row: 409 until that one is gone.
        r = client.simulate_delete(f"{PREFIX}/autoprocprograms/{program}", headers=demo.admin)
        assert r.status_code == 409
    finally:
        if auto_proc is not None:
            r = client.simulate_delete(f"{PREFIX}/autoprocs/{auto_proc}", headers=demo.admin)
            assert r.status_code == 204
        r = client.simulate_delete(f"{PREFIX}/autoprocprograms/{program}", headers=demo.admin)
        assert r.status_code == 204
    assert (
        client.simulate_get(f"{PREFIX}/autoprocs/{auto_proc}", headers=demo.admin).status_code
        == 404
    )


def test_processing_does_not_write_experiments(client, processing, demo):
    r = client.simulate_post(
        f"{PREFIX}/datacollectiongroups",
        headers=processing,
        json={"sessionId": demo.session_id["mx1001-1"]},
    )
    assert r.status_code == 403


# --- 3. probes across the line ------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    (
        "/samples/{sample}",
        "/shippings/{shipping}",
        "/proteins/{protein}",
        "/proposals/{proposal}",
        "/sessions/{session}",
        "/datacollections/{dc}",
    ),
)
def test_an_id_of_anothers_row_is_the_same_404_as_no_row(client, auth, demo, path):
    dc = demo.list("/datacollections", session="cm2001-1", limit=1)["results"][0]
    theirs = {
        "sample": demo.key("/samples", "cm2001"),
        "shipping": demo.key("/shippings", "cm2001"),
        "protein": demo.key("/proteins", "cm2001"),
        "proposal": demo.proposal_id["cm2001"],
        "session": demo.session_id["cm2001-1"],
        "dc": dc["dataCollectionId"],
    }
    nobody = dict.fromkeys(theirs, NOWHERE)
    h = auth("pi_anna")
    for method in ("GET", "PATCH", "DELETE"):
        kw = {"json": {}} if method == "PATCH" else {}
        r = client.simulate_request(method, PREFIX + path.format(**theirs), headers=h, **kw)
        none = client.simulate_request(method, PREFIX + path.format(**nobody), headers=h, **kw)
        assert r.status_code == none.status_code == 404, (method, r.text)
        assert r.json == none.json


def test_a_name_of_anothers_proposal_or_visit_is_the_same_404_as_no_name(client, auth):
    h = auth("pi_anna")
    for theirs, nobody in (
        ("/proposals/cm2001", "/proposals/zz9999"),
        ("/sessions/cm2001-1", "/sessions/zz9999-1"),
        ("/sessions/in2002-1", "/sessions/mx1001-99"),
    ):
        r = client.simulate_get(PREFIX + theirs, headers=h)
        none = client.simulate_get(PREFIX + nobody, headers=h)
        assert r.status_code == none.status_code == 404, theirs
        assert r.json == none.json


@pytest.mark.parametrize("path", ("/proteins", "/shippings", "/labcontacts", "/sessions"))
def test_filtering_on_anothers_proposal_id_finds_nothing(client, auth, demo, path):
    h = auth("pi_anna")
    r = listing(client, h, path, proposalId=demo.proposal_id["cm2001"])
    assert (r.json["total"], r.json["results"]) == (0, [])
    r = listing(client, h, path, proposalId=demo.proposal_id["mx1001"])
    assert r.json["total"] > 0


@pytest.mark.parametrize(
    "path", ("/proposals", "/sessions", "/samples", "/shippings", "/datacollections")
)
def test_the_proposal_filter_on_anothers_proposal_finds_nothing(client, auth, path):
    h = auth("pi_anna")
    r = listing(client, h, path, proposal="cm2001")
    assert (r.json["total"], r.json["results"]) == (0, [])
    assert listing(client, h, path, proposal="mx1001").json["total"] > 0


@pytest.mark.parametrize("path", ("/persons", "/laboratories", "/samples", "/sessions"))
@pytest.mark.parametrize(
    ("who", "hidden", "own"),
    [("staff_dan", "in2002", "cm2001"), ("member_ben", "mx1002", "mx1001")],
)
def test_a_scope_the_caller_cannot_see_finds_nothing_by_any_path(
    client, auth, demo, path, who, hidden, own
):
    """Rows visible by one path (pi_eve, PI of cm2001 that staff_dan sees) are not found
    below a proposal the caller may not see (her in2002): it looks like no proposal."""
    h = auth(who)
    for value in (hidden, str(demo.proposal_id[hidden]), "zz9999"):
        r = listing(client, h, path, proposal=value)
        assert (r.json["total"], r.json["results"]) == (0, []), (path, value)
    if path != "/sessions" or who != "member_ben":
        assert listing(client, h, path, proposal=own).json["total"] > 0


def test_the_session_filter_on_an_invisible_visit_hides_its_members(client, auth, demo):
    """member_ben, whom pi_anna sees, joins pi_eve's visit cm2001-1: anna still finds no one there."""
    with on_session(client, demo, "cm2001-1", "member_ben"):
        h = auth("pi_anna")
        assert listing(client, h, "/persons", login="member_ben").json["total"] == 1
        for value in ("cm2001-1", str(demo.session_id["cm2001-1"])):
            r = listing(client, h, "/persons", session=value)
            assert (r.json["total"], r.json["results"]) == (0, []), value
        assert listing(client, auth("pi_eve"), "/persons", session="cm2001-1").json["total"] >= 1


def test_the_session_filter_on_anothers_visit_finds_nothing(client, auth, demo):
    h = auth("pi_anna")
    for path in ("/datacollections", "/datacollectiongroups", "/images", "/energyscans"):
        r = listing(client, h, path, session="cm2001-1")
        assert (r.json["total"], r.json["results"]) == (0, []), path
    r = listing(client, h, "/datacollectiongroups", sessionId=demo.session_id["cm2001-1"])
    assert r.json["total"] == 0


def test_a_foreign_key_to_anothers_shipping_is_the_same_422_as_no_shipping(client, auth, demo):
    h = auth("pi_anna")
    before = listing(client, h, "/dewars", limit=1).json["total"]
    theirs = demo.key("/shippings", "cm2001")
    r = client.simulate_post(
        f"{PREFIX}/dewars", headers=h, json={"shippingId": theirs, "code": "probe"}
    )
    none = client.simulate_post(
        f"{PREFIX}/dewars", headers=h, json={"shippingId": NOWHERE, "code": "probe"}
    )
    assert r.status_code == none.status_code == 422, r.text
    assert [e["path"] for e in r.json["errors"]] == ["$.shippingId"]
    assert same_message(r.json, none.json, theirs, NOWHERE)
    assert demo.total("/dewars", proposal="cm2001") == 2
    assert listing(client, h, "/dewars", limit=1).json["total"] == before


def test_a_foreign_key_to_an_invisible_person_or_session_is_the_same_422_as_none(
    client, auth, demo
):
    """Not only the column a row hangs from: every foreign key is checked against visibility."""
    h = auth("pi_anna")
    eve = demo.person_id["pi_eve"]
    body = {"proposalId": demo.proposal_id["mx1001"], "cardName": "probe", "personId": eve}
    r = client.simulate_post(f"{PREFIX}/labcontacts", headers=h, json=body)
    none = client.simulate_post(
        f"{PREFIX}/labcontacts", headers=h, json={**body, "personId": NOWHERE}
    )
    assert r.status_code == none.status_code == 422, r.text
    assert [e["path"] for e in r.json["errors"]] == ["$.personId"]
    assert same_message(r.json, none.json, eve, NOWHERE)

    theirs = demo.session_id["cm2001-1"]
    dewar = demo.key("/dewars", "mx1001")
    r = client.simulate_patch(
        f"{PREFIX}/dewars/{dewar}", headers=h, json={"firstExperimentId": theirs}
    )
    none = client.simulate_patch(
        f"{PREFIX}/dewars/{dewar}", headers=h, json={"firstExperimentId": NOWHERE}
    )
    assert r.status_code == none.status_code == 422, r.text
    assert [e["path"] for e in r.json["errors"]] == ["$.firstExperimentId"]
    assert same_message(r.json, none.json, theirs, NOWHERE)


@pytest.fixture()
def unserved(engine):
    """add(table, **values) -> key: rows of tables no route serves, deleted afterwards."""
    if not {"BLSubSample", "DiffractionPlan"} <= set(sa.inspect(engine).get_table_names()):
        pytest.skip("needs the official schema's BLSubSample and DiffractionPlan (MariaDB)")
    made: list[tuple[sa.Table, int]] = []

    def add(name: str, **values) -> int:
        with engine.begin() as conn:
            table = sa.Table(name, sa.MetaData(), autoload_with=conn)
            key = conn.execute(table.insert().values(**values)).inserted_primary_key[0]
        made.append((table, key))
        return key

    yield add
    with engine.begin() as conn:
        for table, key in reversed(made):
            conn.execute(table.delete().where(table.primary_key.columns[0] == key))


def test_a_foreign_key_into_an_unserved_table_names_only_what_the_caller_sees(
    client, auth, demo, unserved
):
    """Sub-samples hang from samples; diffraction plans hang from nothing, so a user may
    name only plans that rows they see already name. Another's is the same 422 as none."""
    h = auth("pi_anna")
    mine, other = (s["blSampleId"] for s in demo.list("/samples", proposal="mx1001")["results"][:2])
    theirs = demo.key("/samples", "cm2001")
    my_sub = unserved("BLSubSample", blSampleId=mine)
    their_sub = unserved("BLSubSample", blSampleId=theirs)
    my_plan = unserved("DiffractionPlan", comments="test plan")
    their_plan = unserved("DiffractionPlan", comments="test plan")

    def patch(sample: int, body: dict, headers=h) -> falcon.testing.Result:
        return client.simulate_patch(f"{PREFIX}/samples/{sample}", headers=headers, json=body)

    try:
        assert patch(mine, {"diffractionPlanId": my_plan}, demo.admin).status_code == 200
        assert patch(theirs, {"diffractionPlanId": their_plan}, demo.admin).status_code == 200
        for column, key in (("blSubSampleId", their_sub), ("diffractionPlanId", their_plan)):
            refused = patch(other, {column: key})
            missing = patch(other, {column: MISSING})
            assert refused.status_code == missing.status_code == 422, refused.text
            assert refused.text.replace(str(key), "N") == missing.text.replace(str(MISSING), "N")
        assert demo.get(f"/samples/{other}")["blSubSampleId"] is None
        for column, key in (("blSubSampleId", my_sub), ("diffractionPlanId", my_plan)):
            r = patch(other, {column: key})
            assert r.status_code == 200, r.text
            assert r.json[column] == key
        # Admin sees every row: any existing plan may be named.
        assert patch(other, {"diffractionPlanId": their_plan}, demo.admin).status_code == 200
    finally:
        for sample in (mine, other, theirs):
            reset = {"blSubSampleId": None, "diffractionPlanId": None}
            assert patch(sample, reset, demo.admin).status_code == 200


def test_a_lookup_table_no_route_serves_is_named_by_anyone(client, auth, demo, engine):
    if "ContainerType" not in sa.inspect(engine).get_table_names():
        pytest.skip("needs the official schema's ContainerType (MariaDB)")
    with engine.connect() as conn:
        kind = conn.execute(sa.text("SELECT MIN(containerTypeId) FROM ContainerType")).scalar()
    assert kind is not None
    container = demo.key("/containers", "mx1001")
    r = client.simulate_patch(
        f"{PREFIX}/containers/{container}", headers=auth("pi_anna"), json={"containerTypeId": kind}
    )
    assert r.status_code == 200, r.text
    client.simulate_patch(
        f"{PREFIX}/containers/{container}", headers=demo.admin, json={"containerTypeId": None}
    )


def test_moving_a_row_into_anothers_proposal_is_refused(client, auth, demo):
    h = auth("pi_anna")
    protein = demo.key("/proteins", "mx1001")
    r = client.simulate_patch(
        f"{PREFIX}/proteins/{protein}", headers=h, json={"proposalId": demo.proposal_id["cm2001"]}
    )
    assert r.status_code == 422, r.text
    assert [e["path"] for e in r.json["errors"]] == ["$.proposalId"]
    assert demo.get(f"/proteins/{protein}")["proposalId"] == demo.proposal_id["mx1001"]


def test_search_does_not_reach_across_the_line(client, auth):
    anna, eve = auth("pi_anna"), auth("pi_eve")
    assert listing(client, eve, "/samples", search="protk").json["total"] == 8
    r = listing(client, anna, "/samples", search="protk")
    assert (r.json["total"], r.json["results"]) == (0, [])
    assert listing(client, anna, "/samples", search="lyso").json["total"] == 8
    r = listing(client, anna, "/proposals", search="cm2001")
    assert (r.json["total"], r.json["results"]) == (0, [])
    assert listing(client, eve, "/proposals", search="cm2001").json["total"] == 1
    r = listing(client, anna, "/shippings", search="cm2001")
    assert r.json["total"] == 0
    r = listing(client, anna, "/persons", search="Marchetti")
    assert r.json["total"] == 0


@pytest.mark.parametrize(
    ("path", "expected"), (("/samples", 32), ("/proposals", 2), ("/sessions", 4))
)
def test_csv_export_lists_only_visible_rows(client, auth, path, expected):
    r = client.simulate_get(PREFIX + path, headers={**auth("pi_anna"), "Accept": "text/csv"})
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == expected
    if path == "/samples":
        assert {row["name"].split("-")[0] for row in rows} == {"lyso", "thau", "insu", "tryp"}
    if path == "/proposals":
        assert sorted(row["proposalCode"] + row["proposalNumber"] for row in rows) == [
            "mx1001",
            "mx1002",
        ]


@pytest.mark.parametrize(
    ("path", "expected"), (("/samples", 32), ("/proposals", 2), ("/sessions", 4))
)
def test_ndjson_export_lists_only_visible_rows(client, auth, path, expected):
    r = client.simulate_get(
        PREFIX + path, headers={**auth("pi_anna"), "Accept": "application/x-ndjson"}
    )
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in r.text.splitlines() if line.strip()]
    assert len(rows) == expected
    if path == "/samples":
        assert {row["name"].split("-")[0] for row in rows} == {"lyso", "thau", "insu", "tryp"}


def test_exports_of_a_user_in_nothing_are_empty(client, auth):
    h = auth("user_fred")
    r = client.simulate_get(f"{PREFIX}/samples", headers={**h, "Accept": "application/x-ndjson"})
    assert r.status_code == 200 and r.text.strip() == ""
    r = client.simulate_get(f"{PREFIX}/samples", headers={**h, "Accept": "text/csv"})
    assert r.status_code == 200
    assert list(csv.DictReader(io.StringIO(r.text))) == []


def test_export_with_the_proposal_filter_of_another_is_empty(client, auth):
    h = {**auth("pi_anna"), "Accept": "application/x-ndjson"}
    r = client.simulate_get(f"{PREFIX}/samples", headers=h, params={"proposal": "cm2001"})
    assert r.status_code == 200 and r.text.strip() == ""


def test_members_of_anothers_proposal_are_404(client, auth, demo):
    h = auth("pi_anna")
    for theirs, nobody in (
        ("/proposals/cm2001/persons", "/proposals/zz9999/persons"),
        (f"/proposals/{demo.proposal_id['cm2001']}/persons", f"/proposals/{NOWHERE}/persons"),
        ("/sessions/cm2001-1/persons", "/sessions/zz9999-1/persons"),
    ):
        r = client.simulate_get(PREFIX + theirs, headers=h)
        none = client.simulate_get(PREFIX + nobody, headers=h)
        assert r.status_code == none.status_code == 404, theirs
        assert r.json == none.json
    # Adding oneself to another's proposal is refused exactly as for a proposal that does not exist.
    body = {"personId": demo.person_id["pi_anna"], "role": "Co-Investigator"}
    r = client.simulate_post(f"{PREFIX}/proposals/cm2001/persons", headers=h, json=body)
    none = client.simulate_post(f"{PREFIX}/proposals/zz9999/persons", headers=h, json=body)
    assert r.status_code == none.status_code and r.status_code in (403, 404), r.text
    assert r.json["description"].replace("cm2001", "zz9999") == none.json["description"]
    assert demo.total("/proposals/cm2001/persons") == 0


def test_members_of_own_proposal_and_session_are_listed(client, auth, demo):
    r = listing(client, auth("pi_anna"), "/proposals/mx1001/persons")
    assert [p["personId"] for p in r.json["results"]] == [demo.person_id["member_ben"]]
    r = listing(client, auth("member_ben"), "/sessions/mx1001-2/persons")
    assert [p["personId"] for p in r.json["results"]] == [demo.person_id["visitor_cara"]]
    ben = demo.person_id["member_ben"]
    r = client.simulate_get(f"{PREFIX}/proposals/mx1001/persons/{ben}", headers=auth("pi_anna"))
    assert r.status_code == 200 and r.json["role"] == "Co-Investigator"
    r = client.simulate_get(f"{PREFIX}/proposals/mx1001/persons/{ben}", headers=auth("pi_eve"))
    assert r.status_code == 404


@pytest.mark.parametrize(
    ("who", "expected"),
    (
        ("pi_anna", {"pi_anna", "member_ben", "visitor_cara"}),
        ("member_ben", {"pi_anna", "member_ben", "visitor_cara"}),
        ("visitor_cara", {"pi_anna", "member_ben", "visitor_cara"}),
        ("pi_eve", {"pi_eve"}),
        ("user_fred", {"user_fred"}),
    ),
)
def test_persons_are_me_and_the_members_of_what_i_see(client, auth, demo, who, expected):
    r = listing(client, auth(who), "/persons")
    assert {p["login"] for p in r.json["results"]} == expected
    assert r.json["total"] == len(expected)
    for other in set(demo.person_id) - expected:
        url = f"{PREFIX}/persons/{demo.person_id[other]}"
        assert client.simulate_get(url, headers=auth(who)).status_code == 404, other


# --- proposal_members_see_all_sessions = false --------------------------------------------------


@pytest.fixture(scope="module")
def strict_client(settings) -> falcon.testing.TestClient:
    app = create_app(settings.replace(visibility_proposal_members_see_all_sessions=False))
    return falcon.testing.TestClient(app)


@pytest.mark.parametrize("who", ("member_ben", "pi_anna"))
def test_without_the_option_members_see_no_sessions_they_are_not_in(strict_client, auth, demo, who):
    h = auth(who)  # the same secret signs tokens for both apps
    r = listing(strict_client, h, "/sessions")
    assert (r.json["total"], r.json["results"]) == (0, [])
    for visit in ("mx1001-1", "mx1001-2", "mx1001-3"):
        assert (
            strict_client.simulate_get(f"{PREFIX}/sessions/{visit}", headers=h).status_code == 404
        )
        r = listing(strict_client, h, "/datacollections", session=visit)
        assert r.json["total"] == 0
    # The proposal itself, and what hangs from it, stay visible.
    r = listing(strict_client, h, "/proposals")
    assert "mx1001" in proposal_names(r.json["results"])
    assert listing(strict_client, h, "/samples", proposal="mx1001").json["total"] == 16


def test_without_the_option_session_members_and_staff_keep_their_sessions(
    strict_client, auth, demo
):
    r = listing(strict_client, auth("visitor_cara"), "/sessions")
    assert visits(demo, r.json["results"]) == ["mx1001-2"]
    r = listing(strict_client, auth("staff_dan"), "/sessions")
    assert {v for v in visits(demo, r.json["results"]) if v != "other"} == SEES_VISITS["staff_dan"]
    r = listing(strict_client, auth("pi_eve"), "/sessions")
    assert (r.json["total"], r.json["results"]) == (0, [])


def test_without_the_option_a_member_added_to_a_session_sees_it(strict_client, auth, demo):
    with on_session(strict_client, demo, "mx1001-3", "member_ben"):
        r = listing(strict_client, auth("member_ben"), "/sessions")
        assert visits(demo, r.json["results"]) == ["mx1001-3"]
    assert listing(strict_client, auth("member_ben"), "/sessions").json["total"] == 0


# --- more doors ---------------------------------------------------------------------------------


def test_staff_whoami_names_the_beamlines_of_their_group(client, auth):
    r = client.simulate_get(f"{PREFIX}/auth/whoami", headers=auth("staff_dan"))
    assert r.status_code == 200
    assert r.json["beamlines"] == ["i03", "i04"]
    assert "mx_admin" in r.json["permissions"]
    r = client.simulate_get(f"{PREFIX}/auth/whoami", headers=auth("pi_anna"))
    assert (r.json["beamlines"], r.json["permissions"]) == ([], [])


def test_acquisition_limited_to_i03_creates_sessions_only_on_i03(client, acquisition_i03, demo):
    h = acquisition_i03
    body = {"proposalId": demo.proposal_id["mx1001"], "beamLineName": "i03", "visit_number": 90}
    r = client.simulate_post(f"{PREFIX}/sessions", headers=h, json=body)
    assert r.status_code == 201, r.text
    try:
        assert client.simulate_get(f"{PREFIX}/sessions/mx1001-90", headers=h).status_code == 200
    finally:
        gone = client.simulate_delete(
            f"{PREFIX}/sessions/{r.json['sessionId']}", headers=demo.admin
        )
        assert gone.status_code == 204
    r = client.simulate_post(
        f"{PREFIX}/sessions", headers=h, json={**body, "beamLineName": "i04", "visit_number": 91}
    )
    assert r.status_code == 422, r.text
    assert demo.total("/sessions", proposal="mx1001") == 3


def test_acquisition_limited_to_i03_cannot_move_a_session_to_i04(client, acquisition_i03, demo):
    r = client.simulate_patch(
        f"{PREFIX}/sessions/mx1001-1", headers=acquisition_i03, json={"beamLineName": "i04"}
    )
    assert r.status_code == 422, r.text
    assert demo.get("/sessions/mx1001-1")["beamLineName"] == "i03"


def test_creating_in_anothers_proposal_is_the_same_422_as_in_no_proposal(client, auth, demo):
    h = auth("pi_anna")
    theirs = demo.proposal_id["cm2001"]
    body = {"proposalId": theirs, "acronym": "probe", "name": "Probe"}
    r = client.simulate_post(f"{PREFIX}/proteins", headers=h, json=body)
    none = client.simulate_post(
        f"{PREFIX}/proteins", headers=h, json={**body, "proposalId": NOWHERE}
    )
    assert r.status_code == none.status_code == 422, r.text
    assert [e["path"] for e in r.json["errors"]] == ["$.proposalId"]
    assert same_message(r.json, none.json, theirs, NOWHERE)
    assert demo.total("/proteins", proposal="cm2001") == 2


def test_an_array_with_one_row_across_the_line_creates_nothing(client, auth, demo):
    h = auth("pi_anna")
    body = [
        {"proposalId": demo.proposal_id["mx1001"], "acronym": "ok", "name": "Fine"},
        {"proposalId": demo.proposal_id["cm2001"], "acronym": "no", "name": "Probe"},
    ]
    r = client.simulate_post(f"{PREFIX}/proteins", headers=h, json=body)
    assert r.status_code == 422, r.text
    assert [e["path"] for e in r.json["errors"]] == ["$[1].proposalId"]
    assert demo.total("/proteins", proposal="mx1001") == 2
    assert demo.total("/proteins", proposal="cm2001") == 2


def test_the_session_filter_by_id_of_anothers_session_finds_nothing(client, auth, demo):
    h = auth("pi_anna")
    r = listing(client, h, "/datacollections", session=str(demo.session_id["cm2001-1"]))
    assert (r.json["total"], r.json["results"]) == (0, [])
    r = listing(client, h, "/datacollections", session=str(demo.session_id["mx1001-1"]))
    assert r.json["total"] == 4
    r = listing(client, h, "/sessions", proposal=str(demo.proposal_id["cm2001"]))
    assert (r.json["total"], r.json["results"]) == (0, [])


def test_a_limited_service_does_not_reach_other_beamlines_through_containers(
    client, acquisition_i03, demo
):
    """Containers hang from proposals: the i03 service sees those of proposals with i03 visits."""
    h = acquisition_i03
    assert listing(client, h, "/containers", proposal="mx1001").json["total"] == 4
    assert listing(client, h, "/containers", proposal="cm2001").json["total"] == 0
    theirs = demo.key("/containers", "cm2001")
    r = client.simulate_patch(f"{PREFIX}/containers/{theirs}", headers=h, json={"comments": "x"})
    assert r.status_code == 404
