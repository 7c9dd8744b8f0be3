"""The djtasks exception tree. Errors from Redis and the database are converted once, at the edge."""


class DjtasksError(Exception):
    """Base class of every djtasks error."""


class ImproperlyDeclared(DjtasksError, TypeError):
    """A task declaration cannot work; the message says what to change."""


class BrokerUnavailable(DjtasksError):
    """Redis could not be reached or did not answer in time."""


class MessageRejected(DjtasksError):
    """A message read from Redis is malformed; it is set aside, never run."""


class TimeoutError(DjtasksError, TimeoutError):  # noqa: A001 - Celery's name, also a builtin subclass
    """AsyncResult.get() waited longer than its timeout."""


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


class Retry(DjtasksError):
    """Raised by task.retry(): the executor records RETRY and runs the task again at `when`."""

    def __init__(self, exc: BaseException | None = None, when: object = None):
        super().__init__(f"Retry at {when}" + (f": {exc!r}" if exc is not None else ""))
        self.exc = exc
        self.when = when


class MaxRetriesExceededError(DjtasksError):
    """task.retry() was called after max_retries retries."""


class ChordError(DjtasksError):
    """A member of a chord failed, so its callback cannot run."""
