"""Log lines written in batches (ispyb_falcon/logs.py): none lost, none reordered, all timed."""

from __future__ import annotations

import io
import logging
import re
import threading
import time

from ispyb_falcon.logs import FORMAT, BatchedStreamHandler


def _logger(stream: io.StringIO, interval: float) -> tuple[logging.Logger, BatchedStreamHandler]:
    handler = BatchedStreamHandler(stream, interval=interval)
    handler.setFormatter(logging.Formatter(FORMAT))
    log = logging.getLogger(f"test.logs.{id(stream)}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    return log, handler


def test_lines_reach_the_stream_within_the_interval_with_their_time():
    stream = io.StringIO()
    log, handler = _logger(stream, interval=0.05)
    try:
        log.info("one request")
        assert stream.getvalue() == ""  # not written by the request's thread
        deadline = time.monotonic() + 5
        while not stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert re.match(
            r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO test\.logs\.\d+ one request\n$",
            stream.getvalue(),
        )
    finally:
        handler.close()


def test_many_threads_lose_no_line_and_keep_each_threads_order():
    stream = io.StringIO()
    log, handler = _logger(stream, interval=0.01)

    def write(n: int) -> None:
        for i in range(2000):
            log.info("t%d %d", n, i)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    handler.close()  # what logging.shutdown does at exit: the rest is written
    lines = stream.getvalue().splitlines()
    assert len(lines) == 8 * 2000
    for n in range(8):
        mine = [int(line.rsplit(" ", 1)[1]) for line in lines if f" t{n} " in line]
        assert mine == list(range(2000))
