"""The `ispyb-falcon` command: serve, demo, demo-data, schemas, token, passwd.

A bad configuration or an unusable database is one line on stderr and exit
code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from . import __version__
from .config import DEMO_DATABASE_URL, ConfigError, Settings, load_settings

EXIT_CONFIG = 2
BODY_READ_FACTOR = 4  # see waitress_options


def _bounded(kind: type, lo: float, hi: float | None = None):
    """An argparse type: a number from lo (to hi); anything else is a one-line usage error."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            limit = f"from {lo} to {hi}" if hi is not None else f"at least {lo}"
            raise argparse.ArgumentTypeError(f"must be {limit}, got {text}")
        return value

    return parse


def database_url(text: str) -> str:
    """A SQLAlchemy URL, or the path of a SQLite file (what `demo --database` takes)."""
    if "://" in text:
        return text
    return f"sqlite:///{Path(text).resolve()}"


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def configure_logging(settings: Settings) -> None:
    """Every line with its time, whichever server runs the app (waitress, gunicorn, mod_wsgi)."""
    from . import logs

    logs.configure(settings[("server", "log_level")])


def waitress_options(settings: Settings) -> dict:
    """How `serve` and `demo` run waitress (the benchmark runs its servers the same way)."""
    return {
        "threads": settings[("server", "threads")],
        # waitress reads bodies up to four times the app's limit, so the app answers those
        # past it with its own 413; larger ones get waitress's, in JSON too (see below).
        "max_request_body_size": BODY_READ_FACTOR * settings[("server", "max_body_bytes")],
        "ident": "ispyb-falcon",
        # waitress drops X-Forwarded-For unless told otherwise; with [server] trusted_proxies
        # the app keeps it and reads it only from those proxies (auth/proxies.py).
        "clear_untrusted_proxy_headers": not settings[("server", "trusted_proxies")],
        # Flush exports to the client early: waitress buffers 16 MB per connection by default,
        # which made a 1M-row CSV export peak ~25 MB higher (bin/bench).
        "outbuf_high_watermark": 1 << 20,
    }


def waitress_json_errors() -> None:
    """The errors waitress answers itself, before the app sees the request (a body past
    `max_request_body_size`, a malformed request line, headers too large), in the API's
    JSON error body (API.md section 2) instead of waitress's plain text."""
    from waitress import utilities

    def to_response(error, ident=None):
        status = f"{error.code} {error.reason}"
        body = json.dumps({"title": status, "description": str(error.body)}).encode()
        return status, [("Content-Type", "application/json")], body

    utilities.Error.to_response = to_response


def _serve(app, settings: Settings, host: str, port: int) -> None:
    import waitress

    from .app import settle

    waitress_json_errors()
    settle()
    try:
        waitress.serve(app, host=host, port=port, **waitress_options(settings))
    except OSError as exc:  # bind: the port is taken, or the address is not this host's
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}"
            " (is another server running there? choose another with --port)"
        ) from None


def cmd_serve(args: argparse.Namespace) -> int:
    from .app import create_app

    settings = _settings(args)
    configure_logging(settings)
    app = create_app(settings)
    host = args.host or settings[("server", "host")]
    port = args.port or settings[("server", "port")]
    print(f"ispyb-falcon {__version__} on http://{host}:{port}{settings.prefix}", file=sys.stderr)
    _serve(app, settings, host, port)
    return 0


def demo_settings(path: Path, port: int) -> Settings:
    """The embedded demo: SQLite, dummy logins, demo beamline groups, development mode."""
    from .config import BeamlineGroup
    from .demo.people import DEMO_BEAMLINE_GROUPS

    groups = [
        BeamlineGroup(n, perm, tuple(lines)) for n, (perm, lines) in DEMO_BEAMLINE_GROUPS.items()
    ]
    base = load_settings(None, environ={})
    return base.replace(
        server_debug=True,
        server_port=port,
        server_cors_origins=("*",),
        database_url=f"sqlite:///{path}",
        auth_authenticators=("dummy",),
        beamline_groups=groups,
        files_roots=(str(demo_files_root(path)),),
    )


def demo_files_root(path: Path) -> Path:
    """The demo's data root: a folder beside its SQLite file (`demo.sqlite` -> `demo-files/`)."""
    return path.with_name(f"{path.stem}-files")


