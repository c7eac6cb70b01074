"""Entity tags of JSON bodies and the If-Match / If-None-Match tests on them."""

from __future__ import annotations

import hashlib
from typing import Any

from .. import serialize

# hashlib lets other threads run while it hashes 2,048 bytes or more: for a small body
# the hash takes microseconds, but the request thread must then win the GIL back from
# the others, which under load cost more than the hash (py-spy: a tenth of the server's
# samples on `GET /proposals`). A small body is hashed in pieces that keep the GIL; a
# large one in one call, which lets the other threads work meanwhile.
PIECE = 2047
PIECES_UP_TO = 64 * 1024


def etag_of_text(text: str) -> str:
    """The entity tag of a JSON body, from the text that is sent (serialized once)."""
    data = text.encode()
    if len(data) > PIECES_UP_TO:
        return hashlib.sha256(data).hexdigest()[:32]
    digest = hashlib.sha256()
    view = memoryview(data)
    for start in range(0, len(data), PIECE):
        digest.update(view[start : start + PIECE])
    return digest.hexdigest()[:32]


def etag_of(data: Any) -> str:
    return etag_of_text(serialize.dumps(data))


def matches(tags: list | None, etag: str) -> bool:
    """Whether an If-Match / If-None-Match list names this entity tag (or is `*`)."""
    return any(str(t) in ("*", etag) for t in tags or ())
