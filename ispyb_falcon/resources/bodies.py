"""Request bodies: JSON read within a budget, before anything recurses into it.

A body is one object or an array of objects (a bulk POST), and a login is one
object: nothing the API takes nests deeper than two levels. Python's JSON
parser and the schema validators recurse once per level, so a body of ten
thousand `[` would exhaust the stack (a 500) before any check ran; the nesting
is therefore measured on the raw text first, with strings blanked out so that
brackets inside them do not count. What parses is then held to the budget
(arrays, objects, strings). A key given twice in one object is refused: JSON
leaves its meaning open, and taking the last value silently would write what
the client may not have meant.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import falcon

from ..errors import ApiError, bad_request, unprocessable

MAX_DEPTH = 16  # arrays and objects inside one another; a bulk body is 2
MAX_ITEMS = 1000  # elements of an array (the rows of a bulk POST), members of an object
MAX_STRING = 1 << 20  # characters of a string (a key or a value): the default body limit

_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def read_json(req: falcon.Request, limit: int) -> Any:
    """The body as JSON: 415 if it is not JSON, 413 if too large, 400 if malformed, nested
    too deep or with a key twice, 422 if an array, object or string exceeds the budget."""
    ctype = (req.content_type or "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise ApiError(falcon.HTTP_415, "The request body must be application/json.")
    if req.content_length is not None and req.content_length > limit:
        raise too_large(limit)
    raw = req.bounded_stream.read(limit + 1)
    if len(raw) > limit:
        raise too_large(limit)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}") from None
    if nesting(text) > MAX_DEPTH:
        raise bad_request(f"The request body nests arrays and objects deeper than {MAX_DEPTH}.")
    try:
        # NaN/Infinity (and 1e999) become floats here and a 422 with their path at validation.
        body = json.loads(text, object_pairs_hook=_object)
    except ValueError as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}") from None
    errors = over_budget(body)
    if errors:
        raise unprocessable("The request body exceeds what one request may carry.", errors)
    return body


def too_large(limit: int) -> ApiError:
    return ApiError(falcon.HTTP_413, f"The request body exceeds {limit} bytes.")


def nesting(text: str) -> int:
    """How deep arrays and objects nest in this JSON text (0 for a scalar), without parsing it."""
    depth = deepest = 0
    for bracket in _BRACKET.finditer(_STRING.sub('""', text)):
        if bracket[0] in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH:
                    break  # enough to refuse it
        else:
            depth -= 1
    return deepest


def _object(pairs: list[tuple[str, Any]]) -> dict:
    """One JSON object, refused (ValueError: a 400) if it names a key twice."""
    found = dict(pairs)
    if len(found) < len(pairs):
        twice = sorted(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
        raise ValueError(f"the key(s) {', '.join(map(repr, twice))} given more than once")
    return found


def over_budget(body: Any) -> list[dict]:
    """Every array, object and string of `body` beyond the budget, with its JSON path."""
    errors = []
    todo = [("$", body)]  # no recursion: the nesting is bounded, the width is not
    while todo:
        path, value = todo.pop()
        if isinstance(value, str):
            if len(value) > MAX_STRING:
                errors.append({"path": path, "message": f"longer than {MAX_STRING} characters"})
        elif isinstance(value, list):
            if len(value) > MAX_ITEMS:
                errors.append({"path": path, "message": f"more than {MAX_ITEMS} elements"})
            else:
                todo += ((f"{path}[{i}]", v) for i, v in enumerate(value))
        elif isinstance(value, dict):
            if len(value) > MAX_ITEMS:
                errors.append({"path": path, "message": f"more than {MAX_ITEMS} members"})
            else:
                todo += ((f"{path}.{k}", k) for k in value)  # keys are strings too
                todo += ((f"{path}.{k}", v) for k, v in value.items())
    return sorted(errors, key=lambda e: e["path"])
