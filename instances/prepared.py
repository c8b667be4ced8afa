"""Hot statements compiled by the ORM once, then run with fresh values.

A pick or a heartbeat is one short statement, but building it through a QuerySet (clone, resolve,
compile: ~0.3 ms per queryset, three for a round-robin pick) cost more than running it. Here the ORM
compiles each statement once per database vendor and *shape* (e.g. the number of excluded ids), with
stand-in values; a call swaps its own values in by position and reads rows straight into ``Instance``
objects with the same converters the ORM would apply. The SQL text is still the ORM's own.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connection
from django.db.models import QuerySet

from instances.models import Instance
from seedproject.db import batch_possible, fetch_not_durable

# Stand-ins for the values a call supplies. They only have to be distinguishable from every constant the
# statement carries (status names, numbers in it): namespaced UUIDs and an absurd integer.
_NAMESPACE = uuid.UUID("6f1d3f0e-5c1a-4b7e-9a53-0c8f1b2d4e77")
ORDINAL = -7_654_321_987


def stand_in_id(index: int) -> uuid.UUID:
    """The placeholder id for the ``index``-th id argument of a prepared statement."""
    return uuid.uuid5(_NAMESPACE, str(index))


def stand_in_slots(stand_ins: Sequence[uuid.UUID], *, ordinal_slot: int | None = None) -> dict[Any, int]:
    """{stand-in parameter: index of the call's value}: the id stand-ins in order, then ``ORDINAL`` if used."""
    slots: dict[Any, int] = {db_id(pk): index for index, pk in enumerate(stand_ins)}
    if ordinal_slot is not None:
        slots[ORDINAL] = ordinal_slot
    return slots


def by_position(sql: str, count: int) -> tuple[str, list[Any], dict[Any, int]]:
    """For SQL written by hand whose ``count`` parameters are all the call's values, in order."""
    slots = [object() for _ in range(count)]
    return sql, slots, {slot: index for index, slot in enumerate(slots)}


class Prepared:
    """One compiled statement: SQL text, where each call's values go, and how to read its rows."""

    def __init__(self, sql: str, params: Sequence[Any], stand_ins: dict[Any, int], columns: Sequence[Any]) -> None:
        self.sql = sql
        # For each parameter: the index of the call's value that replaces it, or None (a constant).
        self.slots = [stand_ins.get(param) if _hashable(param) else None for param in params]
        self.constants = list(params)
        self.attnames = [column.target.attname for column in columns]
        self.converters = [
            (position, connection.ops.get_db_converters(column) + column.get_db_converters(connection), column)
            for position, column in enumerate(columns)
        ]
        self.converters = [(position, convs, column) for position, convs, column in self.converters if convs]

    def params(self, values: Sequence[Any]) -> list[Any]:
        return [self.constants[i] if slot is None else values[slot] for i, slot in enumerate(self.slots)]

    def instances(self, values: Sequence[Any], *, durable: bool = True) -> list[Instance]:
        """Run with ``values`` (in stand-in order) and return the rows as Instances.

        ``durable=False``: a write whose loss in a database crash is harmless commits without waiting
        for the disk where it can (``seedproject.db.fetch_not_durable``).
        """
        if not durable and batch_possible():
            rows = fetch_not_durable(self.sql, self.params(values))
        else:
            with connection.cursor() as cursor:
                cursor.execute(self.sql, self.params(values))
                rows = cursor.fetchall()
        return [self._instance(row) for row in rows]

    def _instance(self, row: Sequence[Any]) -> Instance:
        row = list(row)
        for position, convs, column in self.converters:
            value = row[position]
            for convert in convs:
                value = convert(value, column, connection)
            row[position] = value
        return Instance.from_db(connection.alias, self.attnames, row)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def db_id(value: uuid.UUID) -> Any:
    """An id as this database takes it as a parameter (a UUID on PostgreSQL, hex text on SQLite)."""
    return Instance._meta.pk.get_db_prep_value(value, connection)


_cache: dict[tuple, Prepared] = {}
_lock = threading.Lock()


def prepared(name: str, shape: int, build: Callable[[], tuple[str, Sequence[Any], dict[Any, int]]]) -> Prepared:
    """The statement ``name`` for ``shape`` on this database, compiled by ``build`` the first time.

    ``build`` returns (sql, params, {stand-in parameter value: index of the call's value}); the rows it
    selects or returns must be the model's concrete columns in order (see ``select_columns``).
    """
    key = (connection.vendor, connection.alias, name, shape)
    statement = _cache.get(key)
    if statement is None:
        sql, params, stand_ins = build()
        statement = Prepared(sql, params, stand_ins, select_columns())
        with _lock:
            _cache[key] = statement
    return statement


def compiled(queryset: QuerySet) -> tuple[str, tuple[Any, ...]]:
    """The SQL and parameters of ``queryset`` as the ORM would run them."""
    return queryset.query.get_compiler(connection=connection).as_sql()


def select_columns() -> list[Any]:
    """The column expressions of a plain ``Instance`` select: every concrete field, in model order."""
    return [field.get_col(Instance._meta.db_table) for field in Instance._meta.concrete_fields]


def returning_list() -> str:
    """``"col", "col", ...`` for a RETURNING clause that yields what ``select_columns`` describes."""
    quote = connection.ops.quote_name
    return ", ".join(quote(field.column) for field in Instance._meta.concrete_fields)
