"""A new task row: the unsaved model instance and its INSERT parameters, as the ORM builds them, cheaper.

Every enqueue builds one TaskRecord and converts its 35 values for the database. TaskRecord(...)
and field.get_db_prep_save(field.pre_save(...)) cost about 40 µs per call; most values are
defaults or plain strings and numbers, for which the result is known without asking the field.
"""

from __future__ import annotations

import datetime
import operator
from functools import cache
from typing import Any

from django.db import models
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init

from djtasks.record.models import TaskRecord

_FIELDS = TaskRecord._meta.concrete_fields
_ATTNAMES = frozenset(f.attname for f in _FIELDS)
# The instance may be built by writing its __dict__ only if no field's attribute is a data
# descriptor (setattr would run it); TaskRecord has none, a field added later might.
_DICT_SAFE = not any(hasattr(type(vars(TaskRecord).get(f.attname)), "__set__") for f in _FIELDS)


@cache
def _defaults() -> tuple[dict[str, Any], tuple[tuple[str, Any], ...]]:
    """(the constant defaults by attname, (attname, factory) of the callable ones), as get_default() gives them.

    Computed once, at the first call: get_default() may read the default database's features.
    """
    constant, factories = {}, []
    for field in _FIELDS:
        if field.has_default() and callable(field.default):
            factories.append((field.attname, field.default))
        else:
            constant[field.attname] = field.get_default()
    return constant, tuple(factories)


def new_record(**values: Any) -> TaskRecord:
    """Build an unsaved TaskRecord as TaskRecord(**values) would (pre_init and post_init included, if connected)."""
    if not values.keys() <= _ATTNAMES:
        raise TypeError(f"TaskRecord has no field(s) {', '.join(sorted(values.keys() - _ATTNAMES))}")
    constant, factories = _defaults()
    if not _DICT_SAFE or pre_init.has_listeners(TaskRecord) or post_init.has_listeners(TaskRecord):
        row = [values[f.attname] if f.attname in values else f.get_default() for f in _FIELDS]
        return TaskRecord(*row)  # type: ignore[misc]  # django-stubs types only keyword construction
    # What Model.__init__ does with positional values and no init signal receivers: a fresh
    # ModelState, then one attribute per field.
    record = TaskRecord.__new__(TaskRecord)
    state = record.__dict__
    state["_state"] = ModelState()
    state.update(constant)
    for attname, factory in factories:
        if attname not in values:
            state[attname] = factory()
    state.update(values)
    return record


# Values a field would pass through get_db_prep_save unchanged, by exact type: strings for text
# columns (and str subclasses, such as a TextChoices member, once seen), plain ints and bools for
# number columns, None for nullable ones. Anything else takes the field's own path.
_TEXT = (models.CharField, models.TextField)
_NUMBER = (models.IntegerField, models.BooleanField)
_PASSING: list[set[type]] = [
    {str} if isinstance(f, _TEXT) else {int, bool} if isinstance(f, _NUMBER) else set() for f in _FIELDS
]
for _passing, _field in zip(_PASSING, _FIELDS, strict=True):
    if _field.null:
        _passing.add(type(None))
_TEXT_COLUMNS = frozenset(i for i, f in enumerate(_FIELDS) if isinstance(f, _TEXT))
_READ = operator.itemgetter(*(f.attname for f in _FIELDS))
# Fields whose pre_save() does more than read the attribute (auto_now and the like): none in TaskRecord.
_PLAIN_PRE_SAVE = not any(getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False) for f in _FIELDS)
# JSON columns without a custom encoder: a plain list or dict goes straight to the backend's
# adapt_json_value, as get_db_prep_save would send it (get_prep_value only resolves lazy strings).
_JSON = frozenset(f.attname for f in _FIELDS if isinstance(f, models.JSONField) and f.encoder is None)
_DATETIME = frozenset(f.attname for f in _FIELDS if type(f) is models.DateTimeField)
_EMPTY_JSON: dict[tuple[str, str, type], Any] = {}


def prep(field: Any, value: Any, connection: Any) -> Any:
    """What field.get_db_prep_save(value, connection) gives, cheaper for the values enqueue writes."""
    kind = type(value)
    if kind is list or kind is dict:
        if field.attname in _JSON:
            if not value:  # an empty list or dict (most JSON columns): converted once per database kind
                key = (connection.vendor, field.attname, kind)
                if key not in _EMPTY_JSON:
                    _EMPTY_JSON[key] = field.get_db_prep_save(kind(), connection)
                return _EMPTY_JSON[key]
            return connection.ops.adapt_json_value(value, None)
    elif kind is datetime.datetime and field.attname in _DATETIME and connection.vendor == "sqlite":
        # SQLite stores naive text in the connection's zone; a UTC value in a UTC connection needs no conversion.
        if value.tzinfo is datetime.UTC and connection.timezone is datetime.UTC:
            return str(value.replace(tzinfo=None))
    return field.get_db_prep_save(value, connection)


def _other(index: int, value: Any, connection: Any) -> Any:
    """A value whose type does not pass through: the field's own conversion (prep)."""
    if index in _TEXT_COLUMNS and isinstance(value, str):
        # CharField.get_prep_value keeps any str (to_python returns it): pass this type from now on.
        _PASSING[index].add(type(value))
        return value
    return prep(_FIELDS[index], value, connection)


def insert_params(record: TaskRecord, connection: Any) -> list[Any]:
    """The INSERT's parameters: what get_db_prep_save(pre_save()) gives each field, in column order."""
    try:
        values = _READ(record.__dict__) if _PLAIN_PRE_SAVE else None
    except KeyError:  # a deferred field: read through its descriptor
        values = None
    if values is None:
        values = [f.pre_save(record, True) for f in _FIELDS]
    return [
        value if type(value) in passing else _other(index, value, connection)
        for index, (value, passing) in enumerate(zip(values, _PASSING, strict=True))
    ]
