"""The OpenAPI 3.1 document, built once at start-up from the route declarations and schemas.

Nothing here is written per table: every path, parameter and body comes from
a `Route` and the table's JSON Schema (the one requests are validated with).
Also the Swagger UI page, served from files shipped inside the package.
"""

from __future__ import annotations

import copy
import gzip
import json
import zlib
from collections.abc import Iterable
from pathlib import Path

import falcon

from . import __version__
from .catalog.store import Catalog
from .query.operators import OPERATORS
from .resources.declare import Route

STATIC = Path(__file__).parent / "static" / "swagger-ui"
ERROR_REF = {"$ref": "#/components/schemas/Error"}
STATUS_TEXT = {
    "200": "OK",
    "201": "Created",
    "204": "Deleted",
    "304": "Not modified (the ETag in If-None-Match is current)",
    "400": "Malformed JSON or query parameter",
    "401": "No token, or a token that was refused",
    "403": "Your roles may not do this to this row",
    "404": "No such row, or a row you may not see",
    "409": "Unique key clash, or other rows refer to this one",
    "412": "The row changed since the ETag in If-Match",
    "413": "Body larger than the configured limit",
    "415": "Body is not application/json",
    "422": "Body breaks the table's schema or names rows you cannot use",
    "429": "Too many failed logins",
    "503": "The database is unreachable; retry later",
}


def _errors(*codes: str) -> dict:
    return {
        c: {"description": STATUS_TEXT[c], "content": {"application/json": {"schema": ERROR_REF}}}
        for c in codes
    }


def _public(schema: dict) -> dict:
    out = copy.deepcopy(schema)
    out.pop("$schema", None)
    out.pop("$id", None)
    return out


def _row(schema: dict) -> dict:
    """What a response row looks like: any subset of the columns (`fields=`), no blobs."""
    out = _public(schema)
    out.pop("required", None)
    out["properties"] = {
        k: v for k, v in out["properties"].items() if not v.get("x-ispyb", {}).get("blob")
    }
    return out


def _param(name: str, where: str, schema: dict, description: str = "", required=False) -> dict:
    p = {"name": name, "in": where, "schema": schema, "required": required or where == "path"}
    if description:
        p["description"] = description
    return p


def list_parameters(route: Route, schema: dict, max_limit: int, scopes: Iterable[str]) -> list:
    columns = [c for c, s in schema["properties"].items() if not s.get("x-ispyb", {}).get("blob")]
    params = [
        _param("skip", "query", {"type": "integer", "minimum": 0}, "Rows to skip."),
        _param(
            "after",
            "query",
            {"type": "string"},
            "The `next` cursor of the previous page: the page after it, in the same order and "
            "with the same filters, as fast as a first page (keyset paging; not with `skip`).",
        ),
        _param(
            "count",
            "query",
            {"type": "string", "enum": ["exact", "planned", "none"]},
            "How `total` is found: counted (default), the database's estimate, or not at all "
            "(`null`).",
        ),
        _param(
            "limit",
            "query",
            {"type": "integer", "minimum": 1, "maximum": max_limit},
            "Page size (default 25).",
        ),
        _param("order_by", "query", {"type": "string", "enum": columns}, "Column to sort by."),
        _param("order", "query", {"type": "string", "enum": ["asc", "desc"]}),
        _param("fields", "query", {"type": "string"}, "Comma-separated columns to return."),
    ]
    if route.search:
        params.append(
            _param("search", "query", {"type": "string"}, "Substring of the text columns.")
        )
    for scope in scopes:
        params.append(
            _param(
                scope, "query", {"type": "string"}, f"Only rows below this {scope} (id or name)."
            )
        )
    for column in columns:
        for op in OPERATORS.values():
            name = column if op.key == "eq" else f"{column}[{op.key}]"
            params.append(_param(name, "query", FLAG if op.boolean else TEXT, op.doc))
    return params


# Shared by the thousands of filter parameters: one object each, not one per parameter.
TEXT = {"type": "string"}
FLAG = {"type": "string", "enum": ["true", "false"]}


def build(
    routes: Iterable[Route],
    catalog: Catalog,
    prefix: str,
    max_limit: int,
    scopes: dict[str, Iterable[str]],
) -> dict:
    """The document; `scopes` maps a table to the convenience filters its list accepts."""
    components: dict = {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            "basic": {"type": "http", "scheme": "basic"},
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["title"],
                "properties": {
                    "title": {"type": "string"},
                    "description": {"type": "string"},
                    "errors": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "path": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        },
                    },
                },
            }
        },
    }
    paths: dict = {}
    for route in routes:
        if not route.path:
            continue
        t = route.table
        components["schemas"][t] = _public(catalog.schemas[t])
        patch = _public(catalog.schemas[t])
        patch.pop("required", None)
        components["schemas"][f"{t}Patch"] = patch
        components["schemas"][f"{t}Row"] = _row(catalog.schemas[t])
        components["schemas"][f"{t}List"] = {
            "type": "object",
            "required": ["total", "skip", "limit", "next", "results"],
            "properties": {
                "total": {"type": ["integer", "null"]},
                "skip": {"type": "integer"},
                "limit": {"type": ["integer", "null"]},
                "next": {
                    "type": ["string", "null"],
                    "description": "Cursor of the next page (`?after=`), null on the last page.",
                },
                "results": {"type": "array", "items": {"$ref": f"#/components/schemas/{t}Row"}},
            },
        }
        paths.update(_route_paths(route, catalog, max_limit, scopes.get(t, ())))
    paths.update(_fixed_paths())
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "ISPyB API (ispyb-falcon)",
            "version": __version__,
            "description": "The shared REST backend for ISPyB: proposals, sessions, samples, "
            "data collections and their processing. Log in at /auth/login, then send "
            "`Authorization: Bearer <token>`.",
        },
        "servers": [{"url": prefix}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": components,
    }