def cmd_demo(args: argparse.Namespace) -> int:
    from .app import create_app
    from .catalog.store import Catalog
    from .demo.files import place as place_demo_files
    from .demo.progress import ProgressBar
    from .demo.sqlite import create_demo_database

    path = Path(args.database).resolve()
    settings = demo_settings(path, args.port)
    configure_logging(settings)
    if path.exists() and path.stat().st_size > 0:
        scaled = (
            f"; --scale {args.scale} applies only when it is created" if args.scale != 1 else ""
        )
        print(
            f"using the existing demo database {path} (delete it to rebuild{scaled})",
            file=sys.stderr,
        )
    else:
        print(f"creating the demo database {path}", file=sys.stderr)
        create_demo_database(
            settings[("database", "url")],
            Catalog.from_dir().schemas,
            scale=args.scale,
            progress=ProgressBar(),
        )
    engine = sa.create_engine(settings[("database", "url")])
    try:  # the demo rows' snapshots, JPEGs and logs, below the demo's data root
        place_demo_files(engine, demo_files_root(path))
    finally:
        engine.dispose()
    app = create_app(settings)
    base = f"http://{settings[('server', 'host')]}:{args.port}{settings.prefix}"
    print(
        f"""
ispyb-falcon demo on {base}   (Ctrl-C stops it; any password works)

  API documentation, to try every route in the browser: {base}/doc

  TOKEN=$(curl -s -u pi_anna:demo {base}/auth/login | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  curl -H "Authorization: Bearer $TOKEN" '{base}/proposals'
  curl -H "Authorization: Bearer $TOKEN" '{base}/datacollections?session=mx1001-1&limit=5'
  curl -H "Authorization: Bearer $TOKEN" '{base}/datacollections/1/snapshots/1' -o snapshot.png

Logins: pi_anna, member_ben, visitor_cara, staff_dan, pi_eve, user_fred, gus_super, manager1, admin1
""",
        file=sys.stderr,
    )
    if args.no_serve:
        return 0
    _serve(app, settings, settings[("server", "host")], args.port)
    return 0


def cmd_demo_data(args: argparse.Namespace) -> int:
    if args.facility:
        return demo_facility(args)
    from .catalog.store import Catalog
    from .demo.generator import fill
    from .demo.progress import ProgressBar
    from .demo.sqlite import create_tables

    engine = sa.create_engine(args.database)  # a URL, or a SQLite file's path (database_url)
    if engine.dialect.name == "sqlite" and not sa.inspect(engine).get_table_names():
        create_tables(engine, Catalog.from_dir().schemas)
    started = time.perf_counter()
    counts = fill(engine, scale=args.scale, progress=ProgressBar())
    seconds = time.perf_counter() - started
    print(f"inserted {sum(counts.values())} rows in {seconds:.1f} s", file=sys.stderr)
    for table, n in sorted(counts.items()):
        print(f"  {table:28} {n}", file=sys.stderr)
    return 0


