"""What every operation shares, described once and referred to; and the routes with no table.

Paging parameters, the refusals (every answer that is not a success) with
their headers, the error body: an operation names them by `$ref`, which keeps
the document small and gives each a name of its own. The routes that serve
no table (logging in, health, the JSON Schemas) are written out here.
"""

from __future__ import annotations

from collections.abc import Iterable

TEXT = {"type": "string"}
FLAG = {"type": "string", "enum": ["true", "false"]}


def ref(kind: str, name: str) -> dict:
    return {"$ref": f"#/components/{kind}/{name}"}


# Every answer that is not a success, by status: its component name, what it means,
# and the headers it carries. An operation lists the statuses it can give.
REFUSALS = {
    "304": ("NotModified", "Not modified: the ETag in If-None-Match is current", ("ETag",)),
    "400": ("BadRequest", "Malformed JSON, or an unknown or malformed query parameter", ()),
    "401": (
        "Unauthorized",
        "No token, a token that was refused, or (logging in) wrong credentials",
        ("WWW-Authenticate",),
    ),
    "403": ("Forbidden", "Your roles may not do this to this row", ()),
    "404": ("NotFound", "No such row, or a row you may not see", ()),
    "406": (
        "NotAcceptable",
        "The Accept header allows nothing this route answers (`offered` lists what it does)",
        (),
    ),
    "409": ("Conflict", "Unique key clash, or other rows refer to this one", ()),
    "412": ("PreconditionFailed", "The row changed since the ETag in If-Match", ()),
    "413": ("ContentTooLarge", "Body larger than the configured limit", ()),
    "415": ("UnsupportedMediaType", "Body is not application/json", ()),
    "422": (
        "UnprocessableContent",
        "Body breaks the table's schema or names rows you cannot use",
        (),
    ),
    "429": ("TooManyRequests", "Too many failed logins from your address", ("Retry-After",)),
    "503": ("Unavailable", "The database is unreachable or busy; retry later", ("Retry-After",)),
    "4XX": (
        "Refused",
        "Refused by the HTTP server before the API read it: a malformed request line or "
        "header (400), headers past the server's limit (431), a body far past the limit (413)",
        (),
    ),
}
HEADERS = {
    "ETag": "Version of what was read or written: send it back in If-Match to change the row "
    "only if no one changed it since, or in If-None-Match to read it only if it changed",
    "Link": 'The first, next and previous pages (RFC 8288: `<url>; rel="next"`)',
    "Location": "URL of the created row",
    "Content-Disposition": 'With an export: `attachment; filename="samples.csv"`',
    "Retry-After": "Seconds to wait before trying again",
    "WWW-Authenticate": "`Bearer`: how to authenticate",
}


def responses(successes: dict, *statuses: str) -> dict:
    """An operation's answers: its successes as given, then each refusal by reference."""
    return {**successes, **{s: ref("responses", REFUSALS[s][0]) for s in (*statuses, "4XX")}}


def success(description: str, schema: dict | None = None, *headers: str, **more: dict) -> dict:
    out: dict = {"description": description}
    if headers:
        out["headers"] = {h: ref("headers", h) for h in headers}
    if schema is not None:
        out["content"] = {"application/json": {"schema": schema}, **more}
    return out


def param(name: str, where: str, schema: dict, description: str = "", required=False) -> dict:
    p = {"name": name, "in": where, "schema": schema, "required": required or where == "path"}
    if description:
        p["description"] = description
    return p


