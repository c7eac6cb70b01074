"""Exception -> JSON error body and status, in one place (API.md section 2)."""

from __future__ import annotations

import json
import logging
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


def is_connection_error(exc: BaseException) -> bool:
    """True when the database could not be reached (as opposed to a bad statement)."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)):
        code = exc.orig.args[0] if getattr(exc, "orig", None) and exc.orig.args else None
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
    orig = getattr(exc, "orig", None)
    if not isinstance(exc, sa_exc.OperationalError) or orig is None:
        return False
    return (bool(orig.args) and orig.args[0] in BUSY_CODES) or SQLITE_BUSY in str(orig)


def handle_database_error(
    req: falcon.Request, resp: falcon.Response, exc: sa_exc.SQLAlchemyError, params: dict
) -> None:
    """Outages and lock contention become 503; anything else is a bug in the server, logged as such."""
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


def install(app: falcon.App) -> None:
    """Wire the serializer and handlers into an app."""
    app.set_error_serializer(serialize_error)
    app.add_error_handler(Exception, handle_unexpected)
    # Falcon picks the most specific handler, so its own HTTPError handling still applies.
    app.add_error_handler(sa_exc.SQLAlchemyError, handle_database_error)
