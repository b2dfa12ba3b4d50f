"""Hot queries written by the ORM once per process, then run with new parameter values.

Building a query's SQL through the ORM costs several times what the database then takes to
run it: about 0.3 to 0.6 ms of CPU for a job by its id, most of a claim's or a result's
own work. The few queries every claim and result runs are written as ordinary querysets
over their parameters (ids and times), compiled the first time for the connection's
database, and then run as that SQL with the new values. Their rows become what iterating
the queryset gives: ``values_list`` tuples, through the same converters. (Model
instances, where a caller needs them, come from those with ``Model.from_db``.)

A queryset that does not fit (a parameter used in a way that changes it, annotations)
is refused when it is first compiled, so a test of the code using it finds out.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar, cast

from django.db import connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import CharField, Field, QuerySet, Value
from django.db.models.query import ValuesListIterable
from django.db.models.sql import UpdateQuery

T = TypeVar("T", bound=tuple[Any, ...])
Param = int | str | datetime.datetime
# A parameter's kind: a type above, or the model field whose column an update sets to it.
Kind: TypeAlias = "type[Param] | Field[Any, Any]"

# Values nobody passes, found in the compiled parameters to know where each argument goes.
# Ids within the range of every integer field but the smallest: PostgreSQL's backend drops
# a comparison with a value out of a field's range from the SQL.
_INT_MARKERS = tuple(2**31 - 1 - number for number in range(16))
_STR_MARKERS = tuple(f"\x00prepared-{number}" for number in range(16))
_TIME_MARKERS = tuple(
    datetime.datetime(1901, 2, 3, 4, 5, 6, number + 1, tzinfo=datetime.UTC) for number in range(16)
)


def _adapt(value: Param, connection: BaseDatabaseWrapper) -> Any:
    """A parameter as the ORM hands it to the database driver."""
    if isinstance(value, datetime.datetime):
        return connection.ops.adapt_datetimefield_value(value)
    return value


def _preparer(kind: Kind) -> Callable[[Any, BaseDatabaseWrapper], Any]:
    """How a parameter of ``kind`` goes to the driver: as a field prepares a value it saves."""
    return kind.get_db_prep_save if isinstance(kind, Field) else _adapt


def _found(marker: Any, connection: BaseDatabaseWrapper) -> Any:
    """What a marker is among the compiled parameters."""
    return marker.value if isinstance(marker, Value) else _adapt(marker, connection)


@dataclass(frozen=True)
class _Compiled:
    """One queryset's SQL for one database, and how to turn its rows into results."""

    sql: str
    constants: tuple[Any, ...]  # the compiled parameters, markers included
    slots: tuple[tuple[int, int], ...]  # (position in the parameters, argument number)
    converters: tuple[tuple[int, tuple[Callable[..., Any], ...], Any], ...]
    prepare: tuple[Callable[[Any, BaseDatabaseWrapper], Any], ...]  # one per argument

    def params(self, values: Sequence[Any], connection: BaseDatabaseWrapper) -> list[Any]:
        params = list(self.constants)
        for position, argument in self.slots:
            params[position] = self.prepare[argument](values[argument], connection)
        return params

    def convert(self, row: Sequence[Any], connection: BaseDatabaseWrapper) -> tuple[Any, ...]:
        if not self.converters:
            return tuple(row)
        converted = list(row)
        for position, functions, expression in self.converters:
            value = converted[position]
            for function in functions:
                value = function(value, expression, connection)
            converted[position] = value
        return tuple(converted)


def _slots(
    sql: str, constants: Sequence[Any], markers: Sequence[Any], connection: BaseDatabaseWrapper
) -> tuple[tuple[int, int], ...]:
    """Where each marker went in the compiled parameters; refused if one is not found."""
    adapted = [_found(marker, connection) for marker in markers]
    slots = tuple(
        (position, adapted.index(value))
        for position, value in enumerate(constants)
        if any(value == marker and type(value) is type(marker) for marker in adapted)
    )
    if sorted({argument for _, argument in slots}) != list(range(len(markers))):
        raise ValueError(
            f"a prepared queryset must pass each parameter to the database as given: {sql}"
        )
    return slots


def _compile(queryset: QuerySet[Any], markers: Sequence[Any], kinds: Sequence[Kind]) -> _Compiled:
    if queryset._iterable_class is not ValuesListIterable or queryset.query.annotation_select:
        raise ValueError("a prepared queryset is a values_list() of fields, without annotations")
    compiler = queryset.query.get_compiler(using=queryset.db)
    sql, constants = compiler.as_sql()
    slots = _slots(sql, constants, markers, connections[queryset.db])
    columns = [column[0] for column in compiler.select[: compiler.col_count]]
    converters = tuple(
        (position, tuple(functions), expression)
        for position, (functions, expression) in compiler.get_converters(columns).items()
    )
    return _Compiled(sql, tuple(constants), slots, converters, tuple(map(_preparer, kinds)))


