"""The QuerySet names every state: each method selects exactly the rows in it."""

import pytest

from djtasks.models import TaskRecord
from djtasks.states import FAILURE, PENDING, RETRY, REVOKED, STARTED, SUCCESS

pytestmark = [pytest.mark.django_db]


def test_each_state_method_selects_its_rows_and_unready_and_ready_split_them():
    for state in (PENDING, STARTED, RETRY, SUCCESS, FAILURE, REVOKED):
        TaskRecord.objects.create(id=state.lower(), task_name="t", state=state)
    rows = TaskRecord.objects
    selected = {
        PENDING: rows.pending(),
        STARTED: rows.started(),
        RETRY: rows.retrying(),
        SUCCESS: rows.succeeded(),
        FAILURE: rows.failed(),
        REVOKED: rows.revoked(),
    }
    for state, queryset in selected.items():
        assert list(queryset.values_list("state", flat=True)) == [state]
    assert set(rows.unready().values_list("state", flat=True)) == {PENDING, STARTED, RETRY}
    assert set(rows.ready().values_list("state", flat=True)) == {SUCCESS, FAILURE, REVOKED}
