"""The API's description over HTTP: `/openapi.json`, and `/doc` (Swagger UI) on it.

`/openapi.json` is the whole API; `?module=<name>` one module's routes, which
`/doc` shows one at a time: Swagger UI reads an OpenAPI 3.1 document whole
before it shows anything (about 0.4 s per 100 kB on a 2-core host), so a
module shows at once and the whole API, one choice away, in about two seconds.

Swagger UI is served from files shipped inside the package (it works with no
internet). Its bundle is 1.7 MB of JavaScript: it is sent gzip-compressed
(0.46 MB) to browsers that accept gzip, with an ETag and a max-age, so that a
browser downloads it once per version; the page names each file with its
digest (`?v=`), so that a new version is fetched at once.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import json
import threading
from collections.abc import Callable
from pathlib import Path

import falcon

from ..errors import not_found
from ..resources.conditional import matches

STATIC = Path(__file__).parents[1] / "static" / "swagger-ui"
MAX_AGE = 86400  # a day; the page's `?v=` changes with the files, whatever the age
# The same on every host (the `mimetypes` module reads the system's tables, which differ).
TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".txt": "text/plain"}


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


def _gzip(document: dict) -> bytes:
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    return gzip.compress(text.encode(), 9, mtime=0)


class OpenApiDocument:
    """`GET /openapi.json`: the whole API; `?module=<name>`: one module's routes.

    Serialized once and kept gzip-compressed: browsers (Swagger UI) get the
    compressed bytes, clients that do not accept gzip get them expanded.
    """

    public = True

    def __init__(self, compiled: Callable[[], tuple[dict, dict[str, dict]]], names: list[str]):
        self.compiled = compiled
        self.names = names
        self.lock = threading.Lock()
        self.gzipped: bytes | None = None
        self.modules: dict[str, bytes] = {}

    def compressed(self, module: str | None) -> bytes:
        """The document (or one module's), built and compressed on the first request."""
        with self.lock:
            if self.gzipped is None:
                document, parts = self.compiled()
                self.modules = {name: _gzip(part) for name, part in parts.items()}
                self.gzipped = _gzip(document)
        return self.gzipped if module is None else self.modules[module]

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        module = req.get_param("module")
        if module is not None and module not in self.names:
            raise not_found(f"No module named {module!r}; served: {', '.join(self.names)}.")
        data = self.compressed(module)
        resp.cache_control = ["public", "max-age=300"]
        resp.content_type = falcon.MEDIA_JSON
        resp.append_header("Vary", "Accept-Encoding")
        if accepts_gzip(req.get_header("Accept-Encoding")):
            resp.set_header("Content-Encoding", "gzip")
            resp.data = data
        else:
            resp.data = gzip.decompress(data)


class StaticFile:
    """One file of the folder: its digest taken at start-up, its bytes read (and compressed)
    when first asked for, so a server whose /doc no one opens holds none of Swagger UI."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        kind = TYPES.get(
            path.suffix, "text/plain" if not path.suffix else "application/octet-stream"
        )
        self.content_type = kind + ("; charset=utf-8" if kind.startswith("text/") else "")
        self.compressible = kind.startswith("text/")
        self._data: bytes | None = None
        self._gzipped: bytes | None = None

    @property
    def data(self) -> bytes:
        # Two first requests at once both read; either result is the same bytes.
        if self._data is None:
            self._data = self.path.read_bytes()
        return self._data

    @property
    def gzipped(self) -> bytes:
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.data, 9, mtime=0)
        return self._gzipped


class StaticFiles:
    """`GET /doc/static/{name}`: the Swagger UI files, compressed and cacheable."""

    public = True

    def __init__(self, folder: Path) -> None:
        self.files = {p.name: StaticFile(p) for p in sorted(folder.iterdir()) if p.is_file()}

    def url(self, prefix: str, name: str) -> str:
        return f"{prefix}/doc/static/{name}?v={self.files[name].digest}"

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        found = self.files.get(name)
        if found is None:
            raise not_found(f"No file named {name!r}.")
        gzipped = found.compressible and accepts_gzip(req.get_header("Accept-Encoding"))
        resp.etag = found.digest + ("-gzip" if gzipped else "")  # one tag per representation
        resp.cache_control = ["public", f"max-age={MAX_AGE}"]
        if found.compressible:
            resp.append_header("Vary", "Accept-Encoding")
        if matches(req.if_none_match, resp.etag.strip('"')):
            resp.status = falcon.HTTP_304
            return
        resp.content_type = found.content_type
        if gzipped:
            resp.set_header("Content-Encoding", "gzip")
            resp.data = found.gzipped
        else:
            resp.data = found.data


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ISPyB API (ispyb-falcon)</title>
<link rel="icon" href="{favicon}">
<link rel="stylesheet" href="{css}"></head>
<body><div class="swagger-ui"><div class="wrapper" style="padding-top: 1em">
<label>Routes of <select id="module">{options}
<option value="">every module (slower to show)</option></select></label></div></div>
<div id="swagger-ui"></div>
<script src="{bundle}"></script>
<script>
var select = document.getElementById("module");
var asked = new URLSearchParams(location.search).get("module");
if (asked !== null && Array.from(select.options).some(o => o.value === asked)) select.value = asked;
function spec(module) {{
  return "{base}/openapi.json" + (module ? "?module=" + encodeURIComponent(module) : "");
}}
window.ui = SwaggerUIBundle({{url: spec(select.value), dom_id: "#swagger-ui",
  persistAuthorization: true, deepLinking: true, displayRequestDuration: true}});
select.onchange = function () {{
  history.replaceState(null, "", "?module=" + encodeURIComponent(select.value));
  ui.specActions.updateUrl(spec(select.value));
  ui.specActions.download(spec(select.value));
}};
</script></body></html>
"""


class SwaggerPage:
    """`GET /doc`: Swagger UI on one module's routes at a time (`?module=`), or on all of them."""

    public = True

    def __init__(self, prefix: str, files: StaticFiles, modules: list[str]) -> None:
        self.html = PAGE.format(
            base=prefix,
            favicon=files.url(prefix, "favicon-32x32.png"),
            css=files.url(prefix, "swagger-ui.css"),
            bundle=files.url(prefix, "swagger-ui-bundle.js"),
            options="".join(
                f'<option value="{html.escape(m)}">{html.escape(m)}</option>' for m in modules
            ),
        )

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.text = self.html


def add_routes(
    app: falcon.App,
    prefix: str,
    compiled: Callable[[], tuple[dict, dict[str, dict]]],
    names: list[str],
) -> None:
    files = StaticFiles(STATIC)
    app.add_route(prefix + "/openapi.json", OpenApiDocument(compiled, names))
    app.add_route(prefix + "/doc", SwaggerPage(prefix, files, names))
    app.add_route(prefix + "/doc/static/{name}", files)
