"""Concurrent writers against a real server: one wins, nothing acknowledged is lost, never a 500.

The module serves an app of its own with waitress on a loopback port
(tests/servers.py), over the session's database: the SQLite demo file, or
MariaDB with ISPYB_FALCON_TEST_DATABASE_URL. Each round releases its requests
from threads at the same moment (a barrier), then reads back what the database
holds. Rows are created in mx1001 and deleted again. Logins use the `dummy`
authenticator, except where wrong passwords are needed: the `file` one.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import falcon.testing
import pytest
import sqlalchemy as sa

from ispyb_falcon import db
from ispyb_falcon.app import create_app
from ispyb_falcon.auth.passwords import set_password

from .conftest import PREFIX
from .servers import Answer, Client, app_server

ROUNDS = 16
WRITERS = 4
FILE_LOGIN = "pi_file"


def together(*calls: Callable[[], Answer]) -> list[Answer]:
    """Run the calls from threads released at the same moment; their answers in order."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Answer]) -> Answer:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def statuses(answers: list[Answer]) -> list[int]:
    return sorted(a.status for a in answers)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def server(settings, tmp_path_factory):
    """The API under waitress, with a password file for the login-limit test."""
    passwords = tmp_path_factory.mktemp("auth") / "passwords"
    set_password(passwords, FILE_LOGIN, "right", ["user"])
    local = settings.replace(
        auth_authenticators=("dummy", "file"),
        authenticator_options={"file": {"path": str(passwords)}},
    )
    engine = db.make_engine(local)
    with app_server(create_app(local, engine=engine), local) as base:
        yield Client(base), local
    engine.dispose()


@pytest.fixture(scope="module")
def admin(server) -> Client:
    return server[0].login("admin1")


@pytest.fixture(scope="module")
def shipping(admin) -> int:
    answer = admin.get("/shippings", proposal="mx1001", limit="1")
    return answer.json["results"][0]["shippingId"]


@pytest.fixture()
def created(admin):
    """Paths to delete (as admin1) when the test ends, children before parents."""
    paths: list[str] = []
    yield paths
    for path in reversed(paths):
        answer = admin.call("DELETE", path)
        assert answer.status in (204, 404), (path, answer.text)


def new_protein(admin: Client, created: list[str]) -> int:
    proposal = admin.get("/proposals/mx1001").json["proposalId"]
    answer = admin.call("POST", "/proteins", {"proposalId": proposal, "name": unique("race")})
    assert answer.status == 201, answer.text
    created.append(f"/proteins/{answer.json['proteinId']}")
    return answer.json["proteinId"]


def test_conditional_writers_one_wins_each_round_and_no_write_is_lost(admin, created):
    """Writers sending the same If-Match: exactly one 200, the others 412, and the row
    holds what the winner wrote (the check and the write are one step)."""
    path = f"/proteins/{new_protein(admin, created)}"
    for round_ in range(ROUNDS):
        etag = admin.get(path).headers["ETag"]
        names = [f"r{round_}w{i}" for i in range(WRITERS)]
        answers = together(
            *(partial(admin.call, "PATCH", path, {"acronym": n}, {"If-Match": etag}) for n in names)
        )
        assert statuses(answers) == [200] + [412] * (WRITERS - 1), (round_, answers)
        (won,) = [n for n, a in zip(names, answers, strict=True) if a.status == 200]
        stored = admin.get(path)
        assert stored.json["acronym"] == won
        assert stored.headers["ETag"] == next(a for a in answers if a.status == 200).headers["ETag"]


def test_delete_update_and_a_new_child_of_one_row_leave_no_orphan(admin, created):
    """A protein deleted while it is changed and while a crystal is created for it: no 500;
    the crystal either exists with its protein (and the delete was refused) or was refused."""
    for round_ in range(ROUNDS):
        protein = new_protein(admin, created)
        path = f"/proteins/{protein}"
        deleted, updated, child = together(
            partial(admin.call, "DELETE", path),
            partial(admin.call, "PATCH", path, {"acronym": f"u{round_}"}),
            partial(admin.call, "POST", "/crystals", {"proteinId": protein, "name": "c"}),
        )
        assert deleted.status in (204, 409), deleted.text
        assert updated.status in (200, 404), updated.text
        assert child.status in (201, 422), child.text
        crystals = admin.get("/crystals", proteinId=str(protein)).json["results"]
        if child.status == 201:
            created.append(f"/crystals/{child.json['crystalId']}")
            assert [c["crystalId"] for c in crystals] == [child.json["crystalId"]], round_
            assert deleted.status == 409 and admin.get(path).status == 200, round_
        else:
            assert crystals == [], round_
        assert (deleted.status == 204) == (admin.get(path).status == 404), round_


