"""A new task row: the unsaved model instance and its INSERT parameters, as the ORM builds them, cheaper.

Every enqueue builds one TaskRecord and converts its 35 values for the database. TaskRecord(...)
and field.get_db_prep_save(field.pre_save(...)) cost about 40 µs per call; most values are
defaults or plain strings and numbers, for which the result is known without asking the field.
"""

from __future__ import annotations

import datetime
import json
import operator
from functools import cache
from typing import Any, NamedTuple

from django.db import models
from django.db.models.base import ModelState
from django.db.models.signals import post_init, post_save, pre_init, pre_save
from django.dispatch.dispatcher import NO_RECEIVERS

from djtasks.core import plainjson
from djtasks.record import stamps
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
    elif kind is datetime.datetime and field.attname in _DATETIME:
        if connection.vendor == "postgresql" and value.tzinfo is not None:
            return value  # get_prep_value keeps an aware datetime, adapt_datetimefield_value returns it
        # SQLite stores naive text in the connection's zone; a UTC value in a UTC connection needs no conversion.
        if connection.vendor == "sqlite" and value.tzinfo is datetime.UTC and connection.timezone is datetime.UTC:
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


_INDEX = {f.attname: i for i, f in enumerate(_FIELDS)}
_JSON_COLUMNS = tuple(i for i, f in enumerate(_FIELDS) if f.attname in _JSON)


class _Template(NamedTuple):
    row: list[Any]  # the parameters of a row of defaults (the empty list or dict of list and dict factories)
    factories: tuple[tuple[str, int, Any], ...]  # the other callable defaults: (attname, column, factory)
    empty: dict[tuple[int, type], Any]  # the parameter of an empty list or dict, by (JSON column, type)


# Per (database kind, COPY text); built at the first call (get_default() may read the database's features).
_TEMPLATES: dict[tuple[str, bool], _Template] = {}


def _template(connection: Any, text_json: bool) -> _Template:
    key = (connection.vendor, text_json)
    found = _TEMPLATES.get(key)
    if found is None:
        constant, factories = _defaults()
        row = [_param(i, constant.get(f.attname), connection, text_json) for i, f in enumerate(_FIELDS)]
        others = []
        for name, factory in factories:
            if factory is list or factory is dict:  # always an empty one: its parameter is a constant
                row[_INDEX[name]] = _param(_INDEX[name], factory(), connection, text_json)
            else:
                others.append((name, _INDEX[name], factory))
        kinds: tuple[type, ...] = (list, dict)
        empty = {(i, kind): _param(i, kind(), connection, text_json) for i in _JSON_COLUMNS for kind in kinds}
        found = _TEMPLATES[key] = _Template(row, tuple(others), empty)
    return found


def _param(index: int, value: Any, connection: Any, text_json: bool) -> Any:
    """One value's parameter, as insert_params converts it; with text_json, a JSON adapter's text (for COPY)."""
    param = value if type(value) in _PASSING[index] else _other(index, value, connection)
    if text_json and _FIELDS[index].attname in _JSON and not isinstance(param, str | None):
        return _json_text(param, value)
    return param


def _json_text(adapted: Any, value: Any) -> Any:
    """The text COPY sends for a JSON adapter: psycopg's Jsonb dumper sends dumps(obj), Django gives the dumps."""
    obj, dumps = getattr(adapted, "obj", _INDEX), getattr(adapted, "dumps", None)
    if not callable(dumps) or obj is not value and not (type(obj) is type(value) and obj == value):
        return adapted  # not the adapter this was written for: COPY dumps it as it would
    if dumps is not json.dumps or value or type(value) not in (list, dict):  # -0.0 is falsy, but its own text
        return dumps(obj)
    key = ("text", "", type(value))  # an empty list or dict (most JSON columns): its text made once
    if key not in _EMPTY_JSON:
        _EMPTY_JSON[key] = json.dumps(type(value)())
    return _EMPTY_JSON[key]


def new_params(values: dict[str, Any], connection: Any, *, text_json: bool = False) -> list[Any]:
    """What insert_params(new_record(**values)) gives, without building the instance.

    Only for a caller that has checked nothing could see the instance (no init or save signal
    receivers of TaskRecord but djtasks' publish, rows.instance_free()). text_json: JSON
    columns as the text PostgreSQL's COPY would send for their adapters (psycopg's Jsonb is
    dumped in Python for every value; the text of an empty one is made once).
    """
    return fill(_template(connection, text_json).row.copy(), values, connection, text_json=text_json)


