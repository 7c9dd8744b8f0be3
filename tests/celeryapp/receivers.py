"""Receivers of every Celery signal: each writes one JSON line to $DJTASKS_CELERY_SIGNALS, if set.

Set in worker subprocesses (and in the test process) by the signal tests; elsewhere they return
at once. $DJTASKS_CELERY_SIGNALS_RAISE names signals whose receiver then raises after writing.
"""

import json
import os

from djtasks import signals


def _shown(value):
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_shown(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _shown(v) for k, v in value.items()}
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    return type(value).__name__


def _write(signal, sender, **named):
    path = os.environ.get("DJTASKS_CELERY_SIGNALS")
    if not path:
        return
    request = named.pop("request", None)
    if request is not None:
        named["request"] = {"id": request.id, "task": request.task, "args": request.args, "retries": request.retries}
    for key in ("task", "einfo"):
        if key in named:
            named[key] = type(named[key]).__name__
    line = {
        "signal": signal.name,
        "sender": getattr(sender, "registered_name", None)
        or (sender if isinstance(sender, str) else type(sender).__name__),
        "pid": os.getpid(),
        **{key: _shown(value) for key, value in named.items() if key != "signal"},
    }
    with open(path, "a") as f:
        f.write(json.dumps(line, sort_keys=True) + "\n")
    if signal.name in os.environ.get("DJTASKS_CELERY_SIGNALS_RAISE", "").split(","):
        raise RuntimeError(f"receiver of {signal.name} fails on purpose")


def _connect(sig):
    def receiver(sender=None, signal=None, **named):
        _write(sig, sender, **named)

    receiver.__qualname__ = f"record_{sig.name}"
    sig.connect(receiver, weak=False, dispatch_uid=f"tests.celeryapp.{sig.name}")


# Connected only while a test reads them (tests/worker/test_signals.py's `heard`): a project with no
# publish receivers takes enqueue's instance-free path (calling/direct.py), which the suite must cover.
PUBLISH_SIGNALS = ("before_task_publish", "after_task_publish")


def connect_publish_receivers():
    for name in PUBLISH_SIGNALS:
        _connect(getattr(signals, name))


def disconnect_publish_receivers():
    for name in PUBLISH_SIGNALS:
        getattr(signals, name).disconnect(dispatch_uid=f"tests.celeryapp.{name}")


for _name in signals.__all__:
    if _name != "CelerySignal" and _name not in PUBLISH_SIGNALS:
        _connect(getattr(signals, _name))
