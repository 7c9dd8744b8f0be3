"""GroupResult persisted and restorable (save, restore), revoked and forgotten as a whole; eager workflows."""

import json
import os
import subprocess
import sys

import pytest
from django.db import connection

from djtasks import GroupResult, chain, chord, group
from djtasks.models import GroupRecord, TaskRecord
from tests.celeryapp.tasks import add, mul, xsum
from tests.support.workers import ROOT

pytestmark = [pytest.mark.django_db(transaction=True)]
T = 60


def restore_elsewhere(group_id: str) -> object:
    """Restore and wait on a group in a new Python process, as another web or shell process would."""
    code = (
        f"import json; from djtasks import GroupResult; r = GroupResult.restore({group_id!r}); "
        "print(json.dumps(None if r is None else r.get(timeout=30)))"
    )
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings", "DJTASKS_DB_NAME": str(connection.settings_dict["NAME"])}
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "shell", "-c", code],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_saved_group_is_restored_in_another_process(worker):
    worker()
    res = group(add.s(1, 1), chain(add.s(1, 1), group(add.s(1), add.s(2))))()
    assert res.save() is res
    assert restore_elsewhere(res.id) == [2, [3, 4]]
    restored = GroupResult.restore(res.id)
    assert isinstance(restored.results[1], GroupResult)
    assert [r.id for r in restored.leaves()] == [r.id for r in res.leaves()]
    assert restored.results[1].results[0].parent.id == res.results[1].results[0].parent.id
    assert GroupResult.restore("never-saved") is None
    assert res.save() is res and GroupRecord.objects.count() == 1  # saving again replaces it


def test_revoke_stops_every_member_and_forget_removes_what_finished(redis_server):
    waiting = group(add.s(i, i).set(countdown=60) for i in range(3))()
    waiting.save()
    assert waiting.revoke() == ["revoked"] * 3
    assert {r.state for r in waiting.results} == {"REVOKED"} and waiting.ready() and not waiting.successful()
    waiting.forget()
    assert GroupResult.restore(waiting.id) is None
    assert not TaskRecord.objects.filter(pk__in=[r.id for r in waiting.results]).exists()
    unfinished = group(add.s(1, 1), add.s(2, 2))()
    unfinished.save()
    unfinished.forget()
    assert GroupResult.restore(unfinished.id) is None
    assert TaskRecord.objects.filter(pk__in=[r.id for r in unfinished.results], state="PENDING").count() == 2


def test_apply_runs_a_workflow_here_and_now():
    assert add.s(2, 2).apply().get() == 4
    res = chain(add.s(4, 4), mul.s(8), mul.s(10)).apply()
    assert res.get() == 640 and res.parent.get() == 64 and res.parent.parent.get() == 8
    eager = group(add.s(i, i) for i in range(3)).apply()
    assert eager.get() == [0, 2, 4] and eager.ready() and eager.successful() and eager.completed_count() == 3
    assert chord([add.s(i, i) for i in range(3)], xsum.s()).apply().get() == 6
    assert TaskRecord.objects.count() == 0
