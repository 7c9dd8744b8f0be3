"""Testing your tasks: eager mode as a context manager, eager(), and a pytest fixture, djtasks_eager.

In eager mode delay() and apply_async() write the row as always and run the task in the test's
process when the caller's transaction commits (at once outside one; a Django TestCase's own
transaction counts as committed), recording its outcome on the row as a worker would. Nothing is
published: no Redis server and no worker are needed. The same test code runs against a real
worker unchanged (result.get() returns the same value, the row holds the same outcome).

    from djtasks.testing import eager

    def test_signup_sends_mail(db):
        with eager():
            response = client.post("/signup/", {...})   # the view calls send_welcome.delay(...)
        assert TaskRecord.objects.get(task_name="accounts.tasks.send_welcome").state == "SUCCESS"

With pytest, `pytest_plugins = ["djtasks.testing"]` in conftest.py (or importing djtasks_eager
there) gives the fixture: `def test_it(djtasks_eager): ...`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.test import override_settings

__all__ = ["djtasks_eager", "eager"]


@contextmanager
def eager(*, propagate: bool = True) -> Iterator[None]:
    """Run tasks eagerly inside the block; with propagate (the default here) a task's error is raised to the caller."""
    changed = {**getattr(settings, "DJTASKS", {}), "TASK_ALWAYS_EAGER": True, "TASK_EAGER_PROPAGATES": propagate}
    with override_settings(DJTASKS=changed):
        yield


try:
    import pytest
except ImportError:  # pragma: no cover - eager() works without pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def djtasks_eager() -> Iterator[None]:
        """Eager mode for one test: delay() runs the task at once (or on commit) and errors propagate."""
        with eager():
            yield

else:  # pragma: no cover

    def djtasks_eager() -> Any:
        raise RuntimeError("djtasks_eager is a pytest fixture: install pytest, or use djtasks.testing.eager().")