def demo_facility(args: argparse.Namespace) -> int:
    """`demo-data --facility`: the benchmark's facility-scale data set (MariaDB only)."""
    import pymysql

    from .demo import facility

    if sa.make_url(args.database).get_backend_name() not in ("mysql", "mariadb"):
        print(
            "ispyb-falcon: demo-data --facility needs a MariaDB database URL"
            " (mysql+pymysql://user@host/db) with the official ISPyB schema",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    try:
        found = facility.build(
            args.database,
            **facility.sized(args.collections),
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except facility.FacilityError as exc:
        print(f"ispyb-falcon: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except pymysql.MySQLError as exc:
        print(f"ispyb-falcon: database error: {exc}", file=sys.stderr)
        return 1
    print(found.summary())
    return 0


def _site_engine(args: argparse.Namespace) -> tuple[sa.Engine, Settings]:
    """The database `--database` names, else the configured one (`--config`, environment)."""
    from . import db

    settings = _settings(args)
    url = args.database or settings[("database", "url")]
    if url == DEMO_DATABASE_URL:
        raise ConfigError("no database: give --database URL, or --config FILE with [database] url")
    try:
        return db.make_engine(settings, url), settings
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise ConfigError(f"--database / [database] url: {exc}") from None


def cmd_schemas_generate(args: argparse.Namespace) -> int:
    from .catalog.generate import generate_available, write_schemas
    from .catalog.site import read_site
    from .catalog.tables import CATALOG_TABLES

    engine, _ = _site_engine(args)
    if engine.dialect.name not in ("mysql", "mariadb"):
        raise ConfigError("schemas generate reads a MariaDB/MySQL database (information_schema)")
    names = args.tables or CATALOG_TABLES
    schemas, unseen = generate_available(engine, names)
    absent = read_site(engine, unseen).absent if unseen else {}
    written = write_schemas(schemas, Path(args.out))
    for name in unseen:
        reason = absent.get(name, "not found")
        print(f"not written: {name} ({reason}); its routes will not be served", file=sys.stderr)
    print(f"wrote {len(written)} schemas to {args.out}", file=sys.stderr)
    if not written:
        return 1
    print(
        f"serve with them: set [database] schemas_dir = {Path(args.out).resolve()}"
        f" (or ISPYB_FALCON_DATABASE_SCHEMAS_DIR={Path(args.out).resolve()})",
        file=sys.stderr,
    )
    return 0


def cmd_schemas_check(args: argparse.Namespace) -> int:
    from .catalog.drift import differences
    from .catalog.site import read_site
    from .catalog.store import default_schemas_dir, load_schema_dir

    engine, settings = _site_engine(args)
    configured = settings[("database", "schemas_dir")]
    directory = Path(args.schemas or configured or default_schemas_dir())
    try:
        schemas = load_schema_dir(directory)
    except ValueError as exc:
        raise ConfigError(f"--schemas / [database] schemas_dir: {exc}") from None
    site = read_site(engine, list(schemas))
    found = differences(schemas, site)
    for line in found:
        print(line)
    version = site.version or "not recorded"
    print(
        f"{len(found)} difference(s) between the database (schema version {version})"
        f" and the {len(schemas)} schemas in {directory}",
        file=sys.stderr,
    )
    return 1 if found else 0


def cmd_token(args: argparse.Namespace) -> int:
    from .app import make_tokens
    from .auth.authenticators import ROLES

    settings = _settings(args)
    unknown = sorted(set(args.role) - set(ROLES))
    if unknown:
        raise ConfigError(
            f"--role: unknown role(s) {', '.join(unknown)}; known: {', '.join(ROLES)}"
        )
    if not settings[("tokens", "secret")] and settings[("tokens", "algorithm")] == "HS256":
        raise ConfigError(
            "[tokens] secret is not configured: a token signed now would not be accepted by the server"
        )
    tokens = make_tokens(settings)
    token, expires = tokens.issue(
        args.login,
        args.role,
        beamlines=args.beamline or (),
        lifetime_seconds=int(args.days * 86400),
    )
    print(token)
    print(f"expires {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(expires))}", file=sys.stderr)
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    from .auth.passwords import set_password

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.login}: ")
        if password != getpass.getpass("again: "):
            print("the passwords differ", file=sys.stderr)
            return 1
    if not password:
        raise ConfigError("the password must not be empty")
    try:
        set_password(Path(args.file), args.login, password, args.role or ["user"])
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    print(f"{args.file}: set the password of {args.login}", file=sys.stderr)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ispyb-falcon", description="The shared REST backend for ISPyB."
    )
    p.add_argument("--version", action="version", version=__version__)
    p.add_argument(
        "--config", help="INI file (default: $ISPYB_FALCON_CONFIG, else built-in defaults)"
    )
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=text,
            description=text,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )

    port = _bounded(int, 1, 65535)
    s = command("serve", "serve the API with waitress")
    s.add_argument("--host", help="address to listen on (default: [server] host)")
    s.add_argument("--port", type=port, help="port to listen on (default: [server] port)")
    s.set_defaults(func=cmd_serve)

    s = command("demo", "create a demo SQLite database (if missing) and serve it")
    s.add_argument("--database", default="ispyb-falcon-demo.sqlite", help="SQLite file")
    s.add_argument("--port", type=port, default=8080, help="port to listen on")
    s.add_argument(
        "--scale",
        type=_bounded(int, 1, 1000),
        default=1,
        help="copies of the demo data, when created",
    )
    s.add_argument("--no-serve", action="store_true", help="create the database and stop")
    s.set_defaults(func=cmd_demo)

    s = command(
        "demo-data",
        "fill a database (SQLite or MariaDB) with N copies of the demo data, or (MariaDB)"
        " with a facility's worth of data collections for benchmarks (--facility)",
    )
    s.add_argument(
        "--database",
        type=database_url,
        required=True,
        help="SQLAlchemy URL (mysql+pymysql://user@host/db), or a SQLite file's path",
    )
    s.add_argument(
        "--scale", type=_bounded(int, 1, 1000), default=1, help="copies of the demo data"
    )
    s.add_argument(
        "--facility",
        action="store_true",
        help="build the benchmark's facility data set instead (MariaDB with the official"
        " schema): one visit holds 2 %% of the collections (at most 20,000), one proposal 10 %%"
        " (at most 100,000)",
    )
    s.add_argument(
        "--collections",
        type=_bounded(int, 1000),
        default=1_000_000,
        help="with --facility: data collections in all",
    )
    s.set_defaults(func=cmd_demo_data)

    schemas = sub.add_parser("schemas", help="generate or check the JSON Schemas").add_subparsers(
        dest="action", required=True
    )
    s = schemas.add_parser(
        "generate", help="write one JSON Schema per table from a MariaDB/MySQL database"
    )
    s.add_argument(
        "--database", help="SQLAlchemy URL of the site database (default: [database] url)"
    )
    s.add_argument("--out", required=True, help="directory to write <Table>.json files to")
    s.add_argument(
        "--tables", nargs="*", help="tables (default: every table the API serves or needs)"
    )
    s.set_defaults(func=cmd_schemas_generate)
    s = schemas.add_parser(
        "check", help="list every difference between a database and a schema directory"
    )
    s.add_argument("--database", help="SQLAlchemy URL (default: [database] url)")
    s.add_argument(
        "--schemas",
        help="schema directory (default: [database] schemas_dir, else the shipped schemas)",
    )
    s.set_defaults(func=cmd_schemas_check)

    s = command("token", "print a long-lived token for a service account")
    s.add_argument("--login", required=True, help="the account's login")
    s.add_argument(
        "--role", action="append", required=True, help="repeatable: acquisition, processing, ..."
    )
    s.add_argument(
        "--beamline", action="append", help="repeatable: limit the account to these beamlines"
    )
    s.add_argument(
        "--days", type=_bounded(float, 0.001, 3650), default=365, help="lifetime in days"
    )
    s.set_defaults(func=cmd_token)

    s = command("passwd", "add or change a login in a password file (the `file` authenticator)")
    s.add_argument("--file", required=True, help="the password file (created if missing)")
    s.add_argument("--login", required=True, help="the login to set")
    s.add_argument("--role", action="append", help="repeatable (default: user)")
    s.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    s.set_defaults(func=cmd_passwd)
    _limiter_parser(sub)
    return p


