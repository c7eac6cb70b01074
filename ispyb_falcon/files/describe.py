"""The file routes and `POST /auth/sign` in the OpenAPI document."""

from __future__ import annotations

from ..openapi.shared import TEXT, body, param, ref, responses, success
from ..resources.declare import Route
from . import FileRoute

BINARY = {"type": "string", "format": "binary"}
HEADER = {"schema": TEXT}


def _header(text: str) -> dict:
    return {"description": text, **HEADER}


def describe(spec: FileRoute, route: Route, numbers: tuple[int, ...], signed: bool) -> dict:
    nested = route.nested is not None
    path = [param("id", "path", TEXT, "Id of the parent row" if nested else "Id of the row")]
    if nested:
        path.append(param("key", "path", {"type": "integer"}, "Id of the row"))
    if numbers:
        path.append(param("n", "path", {"type": "integer", "enum": list(numbers)}, "Which one"))
    query = [
        param(
            "download",
            "query",
            {"type": "string", "enum": ["1", "0", "true", "false"]},
            '`1`: add `Content-Disposition: attachment; filename="..."` (save, not show).',
        ),
        ref("parameters", "If-None-Match"),
        param("If-Modified-Since", "header", TEXT, "304 if the file is not newer."),
        param("Range", "header", TEXT, "One byte range, `bytes=0-1023` or `bytes=-500`: 206."),
        param("If-Range", "header", TEXT, "The ETag (or date) the Range is for."),
    ]
    if signed:
        query += [
            param("sig", "query", TEXT, "Of a signed link (POST /auth/sign), with `exp`."),
            param("exp", "query", TEXT, "Of a signed link: when it expires (Unix seconds)."),
        ]
    content = {m: {"schema": BINARY} for m in spec.media}
    headers = {
        "ETag": ref("headers", "ETag"),
        "Last-Modified": _header("When the file last changed"),
        "Accept-Ranges": _header("`bytes`: a Range may be asked for"),
        "Content-Disposition": ref("headers", "Content-Disposition"),
    }
    error = {"application/json": {"schema": ref("schemas", "Error")}}
    return {
        "get": {
            "summary": spec.summary,
            "description": "The file the row names, read from below the server's data roots "
            "([files] roots) as it is on disk, with its type, length, ETag and Last-Modified; "
            "If-None-Match / If-Modified-Since give a 304 and one byte Range a 206. "
            "404 (JSON) when the row is not visible to you, names no file, or the file is "
            "not on disk or not below the data roots."
            + (
                " A browser may load it without a token through a signed link (POST /auth/sign)."
                if signed
                else ""
            ),
            "operationId": spec.operation,
            "tags": [route.module],
            "parameters": path + query,
            "responses": responses(
                {
                    "200": {"description": "The file", "headers": headers, "content": content},
                    "206": {
                        "description": "The byte range asked for",
                        "headers": {
                            **headers,
                            "Content-Range": _header("`bytes first-last/size`"),
                        },
                        "content": content,
                    },
                    "416": {
                        "description": "The range lies outside the file",
                        "headers": {"Content-Range": _header("`bytes */size`")},
                        "content": error,
                    },
                },
                "304",
                "400",
                "401",
                "404",
                "503",
            ),
        }
    }


def sign_schemas(max_paths: int) -> dict:
    urls = {
        "title": "SignedLinks",
        "type": "object",
        "properties": {
            "urls": {
                "type": "array",
                "items": TEXT,
                "description": "Each path with `?sig=...&exp=...`, below the server's root "
                "(it begins with the API prefix), in the order given.",
            },
            "expiresAt": {"type": "string", "description": "When the links expire (UTC)."},
        },
    }
    asked = {
        "title": "LinkRequest",
        "type": "object",
        "required": ["paths"],
        "additionalProperties": False,
        "properties": {
            "paths": {
                "type": "array",
                "minItems": 1,
                "maxItems": max_paths,
                "items": TEXT,
                "description": "Paths of file routes, with or without the API prefix: "
                "`/datacollections/12/snapshots/1`.",
            }
        },
    }
    return {"SignedLinks": urls, "LinkRequest": asked}


def describe_sign() -> dict:
    return {
        "post": {
            "summary": "Sign links to files for a browser",
            "description": "URLs of file routes that work without a bearer token, for you "
            "only and for a few minutes ([files] link_minutes, never past your token's "
            "expiry): for `<img src>` and download links. What you may see is decided when "
            "a link is used. Any other path is a 422 naming it.",
            "operationId": "signLinks",
            "tags": ["auth"],
            "requestBody": body(ref("schemas", "LinkRequest")),
            "responses": responses(
                {"200": success("The signed URLs", ref("schemas", "SignedLinks"))},
                "400",
                "401",
                "413",
                "415",
                "422",
                "503",
            ),
        }
    }
