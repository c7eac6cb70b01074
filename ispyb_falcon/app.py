"""create_app(settings): wires the collaborators and adds the routes; no logic of its own."""

from __future__ import annotations

import gc
import logging
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

import falcon
import sqlalchemy as sa
from falcon_cors import CORS

from . import db, errors, openapi
from .auth.authenticators import Authenticator, TokenVerifier, load_authenticator
from .auth.principal import PrincipalLoader
from .auth.ratelimit import make_limiter
from .auth.tokens import BearerTokens, TokenService, TokenSettings
from .catalog.drift import differences
from .catalog.site import Site, narrowed, read_site
from .catalog.store import Catalog
from .config import ConfigError, Settings, production_problems
from .files.resource import served_files
from .middleware import Authentication, Authorization, Cors, RequestLog
from .query.visibility import Hang, Resolver, Via
from .resources import MODULES, embeds
from .resources.auth import Login, WhoAmI
from .resources.declare import Route
from .resources.generic import Backend, Collection, Item
from .resources.meta import ApiIndex, Health, SchemaItem, SchemaList
from .serving import fit_routes, report
from .views import VIEWS, View

log = logging.getLogger("ispyb_falcon")

# Tables every deployment reads: who people are and what they may see.
CORE_TABLES = (
    "Proposal",
    "BLSession",
    "Person",
    "ProposalHasPerson",
    "Session_has_Person",
    "UserGroup",
    "UserGroup_has_Person",
    "UserGroup_has_Permission",
    "Permission",
)


ADVICE = (
    "to validate with this database's own schemas: `ispyb-falcon --config FILE schemas generate"
    " --out DIR`, then set [database] schemas_dir = DIR (or ISPYB_FALCON_DATABASE_SCHEMAS_DIR=DIR);"
    " `ispyb-falcon --config FILE schemas check` lists the differences again"
)


class StartupError(Exception):
    """The server cannot start as configured; the message says why."""


def token_settings(settings: Settings) -> TokenSettings:
    """[tokens] -> TokenSettings; a development server without a secret gets a random one."""
    algorithm = settings[("tokens", "algorithm")]
    secret = settings[("tokens", "secret")] or None
    if algorithm == "HS256" and not secret:
        if not settings[("server", "debug")]:
            raise ConfigError("[tokens] secret is required (at least 32 bytes) when debug = false")
        secret = secrets.token_urlsafe(48)
        log.warning(
            "no [tokens] secret configured: tokens are signed with a random one and die with the process"
        )

    def read(key: str) -> str | None:
        path = settings[("tokens", key)]
        if not path:
            return None
        try:
            return Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"[tokens] {key} = {path!r}: {exc.strerror}") from None

    return TokenSettings(
        algorithm=algorithm,
        secret=secret if algorithm == "HS256" else None,
        private_key=read("private_key_file"),
        public_key=read("public_key_file"),
        issuer=settings[("tokens", "issuer")],
        audience=settings[("tokens", "audience")],
        lifetime_seconds=settings[("tokens", "lifetime_minutes")] * 60,
    )


def make_tokens(settings: Settings) -> TokenService:
    try:
        return TokenService(token_settings(settings))
    except ValueError as exc:
        raise ConfigError(f"[tokens] {exc}") from None


def make_bearer_tokens(tokens: TokenService, authenticators: list[Authenticator]) -> BearerTokens:
    """The server's own tokens, and those of the authenticators that verify tokens (oidc)."""
    try:
        return BearerTokens(tokens, [a for a in authenticators if isinstance(a, TokenVerifier)])
    except ValueError as exc:
        raise ConfigError(f"[auth] authenticators: {exc}") from None


def make_authenticators(settings: Settings) -> list[Authenticator]:
    found = []
    for spec in settings[("auth", "authenticators")]:
        name = spec.rsplit(".", 1)[-1].split(":")[-1] if "." in spec else spec
        options = settings.authenticator_options.get(name, {})
        try:
            found.append(load_authenticator(name, spec, options))
        except ValueError as exc:
            raise ConfigError(f"[auth] authenticators: {spec}: {exc}") from None
    return found


def enabled_routes(settings: Settings) -> tuple[list[Route], list[Route]]:
    """(every declaration, the ones this site serves): hangs need all, routes only the enabled."""
    wanted = settings[("server", "modules")]
    if "all" in wanted:
        wanted = tuple(MODULES)
    unknown = sorted(set(wanted) - set(MODULES))
    if unknown:
        raise ConfigError(
            f"[server] modules: unknown module(s) {', '.join(unknown)}; known: {', '.join(MODULES)}"
        )
    every = [r for routes in MODULES.values() for r in routes]
    return every, [r for m in wanted for r in MODULES[m]]


