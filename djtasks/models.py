"""The app's models, as Django looks for them: the task record and the periodic tasks.

The code lives in djtasks.record.models and djtasks.periodic.models; this module is the place
Django (and `from djtasks.models import TaskRecord`) finds them.
"""

from djtasks.periodic.models import PeriodicRun, PeriodicTask, Source
from djtasks.record.models import Chord, Dashboard, DeadLetter, GroupRecord, TaskRecord, TaskRecordQuerySet
from djtasks.record.steering import DeadTask, Fleet, RetryingTask

__all__ = [
    "Chord",
    "Dashboard",
    "DeadLetter",
    "DeadTask",
    "Fleet",
    "GroupRecord",
    "PeriodicRun",
    "PeriodicTask",
    "RetryingTask",
    "Source",
    "TaskRecord",
    "TaskRecordQuerySet",
]
