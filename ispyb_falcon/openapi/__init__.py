"""The OpenAPI 3.1 document, built once at start-up from the route declarations and schemas.

`tables.py` describes each table's route, `shared.py` what every operation
shares (described once in `components` and referred to, so that the document
stays small) and the routes with no table; every component has a name of its
own (a `title` where it has one), which client generators name classes by.
Each module's routes also make a document of their own, which /doc shows one
at a time; `serve.py` serves them and Swagger UI.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

import falcon

from .. import __version__
from ..catalog.store import Catalog
from ..resources.declare import Route
from ..views import View
from . import serve, shared
from .serve import STATIC
from .tables import route_paths, table_schemas

__all__ = ["STATIC", "add_routes", "build", "module_document", "modules"]

LICENSE = {"name": "Apache-2.0", "identifier": "Apache-2.0"}  # the package's licence (setup.cfg)
SHARED_TAGS = ("auth", "meta")  # routes every module's document shows too


def build(
    routes: Iterable[Route],
    catalog: Catalog,
    prefix: str,
    max_limit: int,
    scopes: dict[str, Iterable[str]],
    views: Iterable[View] = (),
    groups: Mapping[str, tuple[str, ...]] | None = None,
) -> dict:
    """The document; `scopes` maps a table to the convenience filters its list accepts,
    `views` are the views served (ispyb_falcon.views), `groups` the site's beamline
    groups (the values of `?beamLineGroup=`)."""
    routes = [r for r in routes if r.path]
    components = shared.components(
        max_limit, sorted({s for r in routes for s in scopes.get(r.table, ())})
    )
    paths: dict = {}
    for route in routes:
        components["schemas"].update(table_schemas(route, catalog.schemas[route.table]))
        paths.update(
            route_paths(
                route, catalog.schemas[route.table], scopes.get(route.table, ()), groups or {}
            )
        )
    for view in views:
        components["schemas"].update(view.schemas())
        paths[view.path] = view.describe(max_limit)
    paths.update(shared.fixed_paths())
    return used_only(
        {
            "openapi": "3.1.0",
            "info": {
                "title": "ISPyB API (ispyb-falcon)",
                "version": __version__,
                "license": LICENSE,
                "description": "The shared REST backend for ISPyB: proposals, sessions, samples, "
                "data collections and their processing. Log in at /auth/login, then send "
                "`Authorization: Bearer <token>`.",
            },
            "servers": [{"url": prefix}],
            "security": [{"bearer": []}],
            "paths": paths,
            "components": components,
        }
    )


def _refs(node) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def used_only(document: dict) -> dict:
    """The document without the components nothing refers to (generators warn of them)."""
    components = document["components"]
    used, todo = set(), list(_refs(document["paths"]))
    while todo:
        target = todo.pop()
        if target in used:
            continue
        used.add(target)
        _, _, kind, name = target.split("/", 3)
        todo.extend(_refs(components[kind][name]))
    kept = {
        kind: {n: c for n, c in group.items() if f"#/components/{kind}/{n}" in used}
        for kind, group in components.items()
        if kind != "securitySchemes"
    }
    return {
        **document,
        "components": {"securitySchemes": components["securitySchemes"], **kept},
    }


def module_document(document: dict, module: str) -> dict:
    """One module's routes, with logging in, health and schemas: what /doc shows at once."""
    paths = {
        path: ops
        for path, ops in document["paths"].items()
        if {op["tags"][0] for op in ops.values()} & {module, *SHARED_TAGS}
    }
    info = {**document["info"], "title": f"{document['info']['title']}: {module}"}
    return used_only({**document, "info": info, "paths": paths})


def add_routes(app: falcon.App, prefix: str, build: Callable[[], dict], names: list[str]) -> None:
    """Serve the document whole and by module (`names`), and Swagger UI on it (`serve.py`).

    `build` makes the document when it is first asked for: building it leaves about
    5 MB in a worker's memory, which a worker no one reads the documentation from
    never pays."""

    def compiled() -> tuple[dict, dict[str, dict]]:
        document = build()
        return document, {m: module_document(document, m) for m in names}

    serve.add_routes(app, prefix, compiled, names)