def _json(ref: str) -> dict:
    return {"application/json": {"schema": {"$ref": ref}}}


def _route_paths(route: Route, catalog: Catalog, max_limit: int, scopes) -> dict:
    t, ref = route.table, f"#/components/schemas/{route.table}"
    row = _json(f"{ref}Row")
    base = {"summary": route.summary, "description": route.description, "tags": [route.module]}
    path_params = (
        [_param("id", "path", {"type": "string"}, "Id (or name) of the parent row")]
        if route.nested
        else []
    )
    list_op = {
        **base,
        "operationId": f"list{t}",
        "parameters": path_params + list_parameters(route, catalog.schemas[t], max_limit, scopes),
        "responses": {
            "200": {
                "description": "A page of rows; with Accept text/csv or application/x-ndjson, every matching row",
                "content": {
                    **_json(f"{ref}List"),
                    "text/csv": {"schema": {"type": "string"}},
                    "application/x-ndjson": {"schema": {"type": "string"}},
                },
            },
            "304": {"description": STATUS_TEXT["304"]},
            **_errors("400", "401", *(["404"] if route.nested else []), "503"),
        },
    }
    create = {
        **base,
        "summary": f"{route.summary}: create",
        "operationId": f"create{t}",
        "parameters": path_params,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"$ref": ref},
                            {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": 1000,
                                "items": {"$ref": ref},
                            },
                        ]
                    }
                }
            },
        },
        "responses": {
            "201": {
                "description": "The stored row(s), read back",
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                {"$ref": f"{ref}Row"},
                                {"type": "array", "items": {"$ref": f"{ref}Row"}},
                            ]
                        }
                    }
                },
            },
            **_errors(
                "400",
                "401",
                "403",
                *(["404"] if route.nested else []),
                "409",
                "413",
                "415",
                "422",
                "503",
            ),
        },
    }
    collection = route.path
    paths = {collection: {"get": list_op, "post": create}}
    if not route.item:
        return paths
    key = "{key}" if route.nested else "{id}"
    item_params = path_params + [
        _param(
            key.strip("{}"),
            "path",
            {"type": "integer" if route.nested else "string"},
            "Id of the row",
        )
    ]
    one = {"parameters": item_params}
    paths[f"{collection}/{key}"] = {
        "get": {
            **base,
            **one,
            "summary": f"{route.summary}: one",
            "operationId": f"get{t}",
            "responses": {
                "200": {"description": "The row", "content": row},
                "304": {"description": STATUS_TEXT["304"]},
                **_errors("400", "401", "404", "503"),
            },
        },
        "patch": {
            **base,
            **one,
            "summary": f"{route.summary}: change some fields",
            "operationId": f"patch{t}",
            "requestBody": {"required": True, "content": _json(f"{ref}Patch")},
            "responses": {
                "200": {"description": "The updated row", "content": row},
                **_write_errors(),
            },
        },
        "put": {
            **base,
            **one,
            "summary": f"{route.summary}: change with the create rules",
            "operationId": f"put{t}",
            "requestBody": {"required": True, "content": _json(ref)},
            "responses": {
                "200": {"description": "The updated row", "content": row},
                **_write_errors(),
            },
        },
        "delete": {
            **base,
            **one,
            "summary": f"{route.summary}: delete (admin)",
            "operationId": f"delete{t}",
            "responses": {
                "204": {"description": STATUS_TEXT["204"]},
                **_errors("401", "403", "404", "409", "412", "503"),
            },
        },
    }
    return paths


def _write_errors() -> dict:
    return _errors("400", "401", "403", "404", "409", "412", "413", "415", "422", "503")


