"""What the database refuses during a write, said in the API's terms: a 409 or a 422, never a 500.

The body's checks run first and catch nearly everything; what still reaches
the database is a unique key another row holds, a foreign key whose row was
deleted since it was checked, a delete that rows still refer to, or a value
only the database knows it cannot store.

A unique key may clash with a row the caller may not see (a dewar's barcode
is unique across every proposal). The 409 then says which of the body's
unique keys is taken, in the same words whichever row holds it, and never
quotes the database, whose message names the other row's value and key.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from sqlalchemy import exc as sa_exc

from .. import zero_dates
from ..catalog.store import TableSchema
from ..errors import ApiError, conflict, database_error, is_connection_error, unprocessable

# MariaDB errors that refuse a value rather than signal an outage: CHECK constraint
# (e.g. json_valid on `extra` columns), out of range, truncated, bad string for the charset.
# 1978: a column's default the sql_mode refuses (a zero date, with NO_ZERO_DATE).
REFUSALS = {4025, 3819, 1264, 1265, 1292, 1366, 1406, 1978}
DUPLICATE, REFERENCED, MISSING_PARENT = 1062, 1451, 1452
INCORRECT_VALUE, INCORRECT_DEFAULT = 1292, 1978
SQLITE_UNIQUE = "UNIQUE constraint failed: "  # then Table.column, Table.column
SQLITE_FOREIGN_KEY = "FOREIGN KEY constraint failed"  # SQLite says no more, either way
_MARIADB_KEY = re.compile(r"for key '(?:[^'.]*\.)?([^'.]+)'")  # 'barCode' or 'Dewar.barCode'
_FOREIGN_KEY_COLUMN = re.compile(r"FOREIGN KEY \(`([^`]+)`\)")
# Which column a value refusal names ('name', or `db`.`Table`.`name`), and what it
# means, said without quoting the database (its text names the database and table).
_REFUSED_COLUMN = re.compile(r"for column (?:`[^`]*`\.)*[`']([^`']+)[`']")
_CHECK = re.compile(r"CONSTRAINT [`']([^`']+)[`'] failed")
_REFUSED = {
    1406: "too long for the database's column",
    1264: "out of the range of the database's column",
    1265: "truncated by the database's column",
    1292: "not a value the database's column accepts",
    1366: "holds characters the database's column cannot store",
    4025: "fails the database's check on this column",
    3819: "fails the database's check on this column",
}
# "Incorrect datetime value: '0000-00-00 00:00:00' for column `db`.`T`.`c` at row 1" (1292),
# "Incorrect default value '0000-00-00 00:00:00' for column 'c'" (1978)
_INCORRECT = re.compile(
    r"Incorrect (\w+) value:? '([^']*)' for column (?:`[^`]*`\.)*[`']([^`']+)[`']"
)
TAKEN = "already taken by another row (which may be one you cannot see)"


@contextlib.contextmanager
def database_refusals(
    schema: TableSchema, where: str = "$", *, deleting: bool = False
) -> Iterator[None]:
    """Around a write of the body at `where`: a refusal becomes a 409 or a 422."""
    try:
        yield
    except (sa_exc.IntegrityError, sa_exc.DataError) as exc:
        raise refusal(exc, schema, where, deleting=deleting) from None
    except sa_exc.OperationalError as exc:
        if is_connection_error(exc) or database_error(exc)[0] not in REFUSALS:
            raise
        raise refusal(exc, schema, where, deleting=deleting) from None


def refusal(exc: sa_exc.DBAPIError, schema: TableSchema, where: str, *, deleting: bool) -> ApiError:
    """What the database refused, said in the API's terms.

    A foreign key the body's checks found can still fail at the database: its
    row was deleted between the check and the write (a 422, as if it had never
    existed). Refusing a delete because rows refer to it is a 409.
    """
    orig = getattr(exc, "orig", None)
    code = database_error(exc)[0]
    text = str(orig) if orig is not None else str(exc)
    if code == DUPLICATE or SQLITE_UNIQUE in text:
        return unique_clash(text, schema, where)
    if code == REFERENCED or (deleting and SQLITE_FOREIGN_KEY in text):
        return conflict("Other rows refer to this row.")
    if code == MISSING_PARENT or SQLITE_FOREIGN_KEY in text:
        column = _FOREIGN_KEY_COLUMN.search(text)
        return unprocessable(
            "The request body names rows that cannot be used.",
            [
                {
                    "path": f"{where}.{column[1]}" if column else where,
                    "message": "names a row that does not exist (any more)",
                }
            ],
        )
    incorrect = _INCORRECT.search(text) if code in (INCORRECT_VALUE, INCORRECT_DEFAULT) else None
    if incorrect and incorrect[3] in schema.columns:
        kind, stored, column = incorrect.groups()
        return unprocessable(
            "The database refused the values.",
            [{"path": f"{where}.{column}", "message": _incorrect(stored, kind == "default")}],
        )
    column = _REFUSED_COLUMN.search(text) or _CHECK.search(text)
    name = column[1].rsplit(".", 1)[-1] if column else None
    path = f"{where}.{name}" if name and name in schema.columns else where
    return unprocessable(
        "The database refused the values.",
        [{"path": path, "message": _REFUSED.get(code, "the database cannot store this value")}],
    )


def _incorrect(stored: str, default: bool) -> str:
    """Why a value was refused: a zero or partial date the server's sql_mode does not take
    (given, or the column's default), said as the API writes it; or a value the column's
    type cannot hold."""
    served = zero_dates.served_datetime(stored) if len(stored) > 10 else stored
    if not zero_dates.is_zero_or_partial(served):
        return f"{served!r}: the database cannot store this value in this column"
    refused = (
        "this database does not store zero or partial dates "
        "(its sql_mode has NO_ZERO_DATE or NO_ZERO_IN_DATE)"
    )
    if default:
        return f"the column's default {served!r} is a zero date and {refused}: give a value"
    return f"{served!r}: {refused}"


def unique_clash(text: str, schema: TableSchema, where: str) -> ApiError:
    """409 naming the body's clashing unique key from the table's own schema, nothing else."""
    columns = clashing_columns(text, schema)
    if len(columns) == 1:
        errors = [{"path": f"{where}.{columns[0]}", "message": TAKEN}]
    elif columns:
        errors = [{"path": where, "message": f"({', '.join(columns)}) is {TAKEN}"}]
    else:
        errors = [{"path": where, "message": f"a unique key is {TAKEN}"}]
    return conflict("A row with the same unique key already exists.", errors=errors)


def clashing_columns(text: str, schema: TableSchema) -> list[str]:
    """The columns of the unique key the database names in its message (MariaDB names the
    index, SQLite its columns); [] if the message is not understood."""
    if SQLITE_UNIQUE in text:
        named = text.split(SQLITE_UNIQUE, 1)[1].split("\n")[0].split(", ")
        columns = [c.rsplit(".", 1)[-1].strip() for c in named]
        return columns if all(c in schema.columns for c in columns) else []
    key = _MARIADB_KEY.search(text)
    if key is None:
        return []
    if key[1] == "PRIMARY":
        return list(schema.primary_key)
    for index in schema.x.get("indexes", []):
        if index["name"] == key[1] and index["unique"]:
            return list(index["columns"])
    return []