def body(schema: dict) -> dict:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def components(max_limit: int, scopes: Iterable[str]) -> dict:
    """What every operation shares: parameters, refusals, headers, error body, security."""
    parameters = {
        "skip": param("skip", "query", {"type": "integer", "minimum": 0}, "Rows to skip."),
        "after": param(
            "after",
            "query",
            TEXT,
            "The `next` cursor of the previous page: the page after it, in the same order and "
            "with the same filters, as fast as a first page (keyset paging; not with `skip`).",
        ),
        "count": param(
            "count",
            "query",
            {"type": "string", "enum": ["exact", "planned", "none"]},
            "How `total` is found: counted (default), the database's estimate, or not at all "
            "(`null`).",
        ),
        "limit": param(
            "limit",
            "query",
            {"type": "integer", "minimum": 1, "maximum": max_limit},
            "Page size (default 25).",
        ),
        "order": param("order", "query", {"type": "string", "enum": ["asc", "desc"]}),
        "format": param(
            "format",
            "query",
            {"type": "string", "enum": ["json", "csv", "ndjson"]},
            "`csv` or `ndjson`: every matching row as a download (as `Accept: text/csv` or "
            "`application/x-ndjson` gives it), so that a link in a browser can fetch it; "
            "`json` (the default): the page, whatever `Accept` says.",
        ),
        "fields": param(
            "fields",
            "query",
            TEXT,
            "Comma-separated columns to return; with `embed=`, `name.column` narrows an "
            "embedded row to the columns named.",
        ),
        "search": param("search", "query", TEXT, "Substring of the text columns."),
        "If-None-Match": param(
            "If-None-Match", "header", TEXT, "An ETag read before: 304 if it is still current."
        ),
        "If-Match": param(
            "If-Match",
            "header",
            TEXT,
            "The ETag of the row as read before: 412, and no change, if the row changed since.",
        ),
    }
    for scope in scopes:
        parameters[scope] = param(
            scope, "query", TEXT, f"Only rows below this {scope} (id or name)."
        )
    error = {
        "type": "object",
        "required": ["title"],
        "properties": {
            "title": {
                "type": "string",
                "description": "The status, e.g. `422 Unprocessable Entity`",
            },
            "description": {"type": "string"},
            "errors": {
                "type": "array",
                "description": "Every violation, each with its JSON path",
                "items": {
                    "type": "object",
                    "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
                },
            },
            "parameter": {"type": "string", "description": "The query parameter refused (400)"},
            "offered": {
                "type": "array",
                "description": "The media types the route answers (406)",
                "items": {"type": "string"},
            },
            "references": {
                "type": "array",
                "description": "The rows that refer to the row a refused delete names (409)",
                "items": {"type": "object"},
            },
        },
    }
    return {
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "A token of POST /auth/login (or `ispyb-falcon token` for a"
                " service account). Where the site configures the `oidc` authenticator, an"
                " access token of the site's OpenID Connect provider (Keycloak or another) is"
                " accepted too: checked against the provider's keys, issuer, audience and"
                " expiry; its login claim (`preferred_username`) is the ISPyB login.",
            },
            "basic": {"type": "http", "scheme": "basic"},
        },
        "parameters": parameters,
        "headers": {
            name: {
                "description": text,
                "schema": {"type": "integer"} if name == "Retry-After" else TEXT,
            }
            for name, text in HEADERS.items()
        },
        "responses": {
            name: {
                "description": text,
                **({"headers": {h: ref("headers", h) for h in headers}} if headers else {}),
                **(
                    {}
                    if status == "304"
                    else {"content": {"application/json": {"schema": ref("schemas", "Error")}}}
                ),
            }
            for status, (name, text, headers) in REFUSALS.items()
        },
        "schemas": {"Error": error, **fixed_schemas()},
    }


