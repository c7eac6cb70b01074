"""A table's route in the document: its paths, and the schemas its bodies and rows follow.

Nothing here is written per table: every path, parameter and body comes from
a `Route` and the table's JSON Schema (the one requests are validated with).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping

from ..query.operators import OPERATORS
from ..resources.declare import Count, Route
from .shared import FLAG, TEXT, body, param, ref, responses, success

PAGE_FIELDS = {
    "total": {
        "type": ["integer", "null"],
        "description": "Rows matching the filters (`null` with `count=none`)",
    },
    "skip": {"type": "integer"},
    "limit": {"type": ["integer", "null"]},
    "next": {
        "type": ["string", "null"],
        "description": "Cursor of the next page (`?after=`), null on the last page.",
    },
}


def _public(schema: dict) -> dict:
    out = copy.deepcopy(schema)
    out.pop("$schema", None)
    out.pop("$id", None)
    return out


def columns(schema: dict) -> list[str]:
    """The columns a list can filter, sort and return: all but the blobs."""
    return [c for c, s in schema["properties"].items() if not s.get("x-ispyb", {}).get("blob")]


def _fields(schema: dict, title: str, description: str, blobs: bool) -> dict:
    """Any subset of the table's columns, as a request or response names them.

    The column types without the database annotations (`x-ispyb`), which the
    table's own schema carries: a client needs the types, not the SQL; nor the
    `default`s, which are what a created row gets: a change leaves out what it
    does not change, and a response has what the row holds. An ENUM column is
    its list of values alone (null among them where the column allows it): the
    same values as with its `type` beside, and generators make one enumeration
    of it rather than one per type.
    """
    properties = {
        k: {
            key: v
            for key, v in column.items()
            if key not in ("x-ispyb", "default") and not (key == "type" and "enum" in column)
        }
        for k, column in schema["properties"].items()
        if blobs or not column.get("x-ispyb", {}).get("blob")
    }
    return {
        "title": title,
        "description": description,
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }


def embedded_properties(route: Route) -> dict:
    """What `?embed=` adds to a row: a parent as its own route serves it (null where the
    caller may not see it), a count as an integer."""
    found = {}
    for e in route.embeds:
        if isinstance(e, Count):
            found[e.name] = {
                "type": "integer",
                "description": f"With `embed={e.name}`: the {e.table} rows below this one "
                "that the caller may see.",
            }
        else:
            found[e.name] = {
                "anyOf": [ref("schemas", f"{e.table}Row"), {"type": "null"}],
                "description": f"With `embed={e.name}`: the {e.table} row this one refers to "
                "(null if none, or one the caller may not see).",
            }
    return found


def embed_param(route: Route) -> list[dict]:
    """The `embed` parameter of a route that declares embeddings (none otherwise)."""
    if not route.embeds:
        return []
    names = [e.name for e in route.embeds]
    parents = [e.name for e in route.embeds if not isinstance(e, Count)]
    narrowed = (
        f" `fields=` may name an embedded row's columns (`{parents[0]}.<column>`)."
        if parents
        else ""
    )
    return [
        {
            "name": "embed",
            "in": "query",
            "required": False,
            "style": "form",
            "explode": False,
            "description": "Related rows to add to each row, comma-separated: a parent under "
            "its name (null where the caller may not see it), or a count of the child rows the "
            "caller may see." + narrowed,
            "schema": {"type": "array", "items": {"type": "string", "enum": names}},
        }
    ]


def table_schemas(route: Route, schema: dict) -> dict:
    t = route.table
    row = _fields(
        schema,
        f"{t}Row",
        f"A row of {t} as served: the columns asked for, blobs left out"
        + ("; with `embed=`, the related rows asked for." if route.embeds else "."),
        False,
    )
    row["properties"].update(embedded_properties(route))
    out = {
        t: _public(schema),
        f"{t}Row": row,
        f"{t}List": {
            "title": f"{t}List",
            "type": "object",
            "required": ["total", "skip", "limit", "next", "results"],
            "properties": {
                **PAGE_FIELDS,
                "results": {"type": "array", "items": ref("schemas", f"{t}Row")},
            },
        },
    }
    if route.item:
        out[f"{t}Patch"] = _fields(
            schema,
            f"{t}Patch",
            f"The columns of a {t} row to change; the others keep their values.",
            True,
        )
    return out


def filters(table: str, names: list[str]) -> dict:
    """The column filters of a list, as one parameter: each key is a query parameter of its own.

    `style: form` with `explode` sends `{"title[like]": "x"}` as `?title[like]=x`; the
    keys' pattern names every column and operator, as the server reads them. The
    example is empty, so that Swagger UI's "Try it out" lists every row until asked.
    """
    either = "|".join(names)
    operators = "|".join(k for k in OPERATORS if k != "eq")
    flags = "|".join(k for k, op in OPERATORS.items() if op.boolean)
    syntax = "; ".join(
        f"`<column>{'' if key == 'eq' else f'[{key}]'}=v`: {op.doc}"
        for key, op in OPERATORS.items()
    )
    return {
        "name": "filters",
        "in": "query",
        "style": "form",
        "explode": True,
        "description": f"Filters on the columns of {table}, each a query parameter of its own "
        f"(`?{names[0]}[gte]=10`). {syntax}. A value is read as the column's type; one that "
        f"does not parse is a 400. Columns: {', '.join(names)}.",
        "schema": {
            "type": "object",
            "propertyNames": {"pattern": f"^({either})(\\[({operators})\\])?$"},
            "patternProperties": {f"^({either})\\[({flags})\\]$": FLAG},
            "additionalProperties": TEXT,
        },
        "example": {},
    }


def route_paths(
    route: Route,
    schema: dict,
    scopes: Iterable[str],
    groups: Mapping[str, tuple[str, ...]] | None = None,
) -> dict:
    t = route.table
    full, row = ref("schemas", t), ref("schemas", f"{t}Row")
    base = {"summary": route.summary, "description": route.description, "tags": [route.module]}
    nested = ["404"] if route.nested else []
    path_params = (
        [param("id", "path", TEXT, "Id (or name) of the parent row")] if route.nested else []
    )
    names = columns(schema)
    list_params = [
        *path_params,
        ref("parameters", "skip"),
        ref("parameters", "after"),
        ref("parameters", "count"),
        ref("parameters", "limit"),
        param("order_by", "query", {"type": "string", "enum": names}, "Column to sort by."),
        ref("parameters", "order"),
        ref("parameters", "fields"),
        *embed_param(route),
        ref("parameters", "format"),
        *([ref("parameters", "search")] if route.search else []),
        *(ref("parameters", s) for s in scopes),
        *(param(f.name, "query", f.schema(groups or {}), f.doc) for f in route.filters),
        filters(t, names),
        ref("parameters", "If-None-Match"),
    ]
    exports = {
        "text/csv": {"schema": TEXT},
        "application/x-ndjson": {"schema": TEXT},
    }
    list_op = {
        **base,
        "operationId": f"list{t}",
        "parameters": list_params,
        "responses": responses(
            {
                "200": success(
                    "A page of rows; with Accept text/csv or application/x-ndjson (or "
                    "`format=csv|ndjson`), every matching row as a download",
                    ref("schemas", f"{t}List"),
                    "ETag",
                    "Link",
                    "Content-Disposition",
                    **exports,
                )
            },
            *("304", "400", "401", *nested, "406", "503"),
        ),
    }
    one_or_many = {
        "oneOf": [full, {"type": "array", "minItems": 1, "maxItems": 1000, "items": full}]
    }
    authored = (
        f" `{route.author}` is set to the caller (a body naming another person is a 422)."
        if route.author
        else ""
    )
    deleter = "its author or an admin" if route.author else "admin"
    create = {
        **base,
        "summary": f"{route.summary}: create",
        "description": "One row, or an array of rows: all are created or none." + authored,
        "operationId": f"create{t}",
        "parameters": path_params,
        "requestBody": {"required": True, "content": {"application/json": {"schema": one_or_many}}},
        "responses": responses(
            {
                "201": success(
                    "The stored row(s), read back",
                    {"oneOf": [row, {"type": "array", "items": row}]},
                    "Location",
                )
            },
            *("400", "401", "403", *nested, "409", "413", "415", "422", "503"),
        ),
    }
    paths = {route.path: {"get": list_op, "post": create}}
    if not route.item:
        return paths
    key = "key" if route.nested else "id"
    one = {
        "parameters": [
            *path_params,
            param(key, "path", {"type": "integer" if route.nested else "string"}, "Id of the row"),
        ]
    }
    if_match = [*one["parameters"], ref("parameters", "If-Match")]
    writes = ("400", "401", "403", "404", "409", "412", "413", "415", "422", "503")
    paths[f"{route.path}/{{{key}}}"] = {
        "get": {
            **base,
            "summary": f"{route.summary}: one",
            "operationId": f"get{t}",
            "parameters": [
                *one["parameters"],
                ref("parameters", "fields"),
                *embed_param(route),
                ref("parameters", "If-None-Match"),
            ],
            "responses": responses(
                {"200": success("The row", row, "ETag")}, "304", "400", "401", "404", "406", "503"
            ),
        },
        "patch": {
            **base,
            "summary": f"{route.summary}: change some fields",
            "operationId": f"patch{t}",
            "parameters": if_match,
            "requestBody": body(ref("schemas", f"{t}Patch")),
            "responses": responses({"200": success("The updated row", row, "ETag")}, *writes),
        },
        "put": {
            **base,
            "summary": f"{route.summary}: change with the create rules",
            "operationId": f"put{t}",
            "parameters": if_match,
            "requestBody": body(full),
            "responses": responses({"200": success("The updated row", row, "ETag")}, *writes),
        },
        "delete": {
            **base,
            "summary": f"{route.summary}: delete ({deleter})",
            "operationId": f"delete{t}",
            "parameters": if_match,
            "responses": responses(
                {"204": success("Deleted")}, "401", "403", "404", "409", "412", "503"
            ),
        },
    }
    return paths
