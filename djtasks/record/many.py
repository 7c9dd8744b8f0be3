"""Fenced UPDATEs of many task rows in one call: a batch's starts, a batch's outcomes (record/transitions.py).

On PostgreSQL the rows go in one UPDATE ... FROM unnest(arrays) per batch, one statement and one
round trip where an executemany sends one statement per row; elsewhere (SQLite runs
executemany in one C loop) one executemany. The values are converted by the model's fields, as
record/sql.py converts them.
"""

from __future__ import annotations

import datetime
from functools import lru_cache
from typing import Any

from django.db import connections, models

from djtasks.record.models import TaskRecord
from djtasks.record.reading import FIELDS
from djtasks.record.sql import column_params, row_params, update_statement


def update_many(using: str, assigned: tuple[str, ...], matched: tuple[str, ...], rows: list[tuple[Any, ...]]) -> int:
    """UPDATE each row's values, fenced by its own matches; return the rows changed in all.

    Each row holds the values of `assigned` then of `matched` (plain equality; a tuple value
    in a match means IN, and every row must then give a tuple of the same length). PostgreSQL:
    one UPDATE ... FROM unnest(arrays) when the IN lists are the same in every row (else one
    statement per row, in psycopg's pipeline); SQLite: one executemany, in one C loop.
    """
    if not rows:
        return 0
    connection = connections[using]
    names = (*assigned, *matched)
    if connection.vendor == "postgresql" and len(rows) > 1:
        constant = _constant_matches(assigned, matched, rows)
        if constant is not None:
            return _update_from_values(connection, assigned, matched, rows, constant)
    with connection.cursor() as cursor:
        cursor.executemany(
            update_statement(connection, assigned, matched, rows[0]),
            [row_params(names, row, connection) for row in rows],
        )
        return cursor.rowcount


# PostgreSQL: one UPDATE ... FROM unnest(arrays) for this many rows at most.
VALUES_ROWS = 500


def _constant_matches(
    assigned: tuple[str, ...], matched: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> dict[str, tuple[Any, ...]] | None:
    """The matches given as a tuple (IN), if every row gives the same one; None if some differ."""
    first = rows[0]
    constant = {
        name: value for name, value in zip(matched, first[len(assigned) :], strict=True) if isinstance(value, tuple)
    }
    offset = len(assigned)
    for row in rows:
        for index, name in enumerate(matched):
            if name in constant and row[offset + index] != constant[name]:
                return None
    return constant


def _same(a: Any, b: Any) -> bool:
    """Whether two values would be written alike: equal, of the same types (True is not 1), floats apart."""
    if type(a) is not type(b) or isinstance(a, float):
        return a is b
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a.items(), b.items(), strict=True))
    if isinstance(a, datetime.datetime):
        return a.tzinfo is b.tzinfo and a == b
    return bool(a == b)


def _unindexed(column: str, field: Any) -> str:
    """The column as an expression no index serves, so the rows are found by their plain matches (the id).

    A constant IN list (the runnable states) is a filter, never the way in: with statistics from
    before a burst was queued (most rows ended), PostgreSQL's planner took the state's index for
    it and read every queued row for each batch (9 ms for 8 outcomes with 2,000 queued; 0.3 ms
    through the primary key). Text columns only: no other column is matched by a list.
    """
    if not isinstance(field, models.CharField | models.TextField):
        return column
    return f"({column} || '')"


def _array_type(field: Any, connection: Any) -> str:
    """The SQL type of an array of the column's values: text for text columns (their length is
    checked on assignment, as an ORM update's is; an explicit cast to varchar(n) would cut it)."""
    if isinstance(field, models.CharField | models.TextField):
        return "text"
    return str(field.db_type(connection))


@lru_cache(maxsize=32)
def _values_sql(
    quote: Any,
    types: tuple[str, ...],
    assigned: tuple[str, ...],
    shared: frozenset[str],
    matched: tuple[tuple[str, int], ...],
) -> str:
    """UPDATE the table FROM unnest(arrays): shared values once, then one array per column of own values and
    plain matches; IN once. The text does not depend on the number of rows, and it takes a few parameters
    (one per array), so psycopg parses it once (its cache holds statements of at most 50)."""
    table = quote(TaskRecord._meta.db_table)
    own = [name for name in assigned if name not in shared]
    plain = [name for name, count in matched if count < 0]
    columns = {name: f"v.c{i}" for i, name in enumerate(own)}
    arrays = ", ".join(f"%s::{kind}[]" for kind in types)
    sets = ", ".join(f"{quote(FIELDS[name].column)} = {columns.get(name, '%s')}" for name in assigned)
    conditions = [f"{table}.{quote(FIELDS[name].column)} = v.c{len(own) + i}" for i, name in enumerate(plain)]
    conditions += [
        f"{_unindexed(f'{table}.{quote(FIELDS[name].column)}', FIELDS[name])} IN ({', '.join(['%s'] * count)})"
        for name, count in matched
        if count >= 0
    ]
    names = ", ".join(f"c{i}" for i in range(len(own) + len(plain)))
    return f"UPDATE {table} SET {sets} FROM unnest({arrays}) AS v ({names}) WHERE {' AND '.join(conditions)}"


def _shared(column: tuple[Any, ...]) -> bool:
    """Whether every value of a column would be written alike (the same object, or _same as the first)."""
    first = column[0]
    return all(value is first for value in column) or all(_same(value, first) for value in column[1:])


def _update_from_values(
    connection: Any,
    assigned: tuple[str, ...],
    matched: tuple[str, ...],
    rows: list[tuple[Any, ...]],
    constant: dict[str, tuple[Any, ...]],
) -> int:
    """update_many on PostgreSQL: one statement for the rows (not one per row), the same fences, the same values.

    An assigned value that every row of the statement shares is sent once, in the SET (converted
    once); every other column goes as one array of its rows' values.
    """
    shape = tuple((name, len(constant[name]) if name in constant else -1) for name in matched)
    width = len(assigned)
    plain = [width + i for i, name in enumerate(matched) if name not in constant]
    tail = row_params(tuple(constant), tuple(constant.values()), connection)
    changed = 0
    with connection.cursor() as cursor:
        for start in range(0, len(rows), VALUES_ROWS):
            chunk = rows[start : start + VALUES_ROWS]
            values = list(zip(*chunk, strict=True))  # column by column
            shared = [i for i in range(width) if _shared(values[i])]
            if len(shared) == width and not plain:  # unnest needs an array
                shared.pop()
            own = [i for i in range(width) if i not in shared] + plain
            names = tuple(assigned[i] if i < width else matched[i - width] for i in own)
            params = row_params(tuple(assigned[i] for i in shared), tuple(chunk[0][i] for i in shared), connection)
            params += [column_params(name, values[i], connection) for name, i in zip(names, own, strict=True)]
            types = tuple(_array_type(FIELDS[name], connection) for name in names)
            sql = _values_sql(connection.ops.quote_name, types, assigned, frozenset(assigned[i] for i in shared), shape)
            cursor.execute(sql, params + tail)
            changed += cursor.rowcount
    return changed