def _limiter_parser(sub) -> None:
    s = sub.add_parser("limiter", help="the shared login limit's table ([auth] limiter = database)")
    s = s.add_subparsers(dest="action", required=True).add_parser(
        "init", help="create the table ispyb_falcon_login_limit if it is missing"
    )
    s.add_argument(
        "--database", help="SQLAlchemy URL (default: [auth] limiter_url, else [database] url)"
    )
    s.add_argument("--sql", action="store_true", help="print the SQL instead of running it")
    s.set_defaults(func=cmd_limiter_init)


def cmd_limiter_init(args: argparse.Namespace) -> int:
    from . import db
    from .auth.limitstores import TABLE, create_table, table_sql

    settings = _settings(args)
    url = args.database or settings[("auth", "limiter_url")] or settings[("database", "url")]
    if url.startswith(("redis:", "rediss:")):
        raise ConfigError("limiter init: Redis needs no table; give --database for one")
    engine = db.make_engine(settings, url)
    try:
        if args.sql:
            print(table_sql(engine), end="")
            return 0
        created = create_table(engine)
    finally:
        engine.dispose()
    where = engine.url.render_as_string(hide_password=True)
    print(f"{where}: table {TABLE} {'created' if created else 'already there'}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    from .app import StartupError

    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, StartupError) as exc:
        print(f"ispyb-falcon: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except sa.exc.SQLAlchemyError as exc:
        print(f"ispyb-falcon: database error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