def _fixed_paths() -> dict:
    identity = {
        "type": "object",
        "properties": {
            "login": {"type": "string"},
            "personId": {"type": ["integer", "null"]},
            "roles": {"type": "array", "items": {"type": "string"}},
            "permissions": {"type": "array", "items": {"type": "string"}},
            "beamlines": {"type": "array", "items": {"type": "string"}},
            "expiresAt": {"type": "string"},
        },
    }
    token = {
        "type": "object",
        "required": ["token", "tokenType"],
        "properties": {
            **identity["properties"],
            "token": {"type": "string"},
            "tokenType": {"const": "Bearer"},
        },
    }
    login_body = {
        "type": "object",
        "required": ["login", "password"],
        "additionalProperties": False,
        "properties": {
            "login": {"type": "string", "minLength": 1},
            "password": {"type": "string", "minLength": 1},
            "plugin": {"type": "string"},
        },
    }
    auth_errors = _errors("400", "401", "415", "422", "429", "503")
    return {
        "/auth/login": {
            "post": {
                "summary": "Log in with a JSON body",
                "description": "Checks the credentials with the site's authenticators and returns a signed JWT.",
                "operationId": "login",
                "tags": ["auth"],
                "security": [],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": login_body}},
                },
                "responses": {
                    "200": {
                        "description": "A token",
                        "content": {"application/json": {"schema": token}},
                    },
                    **auth_errors,
                },
            },
            "get": {
                "summary": "Log in with HTTP Basic",
                "description": "`curl -u login:password`; returns a signed JWT.",
                "operationId": "loginBasic",
                "tags": ["auth"],
                "security": [{"basic": []}],
                "parameters": [_param("plugin", "query", TEXT, "Use only this authenticator.")],
                "responses": {
                    "200": {
                        "description": "A token",
                        "content": {"application/json": {"schema": token}},
                    },
                    **auth_errors,
                },
            },
        },
        "/auth/whoami": {
            "get": {
                "summary": "Who the token says you are",
                "operationId": "whoami",
                "tags": ["auth"],
                "responses": {
                    "200": {
                        "description": "Identity",
                        "content": {"application/json": {"schema": identity}},
                    },
                    **_errors("401", "503"),
                },
            }
        },
        "/health": {
            "get": {
                "summary": "Service and database health",
                "operationId": "health",
                "tags": ["meta"],
                "security": [],
                "responses": {
                    "200": {
                        "description": "Up",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "503": {
                        "description": STATUS_TEXT["503"],
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                },
            }
        },
        "/schemas": {
            "get": {
                "summary": "The JSON Schemas the server validates with",
                "operationId": "listSchemas",
                "tags": ["meta"],
                "security": [],
                "responses": {
                    "200": {
                        "description": "Names and URLs",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/schemas/{table}": {
            "get": {
                "summary": "One table's JSON Schema (Draft 2020-12)",
                "operationId": "getSchema",
                "tags": ["meta"],
                "security": [],
                "parameters": [_param("table", "path", {"type": "string"})],
                "responses": {
                    "200": {
                        "description": "The schema",
                        "content": {"application/schema+json": {"schema": {"type": "object"}}},
                    },
                    "304": {"description": STATUS_TEXT["304"]},
                    **_errors("404"),
                },
            }
        },
    }


class OpenApiDocument:
    """`GET /openapi.json`: serialized once and kept gzip-compressed.

    The document is about 1.5 MB of JSON and 0.1 MB compressed: browsers (Swagger UI)
    get the compressed bytes, clients that do not accept gzip get them expanded. The
    server keeps 1.4 MB less for its whole life, and never holds the whole text at once.
    """

    public = True

    def __init__(self, document: dict) -> None:
        packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # a gzip stream
        parts, pending, size = [], [], 0
        for chunk in json.JSONEncoder(ensure_ascii=False).iterencode(document):
            pending.append(chunk)
            size += len(chunk)
            if size > 1 << 16:
                parts.append(packer.compress("".join(pending).encode()))
                pending, size = [], 0
        parts.append(packer.compress("".join(pending).encode()) + packer.flush())
        self.gzipped = b"".join(parts)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.cache_control = ["public", "max-age=300"]
        resp.content_type = falcon.MEDIA_JSON
        resp.append_header("Vary", "Accept-Encoding")
        if accepts_gzip(req.get_header("Accept-Encoding")):
            resp.set_header("Content-Encoding", "gzip")
            resp.data = self.gzipped
        else:
            resp.data = gzip.decompress(self.gzipped)


def accepts_gzip(header: str | None) -> bool:
    """Whether an Accept-Encoding header admits gzip (`gzip;q=0` refuses it)."""
    for item in (header or "").split(","):
        name, *params = (p.strip() for p in item.split(";"))
        if name.lower() not in ("gzip", "x-gzip", "*"):
            continue
        q = next((p[2:] for p in params if p.lower().startswith("q=")), "1")
        try:
            return float(q) > 0
        except ValueError:
            return False
    return False


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ISPyB API (ispyb-falcon)</title>
<link rel="icon" href="{base}/doc/static/favicon-32x32.png">
<link rel="stylesheet" href="{base}/doc/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="{base}/doc/static/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{url: "{base}/openapi.json", dom_id: "#swagger-ui",
  persistAuthorization: true, deepLinking: true, displayRequestDuration: true}});
</script></body></html>
"""


class SwaggerPage:
    """`GET /doc`: Swagger UI from the package's own files (works with no internet)."""

    public = True

    def __init__(self, prefix: str) -> None:
        self.html = PAGE.format(base=prefix)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.text = self.html


def add_routes(app: falcon.App, prefix: str, document: dict) -> None:
    app.add_route(prefix + "/openapi.json", OpenApiDocument(document))
    app.add_route(prefix + "/doc", SwaggerPage(prefix))
    app.add_static_route(prefix + "/doc/static", str(STATIC))
