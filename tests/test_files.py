"""The file routes through HTTP (API.md section 9): what is sent, to whom, and from where.

The demo's first copy names files below the session's data root (`data_root`,
conftest.py: `ispyb_falcon.demo.files.place`), and the server is configured
with `[files] roots` = that root. Rows are found by visit name, as in
tests/test_security_visibility.py, so the same tests run on SQLite and
MariaDB. Hostile paths are written into a collection's `xtalSnapshotFullPath4`
(which the demo leaves empty) through the test database's engine, and the
column is emptied again after each test.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import falcon.testing
import pytest
import sqlalchemy as sa

from ispyb_falcon.app import create_app

from .conftest import PREFIX

FOUR = "xtalSnapshotFullPath4"
NOT_FOUND = {"title": "404 Not Found", "description": "No such resource."}


def url(path: str) -> str:
    return PREFIX + path


@pytest.fixture()
def admin(auth):
    return auth("admin1")


def rows(client, headers, path: str, **params) -> list[dict]:
    r = client.simulate_get(url(path), params={"limit": "1000", **params}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json["results"]


@pytest.fixture()
def collection(client, admin) -> dict:
    """The first data collection of mx1001-1 (pi_anna's; user_fred and pi_eve see nothing of it)."""
    return rows(client, admin, "/datacollections", session="mx1001-1", order_by="dataCollectionId")[
        0
    ]


@pytest.fixture()
def image(client, admin, collection) -> dict:
    return rows(client, admin, "/images", dataCollectionId=str(collection["dataCollectionId"]))[0]


@pytest.fixture()
def attachment(client, admin, collection) -> dict:
    (row,) = rows(client, admin, f"/datacollections/{collection['dataCollectionId']}/attachments")
    return row


@pytest.fixture()
def program_attachment(client, admin) -> dict:
    return rows(client, admin, "/autoprocprogramattachments", proposal="mx1001")[0]


@pytest.fixture()
def point(engine, collection):
    """point(path): the collection's xtalSnapshotFullPath4 names `path` for the test."""
    table = sa.Table("DataCollection", sa.MetaData(), autoload_with=engine)
    key = table.c.dataCollectionId == collection["dataCollectionId"]

    def set_path(path: str | None) -> str:
        with engine.begin() as conn:
            conn.execute(table.update().where(key).values({FOUR: path}))
        return f"/datacollections/{collection['dataCollectionId']}/snapshots/4"

    yield set_path
    set_path(None)


def fetch(client, headers, path: str, extra: dict | None = None, **params):
    return client.simulate_get(url(path), params=params, headers={**headers, **(extra or {})})


# --- every route: the bytes of the file, with its headers ------------------------------------


CASES = {
    "snapshot": (
        lambda c, i, a, p: f"/datacollections/{c['dataCollectionId']}/snapshots/1",
        lambda c, i, a, p: c["xtalSnapshotFullPath1"],
        "image/png",
    ),
    "thumbnail": (
        lambda c, i, a, p: f"/images/{i['imageId']}/thumbnail",
        lambda c, i, a, p: i["jpegThumbnailFileFullPath"],
        "image/jpeg",
    ),
    "jpeg": (
        lambda c, i, a, p: f"/images/{i['imageId']}/jpeg",
        lambda c, i, a, p: i["jpegFileFullPath"],
        "image/jpeg",
    ),
    "collection attachment": (
        lambda c, i, a, p: (
            f"/datacollections/{c['dataCollectionId']}/attachments/"
            f"{a['dataCollectionFileAttachmentId']}/file"
        ),
        lambda c, i, a, p: a["fileFullPath"],
        "text/plain",
    ),
    "program attachment": (
        lambda c, i, a, p: f"/autoprocprogramattachments/{p['autoProcProgramAttachmentId']}/file",
        lambda c, i, a, p: p["filePath"] + p["fileName"],
        "text/html",
    ),
}


@pytest.fixture(params=list(CASES))
def case(request, collection, image, attachment, program_attachment):
    """(route path, the file on disk, its Content-Type) of each file route."""
    route, path, kind = CASES[request.param]
    found = (collection, image, attachment, program_attachment)
    return route(*found), Path(path(*found)), kind


def test_each_route_sends_the_file_with_its_headers(client, auth, case, data_root):
    path, on_disk, kind = case
    assert on_disk.is_relative_to(data_root)
    r = fetch(client, auth("pi_anna"), path)
    assert r.status_code == 200, r.text
    assert r.content == on_disk.read_bytes() and r.content
    assert r.headers["content-type"] == kind
    assert r.headers["content-length"] == str(on_disk.stat().st_size)
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["etag"].startswith('"') and r.headers["last-modified"].endswith("GMT")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in r.headers["content-security-policy"]
    assert "content-disposition" not in r.headers


def test_the_demo_images_are_what_their_names_say(client, auth, collection, image):
    anna = auth("pi_anna")
    snapshot = fetch(client, anna, f"/datacollections/{collection['dataCollectionId']}/snapshots/1")
    assert snapshot.content.startswith(b"\x89PNG\r\n\x1a\n")
    for kind in ("thumbnail", "jpeg"):
        r = fetch(client, anna, f"/images/{image['imageId']}/{kind}")
        assert r.content[:3] == b"\xff\xd8\xff" and r.content[-2:] == b"\xff\xd9"


def test_a_collection_lists_its_attachments(client, auth, collection, attachment):
    path = f"/datacollections/{collection['dataCollectionId']}/attachments"
    found = rows(client, auth("member_ben"), path)
    assert [a["dataCollectionFileAttachmentId"] for a in found] == [
        attachment["dataCollectionFileAttachmentId"]
    ]
    assert found[0]["fileType"] == "log" and found[0]["fileFullPath"].endswith("_collect.log")
    r = client.simulate_get(url(path), headers=auth("user_fred"))
    assert r.status_code == 404


# --- conditional GET and ranges ----------------------------------------------------------------


def test_a_current_etag_or_date_gives_304_and_an_old_one_the_file(client, auth, collection):
    anna = auth("pi_anna")
    path = f"/datacollections/{collection['dataCollectionId']}/snapshots/1"
    first = fetch(client, anna, path)
    tag, modified = first.headers["etag"], first.headers["last-modified"]
    r = fetch(client, anna, path, {"If-None-Match": tag})
    assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == tag
    r = fetch(client, anna, path, {"If-Modified-Since": modified})
    assert r.status_code == 304
    r = fetch(client, anna, path, {"If-None-Match": '"other"', "If-Modified-Since": modified})
    assert r.status_code == 200 and r.content == first.content  # If-None-Match wins
    r = fetch(client, anna, path, {"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"})
    assert r.status_code == 200 and r.content == first.content


def test_one_byte_range_is_a_206_and_one_outside_the_file_a_416(client, auth, collection):
    anna = auth("pi_anna")
    path = f"/datacollections/{collection['dataCollectionId']}/snapshots/1"
    whole = fetch(client, anna, path).content
    size = len(whole)
    for header, (first, last) in {
        "bytes=0-9": (0, 9),
        "bytes=10-": (10, size - 1),
        "bytes=-5": (size - 5, size - 1),
        f"bytes=100-{size + 50}": (100, size - 1),
    }.items():
        r = fetch(client, anna, path, {"Range": header})
        assert r.status_code == 206, header
        assert r.content == whole[first : last + 1]
        assert r.headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert r.headers["content-length"] == str(last - first + 1)
    r = fetch(client, anna, path, {"Range": f"bytes={size}-"})
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{size}"
    assert r.headers["content-type"] == "application/json" and r.json["title"].startswith("416")
    # Several ranges, another unit, a stale If-Range: the whole file.
    for extra in (
        {"Range": "bytes=0-1,5-6"},
        {"Range": "items=0-1"},
        {"Range": "bytes=0-9", "If-Range": '"stale"'},
    ):
        r = fetch(client, anna, path, extra)
        assert r.status_code == 200 and r.content == whole, extra
    etag = fetch(client, anna, path).headers["etag"]
    r = fetch(client, anna, path, {"Range": "bytes=0-9", "If-Range": etag})
    assert r.status_code == 206 and r.content == whole[:10]


def test_a_large_file_is_sent_in_chunks_and_closed(client, auth, point, data_root):
    big = data_root / "big.bin"
    content = os.urandom(300_000)  # several chunks of 64 KiB
    big.write_bytes(content)
    path = point(str(big))
    anna = auth("pi_anna")
    opened = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    for _ in range(20):
        r = fetch(client, anna, path)
        assert r.status_code == 200 and r.content == content
        assert r.headers["content-type"] == "application/octet-stream"
    r = fetch(client, anna, path, {"Range": "bytes=65530-131080"})
    assert r.content == content[65530:131081]
    if opened is not None:  # every descriptor the answers opened is closed again
        assert len(os.listdir("/proc/self/fd")) <= opened


def test_download_names_the_file_safely(client, auth, point, data_root):
    anna = auth("pi_anna")
    odd = data_root / 'ré"sumé\\ 1.txt'
    odd.write_text("log line\n")
    path = point(str(odd))
    r = fetch(client, anna, path, download="1")
    assert r.status_code == 200 and r.text == "log line\n"
    assert r.headers["content-type"] == "text/plain"
    assert r.headers["content-disposition"] == (
        "attachment; filename=\"r__sum__ 1.txt\"; filename*=UTF-8''r%C3%A9%22sum%C3%A9%5C%201.txt"
    )
    r = fetch(client, anna, path, download="0")
    assert "content-disposition" not in r.headers
    for bad in ({"download": "maybe"}, {"dl": "1"}):
        r = fetch(client, anna, path, **bad)
        assert r.status_code == 400 and r.json["parameter"] in bad


# --- who sees what -----------------------------------------------------------------------------


def test_a_file_of_a_row_the_caller_may_not_see_is_the_404_of_no_row(
    client, auth, case, collection
):
    path = case[0]
    anna = fetch(client, auth("pi_anna"), path)
    assert anna.status_code == 200
    for login in ("user_fred", "pi_eve", "visitor_cara"):  # cara sees mx1001-2 only
        r = fetch(client, auth(login), path)
        assert r.status_code == 404 and r.json == NOT_FOUND, login
    missing = re.sub(r"/\d+/", "/987654321/", path, count=1)
    r = fetch(client, auth("admin1"), missing)
    assert r.status_code == 404 and r.json == NOT_FOUND
    r = client.simulate_get(url(path))
    assert r.status_code == 401 and r.headers["content-type"] == "application/json"


def test_a_row_naming_no_file_or_a_missing_one_says_which(
    client, auth, collection, point, data_root
):
    anna = auth("pi_anna")
    r = fetch(client, anna, f"/datacollections/{collection['dataCollectionId']}/snapshots/2")
    assert r.status_code == 404 and r.json["description"] == "The row names no file."
    r = fetch(client, anna, point(str(data_root / "dls" / "gone.png")))
    assert r.status_code == 404 and r.json["description"] == "The file is not on disk."
    assert str(data_root) not in r.text
    r = fetch(client, anna, point("   "))
    assert r.json["description"] == "The row names no file."
    for n in ("5", "0", "x"):
        r = fetch(client, anna, f"/datacollections/{collection['dataCollectionId']}/snapshots/{n}")
        assert r.status_code == 404 and "1, 2, 3, 4" in r.json["description"]


# --- hostile paths --------------------------------------------------------------------------


@pytest.fixture()
def outside(data_root):
    """A real file outside the data root, beside it (and a folder named like its prefix)."""
    elsewhere = data_root.parent / f"{data_root.name}-outside"
    elsewhere.mkdir(exist_ok=True)
    (elsewhere / "secret.png").write_bytes(b"\x89PNG secret")
    prefix = data_root.parent / f"{data_root.name}2"  # /data2 is not below /data
    prefix.mkdir(exist_ok=True)
    (prefix / "secret.png").write_bytes(b"\x89PNG secret")
    return elsewhere


def hostile(data_root: Path, outside: Path) -> dict[str, tuple[str, str]]:
    """name -> (the path a row names, what the 404 says)."""
    link = data_root / "link.png"
    if not link.is_symlink():
        link.symlink_to(outside / "secret.png")
    linked_dir = data_root / "linked"
    if not linked_dir.is_symlink():
        linked_dir.symlink_to(outside, target_is_directory=True)
    pipe = data_root / "pipe.png"
    if not pipe.exists():
        os.mkfifo(pipe)
    outside_root = "The file is not below this server's data roots."
    return {
        "dot-dot": (f"{data_root}/dls/../../{outside.name}/secret.png", outside_root),
        "link to a file outside": (str(link), outside_root),
        "link to a folder outside": (f"{linked_dir}/secret.png", outside_root),
        "a root's prefix": (f"{data_root}2/secret.png", outside_root),
        "relative": ("dls/secret.png", outside_root),
        "absolute elsewhere": ("/etc/passwd", outside_root),
        "named pipe": (str(pipe), "The row names something that is not a regular file."),
        "directory": (f"{data_root}/dls", "The row names something that is not a regular file."),
        "the root itself": (str(data_root), outside_root),
    }


@pytest.mark.parametrize(
    "name",
    [
        "dot-dot",
        "link to a file outside",
        "link to a folder outside",
        "a root's prefix",
        "relative",
        "absolute elsewhere",
        "named pipe",
        "directory",
        "the root itself",
    ],
)
def test_a_hostile_path_is_a_404_and_a_warning(
    client, auth, point, data_root, outside, caplog, name
):
    written, said = hostile(data_root, outside)[name]
    path = point(written)
    with caplog.at_level(logging.WARNING, logger="ispyb_falcon.files"):
        r = fetch(client, auth("admin1"), path)
    assert r.status_code == 404 and r.headers["content-type"] == "application/json"
    assert r.json["description"] == said
    assert "secret" not in r.text and str(data_root.parent) not in r.text
    warnings = [rec for rec in caplog.records if rec.name == "ispyb_falcon.files"]
    assert warnings and all(rec.levelno == logging.WARNING for rec in warnings)
    assert repr(written) in warnings[0].getMessage()


def test_a_link_that_stays_inside_the_roots_is_followed(client, auth, point, data_root, collection):
    inside = data_root / "inside-link.png"
    target = Path(collection["xtalSnapshotFullPath1"])
    if not inside.is_symlink():
        inside.symlink_to(target)
    r = fetch(client, auth("pi_anna"), point(str(inside)))
    assert r.status_code == 200 and r.content == target.read_bytes()
    r = fetch(client, auth("pi_anna"), point(f"{data_root}/dls/../{inside.name}"))
    assert r.status_code == 200 and r.content == target.read_bytes()


def test_names_that_are_not_utf8_crash_nothing(client, auth, point, data_root):
    raw = os.fsencode(str(data_root)) + b"/caf\xe9.png"  # a Latin-1 name on disk
    with open(raw, "wb") as f:
        f.write(b"latin")
    anna = auth("pi_anna")
    # The row's text names café.png, which the file system holds as UTF-8 bytes: not there.
    r = fetch(client, anna, point(f"{data_root}/café.png"))
    assert r.status_code == 404 and r.json["description"] == "The file is not on disk."
    (data_root / "café.png").write_bytes(b"utf8")
    r = fetch(client, anna, point(f"{data_root}/café.png"), download="1")
    assert r.status_code == 200 and r.content == b"utf8"
    assert "filename*=UTF-8''caf%C3%A9.png" in r.headers["content-disposition"]


def test_without_roots_no_file_is_served_and_start_up_says_so(settings, auth, collection, caplog):
    with caplog.at_level(logging.WARNING, logger="ispyb_falcon"):
        app = create_app(settings.replace(files_roots=()))
    assert any("no [files] roots configured" in rec.getMessage() for rec in caplog.records)
    client = falcon.testing.TestClient(app)
    r = client.simulate_post(url("/auth/login"), json={"login": "pi_anna", "password": "demo"})
    anna = {"Authorization": f"Bearer {r.json['token']}"}
    r = fetch(client, anna, f"/datacollections/{collection['dataCollectionId']}/snapshots/1")
    assert r.status_code == 404 and "No data roots are configured" in r.json["description"]


# --- the API document, and sites whose database lacks a column ------------------------------


def test_the_api_document_describes_the_file_routes(client):
    paths = client.simulate_get(url("/openapi.json")).json["paths"]
    binary = {"type": "string", "format": "binary"}
    snapshot = paths["/datacollections/{id}/snapshots/{n}"]["get"]
    assert snapshot["responses"]["200"]["content"]["image/png"]["schema"] == binary
    assert {"200", "206", "304", "404", "416"} <= set(snapshot["responses"])
    n = next(p for p in snapshot["parameters"] if p.get("name") == "n")
    assert n["schema"]["enum"] == [1, 2, 3, 4]
    for path in (
        "/images/{id}/thumbnail",
        "/images/{id}/jpeg",
        "/autoprocprogramattachments/{id}/file",
        "/datacollections/{id}/attachments/{key}/file",
    ):
        assert set(paths[path]) == {"get"}, path
    assert set(paths["/datacollections/{id}/attachments/{key}"]) == {
        "get",
        "patch",
        "put",
        "delete",
    }
    assert paths["/auth/sign"]["post"]["tags"] == ["auth"]


@pytest.mark.skipif(
    bool(os.environ.get("ISPYB_FALCON_TEST_DATABASE_URL")),
    reason="drops columns of a copy of the SQLite demo database",
)
def test_a_site_lacking_a_column_loses_only_the_files_it_names(
    settings, database_url, auth, collection, image, tmp_path
):
    copy = tmp_path / "site.sqlite"
    copy.write_bytes(Path(sa.make_url(database_url).database).read_bytes())
    engine = sa.create_engine(f"sqlite:///{copy}")
    with engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE DataCollection DROP COLUMN {FOUR}"))
        conn.execute(sa.text("ALTER TABLE Image DROP COLUMN jpegFileFullPath"))
    engine.dispose()
    app = create_app(
        settings.replace(database_url=f"sqlite:///{copy}", database_schema_check="off")
    )
    client = falcon.testing.TestClient(app)
    r = client.simulate_post(url("/auth/login"), json={"login": "pi_anna", "password": "demo"})
    anna = {"Authorization": f"Bearer {r.json['token']}"}
    dc = collection["dataCollectionId"]
    assert fetch(client, anna, f"/datacollections/{dc}/snapshots/1").status_code == 200
    r = fetch(client, anna, f"/datacollections/{dc}/snapshots/4")
    assert r.status_code == 404 and "n is one of 1, 2, 3 on" in r.json["description"]
    assert fetch(client, anna, f"/images/{image['imageId']}/thumbnail").status_code == 200
    r = fetch(client, anna, f"/images/{image['imageId']}/jpeg")
    assert r.status_code == 404 and r.headers["content-type"] == "application/json"
    paths = client.simulate_get(url("/openapi.json")).json["paths"]
    assert "/images/{id}/jpeg" not in paths and "/images/{id}/thumbnail" in paths


def test_acquisition_attaches_a_file_to_a_collection_and_it_is_served(
    client, auth, settings, collection, data_root
):
    from ispyb_falcon.app import make_tokens

    token, _ = make_tokens(settings).issue("mxcube", ["acquisition"])
    mxcube = {"Authorization": f"Bearer {token}"}
    (data_root / "params.json").write_text('{"omega": 0.1}')
    base = f"/datacollections/{collection['dataCollectionId']}/attachments"
    body = {"fileFullPath": str(data_root / "params.json"), "fileType": "params"}
    r = client.simulate_post(url(base), json=body, headers=auth("pi_anna"))
    assert r.status_code == 403
    r = client.simulate_post(url(base), json=body, headers=mxcube)
    assert r.status_code == 201, r.text
    key = r.json["dataCollectionFileAttachmentId"]
    assert r.json["dataCollectionId"] == collection["dataCollectionId"]
    try:
        r = fetch(client, auth("member_ben"), f"{base}/{key}/file")
        assert r.status_code == 200 and r.text == '{"omega": 0.1}'
        assert r.headers["content-type"] == "application/json"
    finally:
        r = client.simulate_delete(url(f"{base}/{key}"), headers=auth("admin1"))
        assert r.status_code == 204
    assert fetch(client, auth("admin1"), f"{base}/{key}/file").status_code == 404
