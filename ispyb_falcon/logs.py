"""Log lines, written in batches: what every server (waitress, gunicorn, mod_wsgi) logs through.

A server writes one access line per request. Written and flushed as each request
ends, every line is a system call from a request thread, which gives up Python's
GIL and must win it back from the other threads: on the benchmark's small list
(`GET /proposals` as a PI) that cost 0.14 ms of server CPU per request, about a
tenth of the request. Here a request thread only formats its line and appends it;
one writer thread writes what has gathered, several times a second, in one
system call. Nothing is lost at exit: `logging.shutdown` flushes the handler.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
INTERVAL_SECONDS = 0.2


class BatchedStreamHandler(logging.StreamHandler):
    """A StreamHandler that writes its lines every `interval` seconds, in one write."""

    def __init__(self, stream: TextIO | None = None, interval: float = INTERVAL_SECONDS) -> None:
        super().__init__(stream)
        self.pending: list[str] = []
        self.stopped = threading.Event()
        writer = threading.Thread(target=self._write_every, args=(interval,), daemon=True)
        writer.name = "ispyb-falcon-log-writer"
        writer.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.pending.append(self.format(record) + self.terminator)  # under the handler lock
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        self.acquire()
        try:
            lines, self.pending = self.pending, []
        finally:
            self.release()
        if lines and self.stream is not None:
            self.stream.write("".join(lines))
            self.stream.flush()

    def close(self) -> None:
        self.stopped.set()
        self.flush()
        super().close()

    def _write_every(self, interval: float) -> None:
        while not self.stopped.wait(interval):
            try:
                self.flush()
            except (OSError, ValueError):  # the stream went away (closed at exit)
                return


def configure(level: str | int, stream: TextIO | None = None) -> None:
    """Every line with its time, written in batches, whichever server runs the app."""
    handler = BatchedStreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