def dewars_with(admin: Client, barcode: str) -> list[dict]:
    return admin.get("/dewars", barCode=barcode).json["results"]


def test_creates_with_one_unique_key_make_one_row(admin, shipping, created):
    """Writers creating a dewar with the same barcode at once: one 201, the others 409."""
    for round_ in range(ROUNDS):
        barcode = unique(f"C{round_}")
        body = {"shippingId": shipping, "barCode": barcode}
        answers = together(*(partial(admin.call, "POST", "/dewars", body) for _ in range(WRITERS)))
        created += [f"/dewars/{a.json['dewarId']}" for a in answers if a.status == 201]
        assert statuses(answers) == [201] + [409] * (WRITERS - 1), (round_, answers)
        assert len(dewars_with(admin, barcode)) == 1
        assert all(a.json["errors"][0]["path"] == "$.barCode" for a in answers if a.status == 409)


def test_bulk_creates_that_clash_are_each_all_or_nothing(admin, shipping, created):
    """Arrays of dewars sharing one barcode (at different places in each): one array is
    written whole, and of each other array no row is left."""
    size = 6
    for round_ in range(ROUNDS // 2):
        shared = unique(f"S{round_}")
        arrays = []
        for w in range(WRITERS):
            codes = [unique(f"B{round_}w{w}") for _ in range(size - 1)]
            codes.insert(w % size, shared)
            arrays.append([{"shippingId": shipping, "barCode": c} for c in codes])
        answers = together(*(partial(admin.call, "POST", "/dewars", body) for body in arrays))
        for answer in answers:
            if answer.status == 201:
                created += [f"/dewars/{row['dewarId']}" for row in answer.json]
        assert statuses(answers) == [201] + [409] * (WRITERS - 1), (round_, answers)
        for body, answer in zip(arrays, answers, strict=True):
            stored = sum(len(dewars_with(admin, d["barCode"])) for d in body)
            assert stored == (size if answer.status == 201 else 1)  # 1: the winner's shared one
        assert len(dewars_with(admin, shared)) == 1


def test_simultaneous_wrong_passwords_get_no_more_401s_than_the_limit(server):
    """40 guesses at once: each is counted when it starts, so only `login_max_failures`
    of them are checked (401) and the rest wait (429 with Retry-After)."""
    client, local = server
    limit = local[("auth", "login_max_failures")]
    guesses = 40
    body = partial(dict, login=FILE_LOGIN, plugin="file")
    answers = together(
        *(
            partial(client.call, "POST", "/auth/login", body(password=f"wrong{i}"))
            for i in range(guesses)
        )
    )
    assert Counter(a.status for a in answers) == {401: limit, 429: guesses - limit}, answers
    assert all(int(a.headers["Retry-After"]) > 0 for a in answers if a.status == 429)
    assert all(a.json["title"].startswith(("401 ", "429 ")) for a in answers)


@contextlib.contextmanager
def holding_the_lock(database_url: str, protein: int) -> Iterator[None]:
    """Another client holding the protein's row (MariaDB) or the write lock (SQLite)."""
    url = sa.make_url(database_url)
    if url.get_backend_name() == "sqlite":
        holder = sqlite3.connect(url.database, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1 FROM Protein WHERE proteinId = %s FOR UPDATE", (protein,))
        yield
        conn.rollback()
    engine.dispose()


def test_a_write_kept_waiting_for_a_lock_is_a_503_and_changes_nothing(
    settings, database_url, admin, created
):
    """Past SQLite's busy timeout or MariaDB's lock wait timeout: a 503 to retry, not a 500."""
    protein = new_protein(admin, created)
    local = settings.replace(database_connect_timeout=1)  # SQLite's busy timeout
    engine = db.make_engine(local)
    if engine.dialect.name != "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _wait_one_second(dbapi_conn, _record) -> None:
            with dbapi_conn.cursor() as cursor:
                cursor.execute("SET SESSION innodb_lock_wait_timeout = 1")

    client = falcon.testing.TestClient(create_app(local, engine=engine))
    token = client.simulate_post(
        f"{PREFIX}/auth/login", json={"login": "admin1", "password": "x"}
    ).json["token"]
    path = f"{PREFIX}/proteins/{protein}"
    with holding_the_lock(database_url, protein):
        r = client.simulate_patch(
            path, json={"acronym": "waited"}, headers={"Authorization": f"Bearer {token}"}
        )
    assert r.status_code == 503, r.text
    assert r.headers["Retry-After"] and r.json["title"].startswith("503 ")
    assert admin.get(f"/proteins/{protein}").json["acronym"] is None
    engine.dispose()
