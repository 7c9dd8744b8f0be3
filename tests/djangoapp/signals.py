"""Record django.tasks signals to the ledger file so tests can see what the worker sent."""

import os

from django.dispatch import receiver
from django.tasks.signals import task_finished, task_started


def _write(kind, task_result):
    path = os.environ.get("DJTASKS_SIGNAL_LEDGER")
    if path:
        with open(path, "a") as f:
            f.write(f"{kind} {task_result.id} {task_result.status} {os.getpid()}\n")


# Not connected here: a project without a task_enqueued receiver of its own is what most callers are
# (enqueue's instance-free path, calling/direct.py); test_the_three_signals_are_sent connects it.
def on_enqueued(sender, task_result, **kwargs):
    _write("enqueued", task_result)


@receiver(task_started)
def on_started(sender, task_result, **kwargs):
    _write("started", task_result)


@receiver(task_finished)
def on_finished(sender, task_result, **kwargs):
    _write("finished", task_result)
