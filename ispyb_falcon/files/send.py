"""An open file as an HTTP answer: type, length, validators, conditional GET, one byte range.

The body is read from the descriptor in chunks as the server sends it (constant
memory), and the descriptor is closed when the server is done with the answer,
whether it was sent whole or the client went away.
"""

from __future__ import annotations

import datetime as dt
import mimetypes
import os
import re
from urllib.parse import quote

import falcon

from ..errors import ApiError
from .roots import Opened

CHUNK = 64 * 1024
# Text a program writes (XDS's .LP, logs) that mimetypes does not know or calls otherwise.
TEXT = {".log", ".lp", ".txt", ".out", ".err"}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
# Served inline from the API's origin, a file (an HTML report a pipeline wrote) runs no
# script and reaches nothing of the API: a sandbox of its own.
SANDBOX = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"


def content_type(name: str) -> str:
    ext = os.path.splitext(name)[1].lower()
    if ext in TEXT:
        return "text/plain"
    guessed, encoding = mimetypes.guess_type(name, strict=False)
    if encoding or not guessed:  # .gz, .bz2: the bytes as stored, not to be unpacked
        return "application/octet-stream"
    return guessed


def disposition(name: str) -> str:
    """`attachment` with the file's name: an ASCII fallback, and the name itself (RFC 6266)."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\%' else "_" for c in name)
    exact = quote(name.encode("utf-8", "surrogateescape"), safe="")
    return f"attachment; filename=\"{fallback or 'file'}\"; filename*=UTF-8''{exact}"


def etag(f: Opened) -> str:
    return f"{f.size:x}-{f.mtime_ns:x}"


def _read(fd: int, n: int, offset: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, n, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # Windows
    return os.read(fd, n)


class Chunks:
    """The WSGI body: `length` bytes of the descriptor from `start`; `close()` closes it."""

    def __init__(self, fd: int, start: int, length: int) -> None:
        self.fd, self.start, self.left = fd, start, length

    def __iter__(self):
        offset = self.start
        while self.left > 0:
            data = _read(self.fd, min(CHUNK, self.left), offset)
            if not data:  # the file shrank since it was opened
                return
            offset += len(data)
            self.left -= len(data)
            yield data

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) of a single `bytes=` range; None to send the whole file (no header, a
    header this server ignores: several ranges, another unit, a malformed one); 416 when
    no byte of the file is in it."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if m is None or m.group(1) == m.group(2) == "":
        return None
    first, last = m.group(1), m.group(2)
    if first == "":  # the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise unsatisfiable(size)
        return max(0, size - n), size - 1
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if last != "" and int(last) < start:
        return None  # invalid: ignored, as RFC 9110 says
    if start >= size:
        raise unsatisfiable(size)
    return start, end


def unsatisfiable(size: int) -> ApiError:
    return ApiError(
        falcon.HTTP_416,
        f"The range asked for lies outside the file ({size} bytes).",
        headers={"Content-Range": f"bytes */{size}"},
    )


def _not_modified(req: falcon.Request, tag: str, modified: dt.datetime) -> bool:
    if req.if_none_match is not None:  # wins over If-Modified-Since (RFC 9110 13.2.2)
        return any(str(t) in ("*", tag) for t in req.if_none_match)
    since = req.if_modified_since
    return since is not None and modified <= since.replace(tzinfo=dt.UTC)


def send(req: falcon.Request, resp: falcon.Response, f: Opened, download: bool) -> None:
    """Answer with the file (200, 206 or 304); takes charge of closing its descriptor."""
    try:
        tag = etag(f)
        modified = dt.datetime.fromtimestamp(f.mtime_ns // 1_000_000_000, dt.UTC)
        resp.etag = tag
        resp.last_modified = modified
        resp.accept_ranges = "bytes"
        resp.cache_control = ["private", "no-cache"]
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("Content-Security-Policy", SANDBOX)
        if download:
            resp.set_header("Content-Disposition", disposition(f.name))
        if _not_modified(req, tag, modified):
            resp.status = falcon.HTTP_304
            os.close(f.fd)
            return
        first, last = 0, f.size - 1
        wanted = req.get_header("If-Range")
        if wanted is None or wanted.strip() in (f'"{tag}"', falcon.dt_to_http(modified)):
            found = byte_range(req.get_header("Range"), f.size)
            if found is not None:
                first, last = found
                resp.status = falcon.HTTP_206
                resp.content_range = (first, last, f.size)
    except BaseException:
        os.close(f.fd)
        raise
    resp.content_type = content_type(f.name)
    resp.content_length = last - first + 1
    resp.stream = Chunks(f.fd, first, last - first + 1)
