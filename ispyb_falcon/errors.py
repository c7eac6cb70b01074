"""Exception -> JSON error body and status, in one place (API.md section 2)."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import falcon
from sqlalchemy import exc as sa_exc

log = logging.getLogger("ispyb_falcon.errors")

RETRY_AFTER_SECONDS = 5


class ApiError(falcon.HTTPError):
    """An HTTP error whose body may list every violation with its JSON path."""

    def __init__(
        self,
        status: str,
        description: str,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(status, description=description, headers=headers)
        self.errors = errors
        self.extra = extra

    def to_dict(self, obj_type: type = dict) -> dict[str, Any]:
        body = super().to_dict(obj_type)
        if self.errors is not None:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


def bad_request(description: str, parameter: str | None = None) -> ApiError:
    extra = {"parameter": parameter} if parameter else {}
    return ApiError(falcon.HTTP_400, description, **extra)


def unprocessable(description: str, errors: list[dict[str, Any]]) -> ApiError:
    return ApiError(falcon.HTTP_422, description, errors)


def not_found(description: str = "No such resource.") -> ApiError:
    return ApiError(falcon.HTTP_404, description)


def forbidden(description: str) -> ApiError:
    return ApiError(falcon.HTTP_403, description)


def not_acceptable(offered: tuple[str, ...]) -> ApiError:
    return ApiError(
        falcon.HTTP_406,
        f"This route answers {', '.join(offered)}; the request's Accept header allows none of them.",
        offered=list(offered),
    )


def conflict(
    description: str, errors: list[dict[str, Any]] | None = None, **extra: Any
) -> ApiError:
    return ApiError(falcon.HTTP_409, description, errors, **extra)


def unauthorized(description: str) -> ApiError:
    return ApiError(
        falcon.HTTP_401, description, headers={"WWW-Authenticate": 'Bearer realm="ispyb"'}
    )


def unavailable(description: str = "The database is unavailable; try again shortly.") -> ApiError:
    return ApiError(falcon.HTTP_503, description, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def serialize_error(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
    """Always JSON, whatever the client asked for: scripts parse one format."""
    resp.content_type = falcon.MEDIA_JSON
    resp.text = json.dumps(exc.to_dict())


def database_error(exc: BaseException) -> tuple[int | None, str]:
    """(the driver's error number, its message): PyMySQL gives both, SQLite only text."""
    orig = getattr(exc, "orig", None)
    if orig is None:
        return None, str(exc)
    args = getattr(orig, "args", ())
    if len(args) > 1 and isinstance(args[0], int):
        return args[0], str(args[1])
    return None, str(orig)


def is_connection_error(exc: BaseException) -> bool:
    """True when the database could not be reached (as opposed to a bad statement)."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)):
        code = database_error(exc)[0]
        # MySQL client errors 2002-2013: can't connect, server gone, lost connection.
        if isinstance(code, int):
            return 2000 <= code < 2100 or code in (1040, 1053)
        return "unable to open database" in str(exc) or "connect" in str(exc).lower()
    return isinstance(exc, sa_exc.TimeoutError)


# MariaDB gave up waiting for a row lock (1205), or chose this transaction as a
# deadlock's victim (1213); SQLite waited its busy timeout for the write lock.
BUSY_CODES = (1205, 1213)
SQLITE_BUSY = "database is locked"


def is_busy(exc: BaseException) -> bool:
    """True when the database rolled the transaction back because others held its locks."""
    if not isinstance(exc, sa_exc.OperationalError):
        return False
    code, message = database_error(exc)
    return code in BUSY_CODES or SQLITE_BUSY in message


# A table or column the server reflected at start-up is gone: MariaDB 1146 / 1054,
# SQLite's "no such table" / "no such column".
_GONE = re.compile(
    r"Table '(?:[^'.]*\.)?(?P<table>[^']+)' doesn't exist|Unknown column '(?P<column>[^']+)'"
    r"|no such (?:table: (?P<sqlite_table>\S+)|column: (?P<sqlite_column>\S+))"
)


# MariaDB 1142: the server's own database account lacks a privilege on a table.
_DENIED = re.compile(
    r"^(?P<command>\w+) command denied .* for table [`']?(?:[^`'.]+[`']?\.[`']?)?(?P<table>[^`']+)"
)


def denied(exc: BaseException) -> ApiError | None:
    """The database account may not do this (the site granted it less): a 403 naming
    the command and table, never the account or the database."""
    code, message = database_error(exc)
    if code not in (1142, 1143):
        return None
    m = _DENIED.match(message)
    what = f"{m.group('command')} on table {m.group('table')}" if m else "this change"
    return forbidden(
        f"This site's database does not let the API do {what}; nothing was changed."
        " Ask the site's administrators if you need it."
    )


class StructureWatch:
    """What changed in the database's structure since the server read it at start-up.

    A statement that fails because a table or column went away is a 503 naming
    it; `/health` then reports the change until the server is restarted and
    reads the new structure (every worker reads it once, at start-up).
    """

    def __init__(self) -> None:
        self.changed: list[str] = []

    def gone(self, exc: BaseException) -> str | None:
        """`table X` or `column X.y` when the error says one went away, else None."""
        m = _GONE.search(database_error(exc)[1])
        if not m:
            return None
        if table := m.group("table") or m.group("sqlite_table"):
            what = f"table {table}"
        else:
            what = f"column {m.group('column') or m.group('sqlite_column')}"
        if what not in self.changed:
            self.changed.append(what)
            log.error("the database changed since start-up: %s is gone; restart the server", what)
        return what


def handle_database_error(
    req: falcon.Request,
    resp: falcon.Response,
    exc: sa_exc.SQLAlchemyError,
    params: dict,
    watch: StructureWatch | None = None,
) -> None:
    """Outages, lock contention and a structure changed under the server become 503;
    anything else is a bug in the server, logged as such."""
    if watch is not None and isinstance(exc, sa_exc.DBAPIError) and (what := watch.gone(exc)):
        raise unavailable(
            f"The database changed since this server started: {what} is gone."
            " The server's administrators must restart it to serve this request again."
        )
    if (refused := denied(exc)) is not None:
        log.warning("database privilege missing (request %s): %s", _rid(req), refused.description)
        raise refused
    if is_connection_error(exc):
        log.warning("database unavailable (request %s): %s", _rid(req), exc.__class__.__name__)
        raise unavailable()
    if is_busy(exc):
        log.warning("database busy (request %s): %s", _rid(req), str(exc.orig).splitlines()[0])
        raise unavailable("The database is busy with other writes; nothing was changed. Try again.")
    handle_unexpected(req, resp, exc, params)


def handle_unexpected(
    req: falcon.Request, resp: falcon.Response, exc: Exception, params: dict
) -> None:
    """Log the detail with the request id; the client gets only that id."""
    if isinstance(exc, falcon.HTTPError):
        raise exc
    rid = _rid(req)
    log.exception("unexpected error in request %s %s %s", rid, req.method, req.path)
    raise ApiError(
        falcon.HTTP_500,
        "An unexpected error occurred; quote the request id to the site's administrators.",
        requestId=rid,
    )


def _rid(req: falcon.Request) -> str:
    return getattr(req.context, "request_id", "-")


def install(app: falcon.App, watch: StructureWatch | None = None) -> None:
    """Wire the serializer and handlers into an app."""
    app.set_error_serializer(serialize_error)
    app.add_error_handler(Exception, handle_unexpected)

    def database_error(req, resp, exc, params) -> None:
        handle_database_error(req, resp, exc, params, watch)

    # Falcon picks the most specific handler, so its own HTTPError handling still applies.
    app.add_error_handler(sa_exc.SQLAlchemyError, database_error)
