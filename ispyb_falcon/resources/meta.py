"""Health and the JSON Schemas (API.md section 7): public routes."""

from __future__ import annotations

import falcon
import sqlalchemy as sa

from .. import __version__, serialize
from ..catalog.store import Catalog
from ..errors import RETRY_AFTER_SECONDS, StructureWatch, not_found
from ..serving import Fit
from .conditional import matches


class ApiIndex:
    """`GET /` (and the prefix itself): where to go from the API's base URL."""

    public = True

    def __init__(self, prefix: str, docs: bool) -> None:
        links = {
            "login": f"{prefix}/auth/login",
            "health": f"{prefix}/health",
            "schemas": f"{prefix}/schemas",
        }
        if docs:
            links = {"doc": f"{prefix}/doc", "openapi": f"{prefix}/openapi.json", **links}
        self.text = serialize.dumps(
            {"name": "ispyb-falcon", "version": __version__, "links": links}
        )

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.cache_control = ["public", "max-age=300"]
        resp.text = self.text


class Health:
    """`GET /health`: is the service up and can it reach its database."""

    public = True

    def __init__(
        self, engine: sa.Engine, watch: StructureWatch, version: str | None, fit: Fit
    ) -> None:
        self.engine = engine
        self.watch = watch
        self.schema = {
            "version": version,
            "routes": len(fit.routes),
            "notServed": sorted(fit.out),
        }

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            database = "ok"
        except sa.exc.SQLAlchemyError:
            database = "unavailable"
        schema = dict(self.schema)
        if self.watch.changed:
            # A table or column went away since start-up: this worker must be restarted.
            schema["changed"] = [f"{what} is gone" for what in self.watch.changed]
        healthy = database == "ok" and not self.watch.changed
        if not healthy:
            resp.status = falcon.HTTP_503
            resp.set_header("Retry-After", str(RETRY_AFTER_SECONDS))
        resp.cache_control = ["no-store"]
        resp.text = serialize.dumps(
            {
                "status": "ok" if healthy else "degraded",
                "database": database,
                "schema": schema,
                "version": __version__,
            }
        )


class SchemaList:
    """`GET /schemas`: every table schema the server validates with."""

    public = True

    def __init__(self, catalog: Catalog, base: str, resources: dict[str, str]) -> None:
        self.body = serialize.dumps(
            {
                "schemas": [
                    {"name": name, "url": f"{base}/schemas/{name}", "resource": resources.get(name)}
                    for name in sorted(catalog.tables)
                ]
            }
        )

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.cache_control = ["public", "max-age=300"]
        resp.text = self.body


class SchemaItem:
    """`GET /schemas/{table}`: one table's JSON Schema, the very one used for validation."""

    public = True

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def on_get(self, req: falcon.Request, resp: falcon.Response, table: str) -> None:
        if table not in self.catalog:
            raise not_found(f"No schema named {table!r}.")
        schema = self.catalog[table]
        resp.etag = schema.etag
        resp.cache_control = ["public", "max-age=300"]
        if matches(req.if_none_match, schema.etag):
            resp.status = falcon.HTTP_304
            return
        resp.content_type = "application/schema+json"
        resp.text = schema.text