def fill(row: list[Any], values: dict[str, Any], connection: Any, *, text_json: bool = False) -> list[Any]:
    """Set these values in a row of new_params() (as it converts them) and its time defaults anew; return it.

    fill(new_params(a), b) is new_params(a | b), but for the callable defaults (the enqueue time),
    which are called again: a row made once per task serves each call with its own values.
    """
    template = _template(connection, text_json)
    empty = template.empty
    for name, value in values.items():
        index = _INDEX[name]
        kind = type(value)
        if kind in _PASSING[index]:
            row[index] = value
        elif not value and (kind is list or kind is dict) and (index, kind) in empty:
            row[index] = empty[index, kind]
        else:
            row[index] = _param(index, value, connection, text_json)
    for name, index, factory in template.factories:
        if name not in values:
            row[index] = _param(index, factory(), connection, text_json)
    return row


def call_columns(connection: Any) -> tuple[int, ...]:
    """The columns call_values() gives, in its order: id, root_id, args, kwargs, then the time's (enqueued_at)."""
    return (_ID_AT, _ROOT_AT, _ARGS_AT, _KWARGS_AT, *(index for _, index, _ in _template(connection, False).factories))


def call_values(row: list[Any], task_id: str, args: list[Any], kwargs: dict[str, Any], connection: Any) -> list[Any]:
    """The parameters of call_columns() for a call whose other columns are row's (new_params() of no arguments).

    What fill(row.copy(), id and root_id task_id, args, kwargs) would set there. args and kwargs
    must be check_json()'s copies (plain types, at most MAX_DEPTH deep: no cycle to detect).
    Where the database's parameter of a JSON column is json.dumps' text (SQLite's; PostgreSQL's
    COPY text), they are encoded by core/plainjson.py's dumps.
    """
    text_json = connection.vendor == "postgresql"
    if _json_is_text(connection, text_json):
        values = [task_id, task_id, plainjson.dumps(args) if args else row[_ARGS_AT]]
        values.append(plainjson.dumps(kwargs) if kwargs else row[_KWARGS_AT])
    else:
        values = [task_id, task_id]
        values += [
            _param(i, v, connection, text_json) if v else row[i] for i, v in ((_ARGS_AT, args), (_KWARGS_AT, kwargs))
        ]
    for _name, index, factory in _template(connection, text_json).factories:
        now = stamps.now_param(factory, connection)  # the enqueue time's text on SQLite, made faster
        values.append(_param(index, factory(), connection, text_json) if now is None else now)
    return values


_ID_AT, _ROOT_AT, _ARGS_AT, _KWARGS_AT = _INDEX["id"], _INDEX["root_id"], _INDEX["args"], _INDEX["kwargs"]
_JSON_TEXT: dict[tuple[str, type, bool], bool] = {}


def _json_is_text(connection: Any, text_json: bool) -> bool:
    """Whether the JSON columns' parameters on this database are json.dumps(value), as plainjson.dumps gives it."""
    key = (connection.vendor, type(connection.ops), text_json)
    if key not in _JSON_TEXT:
        sample: dict[str, Any] = {"args": [1, "é", 2.5, None, True], "kwargs": {"a": {"b": [False]}}}
        made = new_params(sample, connection, text_json=text_json)
        texts = [(made[_INDEX[name]], plainjson.dumps(value), json.dumps(value)) for name, value in sample.items()]
        _JSON_TEXT[key] = all(param == fast == slow for param, fast, slow in texts)
    return _JSON_TEXT[key]


def _no_receivers(signal: Any) -> bool:  # none connected, or the signal's cache says so (connect empties it)
    cache = signal.sender_receivers_cache
    return not signal.receivers or cache.get(TaskRecord) is NO_RECEIVERS or not signal.has_listeners(TaskRecord)


def instance_free(own_post_save: Any) -> bool:
    """Whether a new row's instance would be seen by nothing but `own_post_save` (djtasks' publish).

    True when TaskRecord has no pre_init, post_init or pre_save receivers, post_save has only that
    one, and no field's attribute or pre_save() would change a value: then new_params() writes
    what insert() of new_record() would. Reads Django's receiver lists (not public API): any
    unexpected shape means False.
    """
    if not (_DICT_SAFE and _PLAIN_PRE_SAVE and _no_receivers(pre_init) and _no_receivers(post_init)):
        return False
    if not _no_receivers(pre_save):
        return False
    cached = post_save.sender_receivers_cache.get(TaskRecord)
    if cached is not None and cached is _POST_SAVE[0] and not getattr(post_save, "_dead_receivers", True):
        return _POST_SAVE[1] is own_post_save  # the same receivers as last time: none connected or gone since
    try:
        sync, asynchronous = post_save._live_receivers(TaskRecord)
    except Exception:  # noqa: BLE001 - Django's private shape changed: take the documented path
        return False
    free = not asynchronous and len(sync) == 1 and sync[0] is own_post_save
    _POST_SAVE[:] = [post_save.sender_receivers_cache.get(TaskRecord), own_post_save if free else None]
    return free


# post_save's cached receiver list (kept, so its identity is not reused) and the own receiver if it was the only one.
_POST_SAVE: list[Any] = [None, None]
