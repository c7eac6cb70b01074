"""The demo's files: snapshots, image JPEGs and logs that the demo rows name, on disk.

The generator's rows name files below `/dls/...`, as at a facility. `place(engine,
root)` writes small files below a demo data root (`root/dls/...`) and points the
rows of the first copy of the demo data at them, so that the file routes have
something to serve; the server is then configured with `[files] roots = root`.
It may run again with another root (a test's temporary folder): it rewrites
the same rows. PNGs and JPEGs are made here (zlib and struct), with no image
library.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import sqlalchemy as sa

from . import people

GENERATED = "/dls/"  # where the generator's paths begin


# --- images -------------------------------------------------------------------------------


def png(width: int, height: int, pixel) -> bytes:
    """An 8-bit RGB PNG; `pixel(x, y)` gives (r, g, b)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(
        b"\x00" + bytes(c for x in range(width) for c in pixel(x, y)) for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def _snapshot_pixel(x: int, y: int) -> tuple[int, int, int]:
    """A crystal in a loop on a grey background, as a beamline camera shows it."""
    dx, dy = x - 80, y - 60
    ring = 1500 <= dx * dx + dy * dy <= 1800
    crystal = abs(dx) + abs(dy) < 14
    if crystal:
        return 90, 170, 220
    if ring:
        return 230, 200, 60
    shade = 70 + (x + y) // 8
    return shade, shade, shade + 10


# Baseline JPEG: one grey component, every 8x8 block one flat shade (DC only), the
# standard DC Huffman table and an AC table that holds only end-of-block.
_DC_BITS = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)
_DC_VALUES = tuple(range(12))
_AC_BITS = (1,) + (0,) * 15
_AC_VALUES = (0,)


def _codes(bits: tuple[int, ...], values: tuple[int, ...]) -> dict[int, tuple[int, int]]:
    """Canonical Huffman codes: symbol -> (code, length)."""
    codes, code, k = {}, 0, 0
    for length, count in enumerate(bits, start=1):
        for _ in range(count):
            codes[values[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return codes


def jpeg(width: int, height: int, shade) -> bytes:
    """A greyscale JPEG (sizes multiples of 8); `shade(bx, by)` is block (bx, by)'s grey."""

    def segment(marker: int, data: bytes) -> bytes:
        return struct.pack(">HH", marker, len(data) + 2) + data

    dc = _codes(_DC_BITS, _DC_VALUES)
    eob = _codes(_AC_BITS, _AC_VALUES)[0]
    bits: list[tuple[int, int]] = []
    previous = 0
    for by in range(height // 8):
        for bx in range(width // 8):
            value = max(-127, min(127, shade(bx, by) - 128))  # the DC of a flat block over 8
            diff, previous = value - previous, value
            size = abs(diff).bit_length()
            bits.append(dc[size])
            if size:
                bits.append((diff if diff > 0 else diff + (1 << size) - 1, size))
            bits.append(eob)
    out, acc, n = bytearray(), 0, 0
    for code, length in bits:
        acc, n = (acc << length) | code, n + length
        while n >= 8:
            n -= 8
            byte = (acc >> n) & 0xFF
            out += b"\xff\x00" if byte == 0xFF else bytes((byte,))
    if n:
        byte = ((acc << (8 - n)) | ((1 << (8 - n)) - 1)) & 0xFF
        out += b"\xff\x00" if byte == 0xFF else bytes((byte,))
    huffman = (
        b"\x00"
        + bytes(_DC_BITS)
        + bytes(_DC_VALUES)
        + b"\x10"
        + bytes(_AC_BITS)
        + bytes(_AC_VALUES)
    )
    return (
        b"\xff\xd8"
        + segment(0xFFE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
        + segment(0xFFDB, b"\x00" + bytes([8] * 64))  # DC / 8: a block's DC is its shade - 128
        + segment(0xFFC0, struct.pack(">BHHBBBB", 8, height, width, 1, 1, 0x11, 0))
        + segment(0xFFC4, huffman)
        + segment(0xFFDA, b"\x01\x01\x00\x00\x3f\x00")
        + bytes(out)
        + b"\xff\xd9"
    )


def _diffraction(bx: int, by: int, blocks: int) -> int:
    """Rings around the beam centre: a diffraction image, very roughly."""
    r = ((bx - blocks // 2) ** 2 + (by - blocks // 2) ** 2) ** 0.5
    return 40 + int(60 * (1 + ((r * 1.7) % 3 < 1)))


SNAPSHOT = png(160, 120, _snapshot_pixel)
THUMBNAIL = jpeg(64, 64, lambda bx, by: _diffraction(bx, by, 8))
JPEG = jpeg(256, 256, lambda bx, by: _diffraction(bx, by, 32))


def _log(name: str) -> bytes:
    return (
        f"collect: {name}\ndetector armed, shutter open\n3600 images written\ncollection finished\n"
    ).encode()


def _report(name: str) -> bytes:
    return (
        "<!DOCTYPE html><html><head><title>xia2</title></head><body>"
        f"<h1>xia2 processing of {name}</h1><p>Processing finished.</p></body></html>\n"
    ).encode()


# --- rows ---------------------------------------------------------------------------------

# (table, key, column holding the path, column holding the name or None, the file's bytes)
FILES = (
    ("DataCollection", "dataCollectionId", "xtalSnapshotFullPath1", None, lambda p: SNAPSHOT),
    ("Image", "imageId", "jpegThumbnailFileFullPath", None, lambda p: THUMBNAIL),
    ("Image", "imageId", "jpegFileFullPath", None, lambda p: JPEG),
    (
        "DataCollectionFileAttachment",
        "dataCollectionFileAttachmentId",
        "fileFullPath",
        None,
        lambda p: _log(Path(p).stem),
    ),
    (
        "AutoProcProgramAttachment",
        "autoProcProgramAttachmentId",
        "filePath",
        "fileName",
        lambda p: _report(Path(p).parent.parent.parent.name),
    ),
)


def visits() -> list[str]:
    """The visits of the demo's first copy, as their paths name them (`/mx1001-1/`)."""
    return [f"{p.code}{people.proposal_number(p.number, 0)}-" for p in people.PROPOSALS]


def place(engine: sa.Engine, root: Path) -> int:
    """Write the files of the first copy's rows below `root` and point the rows at them;
    the number of files written."""
    root = Path(root).resolve()
    metadata = sa.MetaData()
    present = set(sa.inspect(engine).get_table_names())
    names = sorted({t for t, *_ in FILES} & present)
    metadata.reflect(engine, only=names, resolve_fks=False)
    written = 0
    with engine.begin() as conn:
        for table_name, key, column, name_column, content in FILES:
            table = metadata.tables.get(table_name)
            if table is None or column not in table.c:
                continue
            col = table.c[column]
            shown = [table.c[key], col] + ([table.c[name_column]] if name_column else [])
            rows = conn.execute(
                sa.select(*shown).where(
                    col.like(f"%{GENERATED}%"),
                    sa.or_(*(col.like(f"%/{v}%") for v in visits())),
                )
            ).all()
            for row in rows:
                generated = row[1][row[1].rfind(GENERATED) :]
                path = f"{root}{generated}"
                target = Path(path, row[2]) if name_column else Path(path)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content(str(target)))
                written += 1
                if path != row[1]:
                    conn.execute(
                        table.update().where(table.c[key] == row[0]).values({column: path})
                    )
    return written
