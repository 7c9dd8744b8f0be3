"""mypy sees a task's signature: wrong calls of delay(), si(), apply() and of the task inline are errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = """\
from typing import Any

from djtasks import AsyncResult, task


@task
def add(x: int, y: int) -> int:
    return x + y


@task(bind=True)
def bound(self: Any, n: int) -> str:
    return str(n)


@task(takes_context=True)
def with_context(context: Any, n: int) -> int:
    return n


@task(name="typed.named", queue="q", max_retries=1)
def named(s: str) -> list[str]:
    return [s]


result: AsyncResult[int] = add.delay(1, 2)
value: int = result.get(timeout=1)
inline: int = add(1, 2)
partial = add.s(1)
immutable = add.si(1, 2)
text: str = bound.delay(3).get()
counted: int = with_context.delay(3).get()
listed: list[str] = named("x")
eagerly: int = add.apply((1, 2)).get()
later: int = add.apply_async((1, 2), countdown=1).get()

add.delay("a", "b", "c")  # line 37
add(1)
wrong: str = add.delay(1, 2).get()
add.si("a", 2)
bound.delay("x")
with_context.delay()
"""
EXPECTED = [
    'example.py:37: error: Too many arguments for "delay" of "Task"  [call-arg]',
    'example.py:37: error: Argument 1 to "delay" of "Task" has incompatible type "str"; expected "int"  [arg-type]',
    'example.py:37: error: Argument 2 to "delay" of "Task" has incompatible type "str"; expected "int"  [arg-type]',
    'example.py:38: error: Missing positional argument "y" in call to "__call__" of "Task"  [call-arg]',
    'example.py:39: error: Incompatible types in assignment (expression has type "int", variable has type "str")'
    "  [assignment]",
    'example.py:40: error: Argument 1 to "si" of "Task" has incompatible type "str"; expected "int"  [arg-type]',
    'example.py:41: error: Argument 1 to "delay" of "Task" has incompatible type "str"; expected "int"  [arg-type]',
    'example.py:42: error: Missing positional argument "n" in call to "delay" of "Task"  [call-arg]',
]


def test_mypy_checks_calls_against_the_task_s_signature(tmp_path):
    example = tmp_path / "example.py"
    example.write_text(EXAMPLE)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "--no-pretty", str(example)],
        cwd=ROOT,
        env={**os.environ, "MYPYPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    errors = [
        re.sub(r"^.*example\.py:", "example.py:", line) for line in done.stdout.splitlines() if ": error:" in line
    ]
    assert errors == EXPECTED, done.stdout + done.stderr
    assert done.returncode == 1