def fixed_schemas() -> dict:
    identity = {
        "login": {"type": "string"},
        "personId": {"type": ["integer", "null"]},
        "roles": {"type": "array", "items": TEXT},
        "permissions": {"type": "array", "items": TEXT},
        "beamlines": {"type": "array", "items": TEXT},
        "expiresAt": TEXT,
    }
    return {
        "Identity": {"type": "object", "properties": identity},
        "Token": {
            "type": "object",
            "required": ["token", "tokenType"],
            "properties": {**identity, "token": TEXT, "tokenType": {"const": "Bearer"}},
        },
        "Credentials": {
            "type": "object",
            "required": ["login", "password"],
            "additionalProperties": False,
            "properties": {
                "login": {"type": "string", "minLength": 1},
                "password": {"type": "string", "minLength": 1},
                "plugin": {"type": "string", "description": "Use only this authenticator"},
            },
        },
        "Health": {
            "type": "object",
            "properties": {
                "status": {"type": "string", "enum": ["ok", "degraded"]},
                "database": {"type": "string", "enum": ["ok", "unavailable"]},
                "schema": {
                    "type": "object",
                    "description": "The database's schema as the server found it at start-up",
                    "properties": {
                        "version": {
                            "type": ["string", "null"],
                            "description": "AdminVar.schemaVersion",
                        },
                        "routes": {"type": "integer", "description": "Routes served"},
                        "notServed": {
                            "type": "array",
                            "items": TEXT,
                            "description": "Routes whose table is missing or unreadable",
                        },
                        "changed": {
                            "type": "array",
                            "items": TEXT,
                            "description": "Tables or columns gone since start-up (503)",
                        },
                    },
                },
                "version": TEXT,
            },
        },
        "Index": {
            "type": "object",
            "properties": {
                "name": TEXT,
                "version": TEXT,
                "links": {"type": "object", "additionalProperties": TEXT},
            },
        },
        "SchemaList": {
            "type": "object",
            "properties": {
                "schemas": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": TEXT,
                            "url": TEXT,
                            "resource": {"type": ["string", "null"]},
                        },
                    },
                }
            },
        },
    }


def fixed_paths() -> dict:
    token = success("A token", ref("schemas", "Token"))
    login = ("400", "401", "415", "422", "429", "503")
    meta = {"tags": ["meta"], "security": []}
    return {
        "/": {
            "get": {
                **meta,
                "summary": "Where to go from the base URL",
                "description": "Links to the documentation, this document, login, health "
                "and the schemas.",
                "operationId": "index",
                "responses": responses({"200": success("Links", ref("schemas", "Index"))}),
            }
        },
        "/auth/login": {
            "post": {
                "summary": "Log in with a JSON body",
                "description": "Checks the credentials with the site's authenticators and returns a signed JWT.",
                "operationId": "login",
                "tags": ["auth"],
                "security": [],
                "requestBody": body(ref("schemas", "Credentials")),
                "responses": responses({"200": token}, *login),
            },
            "get": {
                "summary": "Log in with HTTP Basic",
                "description": "`curl -u login:password`; returns a signed JWT.",
                "operationId": "loginBasic",
                "tags": ["auth"],
                "security": [{"basic": []}],
                "parameters": [param("plugin", "query", TEXT, "Use only this authenticator.")],
                "responses": responses({"200": token}, *login),
            },
        },
        "/auth/whoami": {
            "get": {
                "summary": "Who the token says you are",
                "operationId": "whoami",
                "tags": ["auth"],
                "responses": responses(
                    {"200": success("Identity", ref("schemas", "Identity"))}, "401", "503"
                ),
            }
        },
        "/health": {
            "get": {
                **meta,
                "summary": "Service and database health",
                "operationId": "health",
                "responses": {
                    "200": success("Up", ref("schemas", "Health")),
                    "503": success(
                        "The database is unreachable, or its structure changed since start-up",
                        ref("schemas", "Health"),
                        "Retry-After",
                    ),
                    "4XX": ref("responses", "Refused"),
                },
            }
        },
        "/schemas": {
            "get": {
                **meta,
                "summary": "The JSON Schemas the server validates with",
                "operationId": "listSchemas",
                "responses": responses(
                    {"200": success("Names and URLs", ref("schemas", "SchemaList"))}
                ),
            }
        },
        "/schemas/{table}": {
            "get": {
                **meta,
                "summary": "One table's JSON Schema (Draft 2020-12)",
                "operationId": "getSchema",
                "parameters": [
                    param("table", "path", TEXT),
                    ref("parameters", "If-None-Match"),
                ],
                "responses": responses(
                    {
                        "200": {
                            "description": "The schema",
                            "headers": {"ETag": ref("headers", "ETag")},
                            "content": {"application/schema+json": {"schema": {"type": "object"}}},
                        }
                    },
                    "304",
                    "404",
                ),
            }
        },
    }
