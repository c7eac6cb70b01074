"""Files the rows name (API.md section 9): snapshots, image JPEGs, processing logs.

Each file route is a declaration: the route whose row names the file, the
column(s) holding its path, and what the file usually is. One resource class
(`resource.py`) serves them all: it finds the row as the route's item would
(so a file is visible exactly when its row is), opens the file below the
site's data roots (`roots.py`) and sends it (`send.py`). Browsers, which
cannot send a bearer token with `<img src>`, use signed links (`links.py`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FileRoute:
    """`GET {route}/{id}{suffix}`: the file named by `columns` of the route's row.

    Several columns are joined with `/` (a directory and a name); `{n}` in a column
    stands for the path's `{n}`, which takes the values of `numbers`.
    """

    route: str  # the row's route: "/images", or a nested one "/datacollections/{id}/attachments"
    suffix: str  # "/thumbnail", "/snapshots/{n}"
    columns: tuple[str, ...]
    summary: str
    media: tuple[str, ...]  # what the file usually is, for the API documentation
    numbers: tuple[int, ...] = ()
    operation: str = ""  # the OpenAPI operationId

    def item_path(self, nested: bool) -> str:
        return self.route + ("/{key}" if nested else "/{id}")


# The type is the file's own (from its name): what a route usually serves, and
# application/octet-stream for the rest (which client generators also read as bytes).
IMAGES = ("image/png", "image/jpeg", "application/octet-stream")
JPEG = ("image/jpeg", "application/octet-stream")
ANY_FILE = ("application/octet-stream", "text/plain", "text/html", "image/png")

FILES: tuple[FileRoute, ...] = (
    FileRoute(
        "/datacollections",
        "/snapshots/{n}",
        ("xtalSnapshotFullPath{n}",),
        "A crystal snapshot of a data collection (n = 1 to 4: xtalSnapshotFullPath1..4)",
        IMAGES,
        numbers=(1, 2, 3, 4),
        operation="getDataCollectionSnapshot",
    ),
    FileRoute(
        "/images",
        "/thumbnail",
        ("jpegThumbnailFileFullPath",),
        "The thumbnail of an image (jpegThumbnailFileFullPath)",
        JPEG,
        operation="getImageThumbnail",
    ),
    FileRoute(
        "/images",
        "/jpeg",
        ("jpegFileFullPath",),
        "The JPEG of an image (jpegFileFullPath)",
        JPEG,
        operation="getImageJpeg",
    ),
    FileRoute(
        "/autoprocprogramattachments",
        "/file",
        ("filePath", "fileName"),
        "The file of a processing program attachment (filePath + fileName)",
        ANY_FILE,
        operation="getAutoProcProgramAttachmentFile",
    ),
    FileRoute(
        "/datacollections/{id}/attachments",
        "/file",
        ("fileFullPath",),
        "The file of a data collection attachment (fileFullPath)",
        ANY_FILE,
        operation="getDataCollectionAttachmentFile",
    ),
)
