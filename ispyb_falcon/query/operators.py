"""Filter operators as a table of small objects: `?<column>[<op>]=<value>`.

Each operator says how to parse its value (with the column's own parser) and
which SQL it becomes. Adding one is adding a row here.
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
    build: Callable[[sa.ColumnElement, Any], sa.ColumnElement]
    many: bool = False  # the value may be a comma-separated list
    text: bool = False  # the value is raw text (not parsed to the column type)
    boolean: bool = False  # the value is true/false


OPERATORS: dict[str, Operator] = {
    op.key: op
    for op in (
        Operator(
            "eq",
            "equal to; `a,b,c` means any of them",
            lambda c, v: c.in_(v) if len(v) > 1 else c == v[0],
            many=True,
        ),
        Operator(
            "ne", "not equal to (rows where the column is NULL are excluded)", lambda c, v: c != v
        ),
        Operator("gt", "greater than", lambda c, v: c > v),
        Operator("gte", "greater than or equal to", lambda c, v: c >= v),
        Operator("lt", "less than", lambda c, v: c < v),
        Operator("lte", "less than or equal to", lambda c, v: c <= v),
        Operator(
            "like",
            "contains this text (case follows the database collation; % and _ are literal)",
            lambda c, v: sa.cast(c, sa.String).like(f"%{like_escape(v)}%", escape="\\"),
            text=True,
        ),
        Operator(
            "null",
            "`true`: the column is NULL; `false`: it is not",
            lambda c, v: c.is_(None) if v else c.is_not(None),
            boolean=True,
        ),
    )
}