def hung_through(tables: Iterable[str], hangs: Mapping[str, Hang]) -> list[str]:
    """The tables and every table their hangs pass through, in order of discovery."""
    found: list[str] = []
    todo = list(tables)
    while todo:
        name = todo.pop(0)
        if name in found:
            continue
        found.append(name)
        hang = hangs.get(name)
        if isinstance(hang, tuple):
            todo += [v.table for v in hang if isinstance(v, Via)]
    return found


def needed_tables(routes: list[Route], hangs: Mapping[str, Hang]) -> list[str]:
    """The served tables, the core ones, and every table their hangs pass through."""
    return sorted(hung_through([*CORE_TABLES, *(r.table for r in routes if r.path)], hangs))


def foreign_key_targets(
    every: list[Route], hangs: Mapping[str, Hang], needed: list[str], present: frozenset[str]
) -> list[str]:
    """Hang-only declarations no route needs (lookup tables, a sample's sub-samples) that
    the database has: reflected so that a foreign key naming them follows their hang.
    One whose hang passes a table not reflected is left out (then only rows that rows
    the caller can see already name may be named)."""
    have = set(needed)
    todo = [r.table for r in every if not r.path and r.table in present and r.table not in have]
    while True:
        ready = [
            t
            for t in todo
            if not isinstance(hangs[t], tuple)
            or all(v.table in have for v in hangs[t] if isinstance(v, Via))
        ]
        if not ready:
            return sorted(have - set(needed))
        have.update(ready)
        todo = [t for t in todo if t not in have]


def unreadable(engine: sa.Engine, exc: Exception) -> StartupError:
    """The database of [database] url cannot be read: which one (no password), and why."""
    url = engine.url.render_as_string(hide_password=True)
    return StartupError(
        f"cannot read the database of [database] url ({url}):"
        f" {exc.__class__.__name__}: {str(exc).splitlines()[0]}"
    )


def schema_differences(names: list[str], catalog: Catalog, site: Site) -> list[str]:
    """Every difference between the database and the JSON Schemas of the tables served."""
    no_schema = [  # a table neither the database nor the schemas have is only not served
        f"no JSON Schema for table {n} in the schemas directory"
        for n in names
        if n not in catalog and n in site.live
    ]
    return no_schema + differences(catalog.subset(names).schemas, site)


def served_views(routes: list[Route]) -> list[View]:
    """The views whose module is enabled and whose tables this site serves."""
    modules = {r.module for r in routes if r.path}
    tables = {r.table for r in routes if r.path}
    return [v for v in VIEWS if v.module in modules and set(v.needs) <= tables]


def settle() -> None:
    """Once the app is built, before it serves: the garbage of start-up (the OpenAPI
    document's build, reflection) is collected, and what start-up keeps (schemas,
    validators, statements, routes: most of the process) is frozen out of the garbage
    collector's reach, so that its full collections under load walk only what requests
    made. Called by `ispyb-falcon serve`, `demo` and the WSGI entry point."""
    gc.collect()
    gc.freeze()


