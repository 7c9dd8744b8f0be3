"""The djtasks exception tree. Errors from Redis and the database are converted once, at the edge."""

import builtins


class DjtasksError(Exception):
    """Base class of every djtasks error."""


class ImproperlyDeclared(DjtasksError, TypeError):
    """A task declaration cannot work; the message says what to change."""


class InvalidCall(ImproperlyDeclared, ValueError):
    """A call's arguments, headers or options cannot be stored as given; the message names which. Nothing was enqueued.

    A TypeError and a ValueError both, as the errors it replaces were (so ``except TypeError`` still works).
    """


class BrokerUnavailable(DjtasksError):
    """Redis could not be reached or did not answer in time."""


class MessageRejected(DjtasksError):
    """A message read from Redis is malformed; it is set aside, never run."""


class ResultTimeout(DjtasksError, builtins.TimeoutError):
    """AsyncResult.get() waited longer than its timeout (exported as djtasks.TimeoutError, Celery's name)."""


TimeoutError = ResultTimeout  # noqa: A001 - Celery's name; still an instance of the builtin TimeoutError


class TaskFailed(DjtasksError):
    """A task failed and its exception class cannot be rebuilt in this process.

    It carries the remote class path, message and traceback as text.
    """

    def __init__(self, exc_type: str, message: str, traceback: str = ""):
        super().__init__(f"{exc_type}: {message}" if message else exc_type)
        self.exc_type = exc_type
        self.message = message
        self.remote_traceback = traceback


class TaskRevoked(DjtasksError):
    """The task was revoked before it finished."""


class NotRegistered(DjtasksError, KeyError):
    """No task of that name is registered in this process."""


class SoftTimeLimitExceeded(DjtasksError):
    """Raised inside a task that ran past its soft time limit; it may clean up and return."""


class TimeLimitExceeded(DjtasksError):
    """A task ran past its hard time limit; its child process was killed and replaced."""


class WriteRefused(DjtasksError):
    """The database refused a write because of the data in it (not an outage); the attempt ended there."""


class WorkerLost(DjtasksError):
    """The process running a task died before the task finished."""


class Terminated(DjtasksError):
    """A running task was revoked with terminate=True; its child process was killed."""


class Retry(DjtasksError):
    """Raised by task.retry(): the executor records RETRY and runs the task again at ``when``."""

    def __init__(self, exc: BaseException | None = None, when: object = None):
        super().__init__(f"Retry at {when}" + (f": {exc!r}" if exc is not None else ""))
        self.exc = exc
        self.when = when


class MaxRetriesExceededError(DjtasksError):
    """task.retry() was called after max_retries retries."""


class ChordError(DjtasksError):
    """A member of a chord failed, so its callback cannot run."""


# Rows store an exception's class path, and users import these from djtasks.exceptions: that is
# their public module, whatever module defines them.
PUBLIC_MODULE = "djtasks.exceptions"
for _class in list(globals().values()):
    if isinstance(_class, type) and issubclass(_class, DjtasksError):
        _class.__module__ = PUBLIC_MODULE
del _class
