"""Where files may be read from: the site's data roots, and opening a file below them.

Whatever a row says, a file is opened only when its real path (every `..` and
symbolic link resolved) lies below one of the configured roots, compared by
path components (`/dls2/x` is not below `/dls`), and only if it is a regular
file. Each refusal is a `Refused` whose message is safe to send (it never
repeats the path); refusals that a row's path could only earn by pointing
outside the roots are logged as warnings, with the path, for the operators.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass

log = logging.getLogger("ispyb_falcon.files")

NO_ROOTS = "No data roots are configured on this server ([files] roots), so no file is served."
NO_FILE = "The row names no file."
NOT_ON_DISK = "The file is not on disk."
OUTSIDE = "The file is not below this server's data roots."
NOT_REGULAR = "The row names something that is not a regular file."


class Refused(Exception):
    """The file cannot be served; `str(exc)` is the reason, fit for the client."""


@dataclass(frozen=True)
class Opened:
    """An open regular file: its descriptor (the caller closes it) and what fstat said."""

    fd: int
    size: int
    mtime_ns: int
    name: str  # the last component of the path, for Content-Type and Content-Disposition


def _components(path: str) -> tuple[str, ...]:
    return tuple(p for p in os.path.normcase(path).split(os.sep) if p)


class DataRoots:
    """The configured roots, resolved once: `open(path)` or `Refused`."""

    def __init__(self, roots: Iterable[str]) -> None:
        self.roots = tuple(os.path.realpath(r) for r in roots if r)
        self._parts = [_components(r) for r in self.roots]

    def __bool__(self) -> bool:
        return bool(self.roots)

    def below(self, real: str) -> tuple[str, ...] | None:
        """The root a resolved path lies below (as components), or None."""
        parts = _components(real)
        for root in self._parts:
            if parts[: len(root)] == root and len(parts) > len(root):
                return root
        return None

    def open(self, path: str | None) -> Opened:
        """Open the file a row names, or say why not (`Refused`)."""
        if not self.roots:
            raise Refused(NO_ROOTS)
        if path is None or not path.strip():
            raise Refused(NO_FILE)
        if "\x00" in path or not os.path.isabs(path):
            log.warning("file refused: %r is not an absolute path", path)
            raise Refused(OUTSIDE)
        real = os.path.realpath(path)
        root = self.below(real)
        if root is None:
            log.warning("file refused: %r resolves to %r, outside the data roots", path, real)
            raise Refused(OUTSIDE)
        try:
            before = os.stat(real)
        except (OSError, ValueError):
            raise Refused(NOT_ON_DISK) from None
        if not stat.S_ISREG(before.st_mode):  # a directory, a named pipe, a device: never opened
            log.warning("file refused: %r is not a regular file", path)
            raise Refused(NOT_REGULAR)
        fd = _open_below(real, root, _components(real)[len(root) :])
        try:
            now = os.fstat(fd)
            # What was opened is what was checked: not swapped for a link, pipe or device since.
            if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (
                before.st_dev,
                before.st_ino,
            ):
                log.warning("file refused: %r changed while it was opened", path)
                raise Refused(NOT_REGULAR)
        except BaseException:
            os.close(fd)
            raise
        return Opened(fd, now.st_size, now.st_mtime_ns, os.path.basename(real))


def _flags(extra: int = 0) -> int:
    return (
        os.O_RDONLY
        | getattr(os, "O_NOFOLLOW", 0)
        | getattr(os, "O_NONBLOCK", 0)  # a pipe swapped in opens at once, and is refused
        | getattr(os, "O_NOCTTY", 0)
        | getattr(os, "O_CLOEXEC", 0)
        | getattr(os, "O_BINARY", 0)
        | extra
    )


def _open_below(real: str, root: tuple[str, ...], rest: tuple[str, ...]) -> int:
    """Open root/rest one component at a time, following no symbolic link (where the
    platform allows: openat with O_NOFOLLOW), so that a link made after the path was
    resolved cannot lead outside the root."""
    try:
        if os.open not in os.supports_dir_fd or not hasattr(os, "O_NOFOLLOW"):
            return os.open(real, _flags())  # Windows: the resolved path, checked just before
        directory = getattr(os, "O_DIRECTORY", 0)
        fd = os.open(os.path.join(os.sep, *root), _flags(directory))
        try:
            for part in rest[:-1]:
                inner = os.open(part, _flags(directory), dir_fd=fd)
                os.close(fd)
                fd = inner
            return os.open(rest[-1], _flags(), dir_fd=fd)
        finally:
            os.close(fd)
    except (OSError, ValueError):
        raise Refused(NOT_ON_DISK) from None