def create_app(
    settings: Settings, *, engine: sa.Engine | None = None, catalog: Catalog | None = None
) -> falcon.App:
    """The WSGI application for these settings (engine and catalog may be given by tests)."""
    if not settings[("server", "debug")]:
        problems = production_problems(settings)
        if problems:
            raise StartupError("refusing to start with debug = false:\n  " + "\n  ".join(problems))
    # The configuration's own mistakes first, before the database is asked anything.
    tokens = make_tokens(settings)
    authenticators = make_authenticators(settings)
    bearer = make_bearer_tokens(tokens, authenticators)
    engine = engine or db.make_engine(settings)
    every, routes = enabled_routes(settings)
    try:
        catalog = catalog or Catalog.from_dir(
            Path(d) if (d := settings[("database", "schemas_dir")]) else None
        )
    except (OSError, ValueError) as exc:
        raise StartupError(f"cannot load the JSON Schemas: {exc}") from None
    hangs = {r.table: r.hangs for r in every}  # every declaration: hangs cross modules
    names = needed_tables(routes, hangs)
    check = settings[("database", "schema_check")]
    try:
        present = frozenset(db.table_names(engine))
        lookups = [r.table for r in every if not r.path and r.table in present]
        site = read_site(engine, [*names, *(t for t in lookups if t not in names)])
    except sa.exc.SQLAlchemyError as exc:
        raise unreadable(engine, exc) from None
    drift = [] if check == "off" else schema_differences(names, catalog, site)
    if drift and check == "error":
        raise StartupError(
            "the database differs from the JSON Schemas (schema_check = error):\n  "
            + "\n  ".join(drift)
            + "\n"
            + ADVICE
        )
    core = [t for t in CORE_TABLES if t in site.absent or t not in catalog]
    if core:
        raise StartupError(
            "cannot serve without "
            + ", ".join(f"table {t} ({site.absent.get(t, 'no JSON Schema')})" for t in core)
            + ": who people are and what they may see is read from them"
        )
    schemas = {
        n: catalog.schemas[n]
        if check == "off"
        else narrowed(catalog.schemas[n], live, site.detailed)
        for n, live in site.live.items()
        if n in catalog
    }
    fit = fit_routes(routes, hangs, schemas, site)
    readable = [n for n in names if n in schemas]
    targets = foreign_key_targets(every, fit.hangs, readable, frozenset(site.live))
    try:
        tables = db.reflect(engine, readable + targets).tables
    except sa.exc.SQLAlchemyError as exc:
        raise unreadable(engine, exc) from None
    catalog = Catalog({n: schemas[n] for n in readable})
    hangs, routes = fit.hangs, fit.routes
    served_tables = {r.table for r in routes if r.path}  # what ?embed= may embed or count
    routes = [embeds.fitted(r, tables, served_tables) for r in routes]
    level = logging.WARNING if drift or fit.out else logging.INFO
    for line in report(site, fit, drift, len(tables)) + ([ADVICE] if drift else []):
        log.log(level, line)

    resolver = Resolver(tables, hangs, union_paths=engine.dialect.name in ("mysql", "mariadb"))
    backend = Backend(
        engine=engine,
        tables=tables,
        catalog=catalog,
        resolver=resolver,
        present=present,
        prefix=settings.prefix,
        default_limit=settings[("query", "default_limit")],
        max_limit=settings[("query", "max_limit")],
        max_body_bytes=settings[("server", "max_body_bytes")],
        members_see_all_sessions=settings[("visibility", "proposal_members_see_all_sessions")],
        beamline_groups={g.name: g.beamlines for g in settings.beamline_groups},
    )
    principals = PrincipalLoader(
        engine,
        tables,
        settings.beamline_groups,
        storable=lambda login: catalog["Person"].storable("login", login),
    )
    origins = settings[("server", "cors_origins")]
    cors = CORS(
        allow_all_origins="*" in origins,
        allow_origins_list=[o for o in origins if o != "*"],
        allow_all_headers=True,
        allow_all_methods=True,
        expose_headers_list=["ETag", "Link", "Location", "X-Request-Id", "Retry-After"],
        max_age=600,
    )
    cors.origins_vary = (
        True  # answers differ by Origin: caches must know (falcon-cors omits it for lists)
    )
    app = falcon.App(
        middleware=[
            RequestLog(),
            Cors(cors),
            Authentication(bearer, principals),
            Authorization(),
        ],
    )
    app.req_options.strip_url_path_trailing_slash = True
    watch = errors.StructureWatch()
    errors.install(app, watch)

    prefix = settings.prefix
    by_path = {r.path: r for r in every if r.path}
    scopes = {}
    for route in routes:
        if not route.path:
            continue
        parent = by_path[route.nested.parent] if route.nested else None
        collection = Collection(backend, route, parent)
        scopes[route.table] = tuple(collection.scopes)
        app.add_route(prefix + route.path, collection)
        if route.item:
            item = "/{key}" if route.nested else "/{id}"
            app.add_route(prefix + route.path + item, Item(backend, route, parent))
    views = served_views(routes) + served_files(
        settings, backend, routes, every, tokens, principals
    )
    for view in views:
        app.add_route(prefix + view.path, view.resource(backend))

    limiter = make_limiter(settings, engine)
    login = Login(
        [a for a in authenticators if not isinstance(a, TokenVerifier)],  # no password
        tokens,
        principals,
        limiter,
        settings[("server", "max_body_bytes")],
    )
    index = ApiIndex(prefix, settings[("server", "docs")])
    for path in {prefix or "/", "/"}:
        app.add_route(path, index)
    app.add_route(prefix + "/auth/login", login)
    app.add_route(prefix + "/auth/whoami", WhoAmI())
    app.add_route(prefix + "/health", Health(engine, watch, site.version, fit))
    served = {r.table: prefix + r.path for r in routes if r.path}
    app.add_route(prefix + "/schemas", SchemaList(catalog.subset(served), prefix, served))
    app.add_route(prefix + "/schemas/{table}", SchemaItem(catalog.subset(served)))
    if settings[("server", "docs")]:
        openapi.add_routes(
            app,
            prefix,
            lambda: openapi.build(
                routes, catalog, prefix, backend.max_limit, scopes, views, backend.beamline_groups
            ),
            list(dict.fromkeys(r.module for r in routes if r.path)),
        )
    return app
