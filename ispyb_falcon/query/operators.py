"""Filter operators as a table of small objects: `?<column>[<op>]=<value>`.

Each operator says how its value is read (with the column's own parser, as
text, or as true/false), how the value is bound, and which SQL it becomes.
Adding one is adding a row here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa


def like_escape(text: str) -> str:
    """`%` and `_` are taken literally: a [like] filter is a plain substring match."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class Operator:
    key: str
    doc: str
    build: Callable[[sa.ColumnElement, Any], sa.ColumnElement]  # (column, bind or flag)
    many: bool = False  # the value may be a comma-separated list (one bind per value)
    text: bool = False  # the value is raw text (not parsed to the column type)
    boolean: bool = False  # the value is true/false and shapes the SQL (not bound)
    prepare: Callable[[Any], Any] = staticmethod(lambda value: value)  # value -> bound value


OPERATORS: dict[str, Operator] = {
    op.key: op
    for op in (
        Operator(
            "eq",
            "equal to; `a,b,c` means any of them",
            lambda c, b: c.in_(b) if isinstance(b, list) else c == b,
            many=True,
        ),
        Operator(
            "ne", "not equal to (rows where the column is NULL are excluded)", lambda c, b: c != b
        ),
        Operator("gt", "greater than", lambda c, b: c > b),
        Operator("gte", "greater than or equal to", lambda c, b: c >= b),
        Operator("lt", "less than", lambda c, b: c < b),
        Operator("lte", "less than or equal to", lambda c, b: c <= b),
        Operator(
            "like",
            "contains this text (case follows the database collation; % and _ are literal)",
            lambda c, b: sa.cast(c, sa.String).like(b, escape="\\"),
            text=True,
            prepare=lambda value: f"%{like_escape(value)}%",
        ),
        Operator(
            "null",
            "`true`: the column is NULL; `false`: it is not",
            lambda c, flag: c.is_(None) if flag else c.is_not(None),
            boolean=True,
        ),
    )
}

NEVER = Operator("never", "matches no row", lambda c, flag: sa.false(), boolean=True)