def _compile_update(
    queryset: QuerySet[Any], values: dict[str, Any], markers: Sequence[Any], kinds: Sequence[Kind]
) -> _Compiled:
    """The SQL of ``queryset.update(**values)``, built as ``QuerySet.update`` builds it."""
    query = cast(UpdateQuery, queryset.query.chain(UpdateQuery))
    query.add_update_values(values)
    query.annotations = {}
    sql, constants = query.get_compiler(using=queryset.db).as_sql()
    slots = _slots(sql, constants, markers, connections[queryset.db])
    return _Compiled(sql, tuple(constants), slots, (), tuple(map(_preparer, kinds)))


def _markers(kinds: Sequence[Kind]) -> tuple[Any, ...]:
    """A marker per parameter; a column's is a string, as an expression the ORM leaves as is."""
    pools: dict[type[Param], Iterator[Param]] = {
        int: iter(_INT_MARKERS),
        str: iter(_STR_MARKERS),
        datetime.datetime: iter(_TIME_MARKERS),
    }
    markers: list[Any] = []
    for kind in kinds:
        if isinstance(kind, Field):
            markers.append(Value(next(pools[str]), output_field=CharField()))
        else:
            markers.append(next(pools[kind]))
    return tuple(markers)


class Prepared(Generic[T]):
    """``build(*parameters)``'s ``values_list`` queryset, compiled once and run as SQL.

    ``kinds`` are the types of ``build``'s arguments: ids (``int``) and aware times
    (``datetime``), as in ``Prepared(lambda pk: Job.objects.filter(pk=pk).values_list(
    "status"), int)``.
    """

    def __init__(self, build: Callable[..., QuerySet[Any, T]], *kinds: type[Param]) -> None:
        self._build = build
        self._kinds = kinds
        self._markers = _markers(kinds)
        self._compiled: _Compiled | None = None
        self._alias = ""

    @property
    def alias(self) -> str:
        """The database the query runs on (once it has run)."""
        return self._alias

    def rows(self, *values: Param) -> Iterator[T]:
        """The queryset's rows for ``values``, as ``values_list`` gives them."""
        compiled = self._compiled
        if compiled is None:  # two threads may both compile: either result will do
            queryset = self._build(*self._markers)
            compiled = _compile(queryset, self._markers, self._kinds)
            self._alias, self._compiled = queryset.db, compiled
        connection = connections[self._alias]
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, compiled.params(values, connection))
            fetched = cursor.fetchall()
        return (cast(T, compiled.convert(row, connection)) for row in fetched)

    def first(self, *values: Param) -> T | None:
        """The first result for ``values``, or ``None``."""
        return next(self.rows(*values), None)


class PreparedUpdate:
    """``queryset.update(**values)`` from ``build(*parameters)``, compiled once and run as SQL.

    ``build`` returns the queryset and the values; the parameters are as for
    :class:`Prepared`, plus strings (``str``), plus values of any type set to a column:
    their kind is the model field, which prepares them as it does for ``update`` (JSON,
    numbers; ``None`` is SQL ``NULL``). Like ``QuerySet.update``, it answers the number
    of rows changed and sends no signals.
    """

    def __init__(
        self, build: Callable[..., tuple[QuerySet[Any], dict[str, Any]]], *kinds: Kind
    ) -> None:
        self._build = build
        self._kinds = kinds
        self._markers = _markers(kinds)
        self._compiled: _Compiled | None = None
        self._alias = ""

    def run(self, *values: Any) -> int:
        """Update the rows for ``values``; how many were changed."""
        compiled = self._compiled
        if compiled is None:  # two threads may both compile: either result will do
            queryset, changes = self._build(*self._markers)
            alias = router.db_for_write(queryset.model)  # where QuerySet.update would write
            compiled = _compile_update(queryset.using(alias), changes, self._markers, self._kinds)
            self._alias, self._compiled = alias, compiled
        connection = connections[self._alias]
        rollback_on_error = transaction.mark_for_rollback_on_error(using=self._alias)
        with rollback_on_error, connection.cursor() as cursor:
            cursor.execute(compiled.sql, compiled.params(values, connection))
            return int(cursor.rowcount)
