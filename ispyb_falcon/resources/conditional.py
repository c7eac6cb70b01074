"""Entity tags of JSON bodies and the If-Match / If-None-Match tests on them."""

from __future__ import annotations

import hashlib
from typing import Any

from .. import serialize


def etag_of_text(text: str) -> str:
    """The entity tag of a JSON body, from the text that is sent (serialized once)."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def etag_of(data: Any) -> str:
    return etag_of_text(serialize.dumps(data))


def matches(tags: list | None, etag: str) -> bool:
    """Whether an If-Match / If-None-Match list names this entity tag (or is `*`)."""
    return any(str(t) in ("*", etag) for t in tags or ())
