"""Zero and partial dates: what MariaDB holds in a date column and Python's datetime cannot.

MariaDB stores `0000-00-00` and dates with a zero month or day (`2020-00-00`,
`2020-05-00`) in DATE and DATETIME columns, and `0000-00-00 00:00:00` (only
that one) in a TIMESTAMP, unless the server's sql_mode refuses them
(NO_ZERO_DATE, NO_ZERO_IN_DATE). The official ISPyB data holds them
(`BLSession.lastUpdate`), and a column default writes them
(`RobotAction.endTimestamp`).

The API carries such a value as its text in the API's own format, served and
accepted back alike (in bodies and in filters): `"0000-00-00T00:00:00"` in a
DATETIME or TIMESTAMP column, `"2020-05-00"` in a DATE column. Inside the
server it stays that text (a `str`), where real dates are `datetime` and
`date` objects. A date with a zero month or day is refused by nothing but
the database's own sql_mode; a zero year with a real month and day
(`0000-05-12`) is no such date, and is refused as other years out of range.

`StoredDate` is the column type that does this on both databases. PyMySQL
hands over the stored text when it cannot make a datetime of it, so on
MariaDB only text values need converting, and a page whose date columns hold
none is served as read (`query.statements.DriverStatement`). SQLite keeps
every date as text, which SQLAlchemy parses; a zero or partial date stays text.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa

ZERO_DATETIME = "0000-00-00T00:00:00"  # the only one a TIMESTAMP holds
_STORED = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}:\d{2})(?:\.\d*)?)?$")


def datetime_text(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> str:
    """The API text of a DATETIME with a zero month or day; ValueError if no column holds it."""
    _check_parts(mo, d)
    time = dt.time(h, mi, s)  # ValueError for 25:00
    return f"{y:04d}-{mo:02d}-{d:02d}T{time.isoformat()}"


def date_text(y: int, mo: int, d: int) -> str:
    """The API text of a DATE with a zero month or day; ValueError if no column holds it."""
    _check_parts(mo, d)
    return f"{y:04d}-{mo:02d}-{d:02d}"


def _check_parts(mo: int, d: int) -> None:
    if mo > 12:
        raise ValueError("month must be in 1..12 (00 in a zero or partial date)")
    if d > 31:
        raise ValueError("day is out of range for month")


def timestamp_text(value: dt.datetime | str) -> dt.datetime | str:
    """A TIMESTAMP holds no partial date: of the dates with a zero part, only the zero one."""
    if isinstance(value, str) and value != ZERO_DATETIME:
        raise ValueError(f"a TIMESTAMP holds no partial date, and no zero date but {ZERO_DATETIME}")
    return value


def is_zero_or_partial(text: str) -> bool:
    """Whether this date text (API or stored form) has a zero month or day."""
    m = _STORED.match(text)
    return m is not None and (m[1][5:7] == "00" or m[1][8:10] == "00")


def served_datetime(value: Any) -> Any:
    """The driver's value of a DATETIME or TIMESTAMP as the API serves it: text (a zero or
    partial date as stored, `0000-00-00 00:00:00`) in the API's format; anything else as is."""
    if value.__class__ is not str:
        return value
    m = _STORED.match(value)
    if m is None:
        return value
    return f"{m[1]}T{m[2] or '00:00:00'}"


def served_date(value: Any) -> Any:
    """The driver's value of a DATE as the API serves it (text: `2020-05-00`, as stored)."""
    if value.__class__ is not str:
        return value
    m = _STORED.match(value)
    return value if m is None else m[1]


def stored_text(value: str) -> str:
    """The text bound for a zero or partial date: MariaDB's own form (`0000-00-00 00:00:00`),
    which SQLite keeps as it is given. Other text is bound unchanged."""
    m = _STORED.match(value)
    if m is None:
        return value
    return m[1] if m[2] is None else f"{m[1]} {m[2]}"


TEXT_ONLY: frozenset[Callable[[Any], Any]] = frozenset({served_datetime, served_date})
"""Result conversions that change text values only: a row without text in those columns
passes unchanged (on MariaDB, a row without a zero or partial date)."""


class StoredDate(sa.types.TypeDecorator):
    """A DATE, DATETIME or TIMESTAMP column whose zero and partial dates are carried as text.

    It wraps the column's own type (as reflected) and keeps its conversions for real
    dates; text bypasses them both ways, where SQLite's would refuse it (binding) or fail
    on it (reading: "year 0 is out of range"). This is why `bind_processor` and
    `result_processor` are overridden rather than `process_bind_param` and
    `process_result_value`, which would pass text on to the wrapped conversions.
    """

    impl = sa.DateTime  # replaced by the column's own type in __init__
    cache_ok = True

    def __init__(self, stored: sa.types.TypeEngine) -> None:
        super().__init__()
        self.impl = stored
        self.stored = stored  # part of the type's cache key

    @property
    def with_time(self) -> bool:
        return isinstance(self.stored, sa.DateTime)  # DATETIME and TIMESTAMP; else DATE

    def bind_processor(self, dialect: sa.Dialect) -> Callable[[Any], Any]:
        store = self.impl_instance.bind_processor(dialect)

        def process(value: Any) -> Any:
            if isinstance(value, str):
                return stored_text(value)
            return value if store is None else store(value)

        return process

    def result_processor(self, dialect: sa.Dialect, coltype: Any) -> Callable[[Any], Any]:
        served = served_datetime if self.with_time else served_date
        parse = self.impl_instance.result_processor(dialect, coltype)
        if parse is None:
            return served  # the driver makes the dates; what it cannot, it hands over as text

        def process(value: Any) -> Any:
            try:
                return parse(value)
            except ValueError:  # text no datetime can hold: a zero or partial date
                return served(value)

        return process


def adapt(tables: Iterable[sa.Table]) -> None:
    """Give every date column of these reflected tables the type `StoredDate`."""
    for table in tables:
        for column in table.columns:
            if isinstance(column.type, (sa.DateTime, sa.Date)):
                column.type = StoredDate(column.type)
