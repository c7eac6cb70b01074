"""The one resource class that serves every file route, and which of them a site serves
(with `POST /auth/sign` where this server signs tokens)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import falcon

from ..auth.principal import PrincipalLoader, principal
from ..auth.tokens import TokenService
from ..config import Settings
from ..errors import bad_request, not_found
from ..resources.declare import Route
from ..resources.generic import ANY, Backend, Resource
from ..resources.ids import integer
from ..views import View
from . import FILES, FileRoute
from .describe import describe, describe_sign, sign_schemas
from .links import MAX_PATHS, Links, Sign, link_key
from .roots import DataRoots, Refused
from .send import send

log = logging.getLogger("ispyb_falcon.files")

PARAMETERS = ("download", "sig", "exp")
FLAGS = {"1": True, "true": True, "0": False, "false": False}


def joined(row: Mapping, columns: tuple[str, ...]) -> str | None:
    """The path the row's columns make (a directory and a name joined), None if one is empty."""
    parts = [row.get(c) for c in columns]
    if any(not isinstance(p, str) or not p.strip() for p in parts):
        return None
    return "/".join([*(p.rstrip("/") for p in parts[:-1]), parts[-1]])


class FileItem:
    """`GET` the file a visible row names, from below the data roots (else a JSON 404)."""

    needs = {"GET": ANY}

    def __init__(
        self,
        rows: Resource,
        spec: FileRoute,
        numbers: tuple[int, ...],
        roots: DataRoots,
        links: Links | None,
    ) -> None:
        self.rows = rows
        self.spec = spec
        self.numbers = numbers
        self.roots = roots
        self.template = spec.item_path(rows.route.nested is not None) + spec.suffix
        self.signed_links = links  # the Authentication middleware takes `?sig=` through it

    def columns(self, path: Mapping[str, str]) -> tuple[str, ...]:
        if not self.numbers:
            return self.spec.columns
        n = integer(path.get("n", ""))
        if n not in self.numbers:
            shown = ", ".join(map(str, self.numbers))
            raise not_found(f"No such file: n is one of {shown} on this server.")
        return tuple(c.replace("{n}", str(n)) for c in self.spec.columns)

    def on_get(self, req: falcon.Request, resp: falcon.Response, **path: str) -> None:
        for name in req.params:
            if name not in PARAMETERS:
                raise bad_request(
                    f"unknown query parameter {name!r} (known: {', '.join(PARAMETERS)})", name
                )
        download = req.params.get("download", "0")
        if not isinstance(download, str) or download.lower() not in FLAGS:
            raise bad_request("download: expected 1 or 0 (true or false)", "download")
        p = principal(req)
        columns = self.columns(path)
        b = self.rows.b
        with b.engine.connect() as conn:
            row = self.rows.fetch(conn, self.rows.row_where(conn, p, path), p)
        if row is None:
            raise not_found()
        try:
            opened = self.roots.open(joined(row, columns))
        except Refused as exc:
            raise not_found(str(exc)) from None
        send(req, resp, opened, FLAGS[download.lower()])


def file_views(
    backend: Backend,
    routes: list[Route],
    every: list[Route],
    roots: DataRoots,
    links_for,
) -> list[View]:
    """The file routes this site serves, as views (added and documented like the others).

    A file route is served where its row's route is, and the columns it reads exist
    (a snapshot `n` whose column the database lacks is left out, the others stay).
    `links_for(templates)` makes the signed-links helper once the templates are known.
    """
    served = {r.path: r for r in routes if r.path}
    by_path = {r.path: r for r in every if r.path}
    found: list[tuple[FileRoute, Route, tuple[int, ...]]] = []
    for spec in FILES:
        route = served.get(spec.route)
        if route is None or route.table not in backend.tables:
            continue
        have = set(backend.tables[route.table].c.keys()) & set(backend.catalog[route.table].columns)
        numbers = tuple(
            n for n in spec.numbers if all(c.replace("{n}", str(n)) in have for c in spec.columns)
        )
        if spec.numbers and not numbers:
            continue
        if not spec.numbers and not set(spec.columns) <= have:
            continue
        found.append((spec, route, numbers))
    if not found:
        return []
    templates = [(s.item_path(r.nested is not None) + s.suffix, n) for s, r, n in found]
    links = links_for(templates)
    views = []
    for (spec, route, numbers), (template, _) in zip(found, templates, strict=True):
        parent = by_path[route.nested.parent] if route.nested else None
        rows = Resource(backend, route, parent)
        item = FileItem(rows, spec, numbers, roots, links)
        views.append(
            View(
                path=template,
                module=route.module,
                needs=(route.table,),
                resource=lambda _b, item=item: item,
                describe=lambda _max, spec=spec, route=route, numbers=numbers, links=links: (
                    describe(spec, route, numbers, signed=links is not None)
                ),
            )
        )
    return views


def served_files(
    settings: Settings,
    backend: Backend,
    routes: list[Route],
    every: list[Route],
    tokens: TokenService,
    principals: PrincipalLoader,
) -> list[View]:
    """The file routes this site serves and, where tokens are signed here, `POST /auth/sign`."""
    roots = DataRoots(settings[("files", "roots")])
    key = link_key(tokens)

    def links_for(templates) -> Links | None:
        if key is None:
            return None
        minutes = settings[("files", "link_minutes")]
        return Links(key, backend.prefix, minutes, principals, templates)

    found = file_views(backend, routes, every, roots, links_for)
    if found and not roots:
        log.warning("no [files] roots configured: the file routes answer 404 to every request")
    signer = found[0].resource(backend).signed_links if found else None
    if signer is None:
        return found
    sign = Sign(signer, backend.max_body_bytes)
    return [
        *found,
        View(
            path="/auth/sign",
            module="auth",
            needs=(),
            resource=lambda _b: sign,
            describe=lambda _max: describe_sign(),
            schemas=lambda: sign_schemas(MAX_PATHS),
        ),
    ]
