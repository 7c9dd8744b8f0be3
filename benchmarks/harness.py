"""A throwaway djtasks installation for scripts: its own redis-server, a SQLite file, worker processes.

Uses the test suite's settings (tests/settings.py) with DJTASKS_DB_NAME and REDIS_URL pointing here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.redisserver import RedisServer  # noqa: E402


class Installation:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="djtasks-script-"))
        self.redis = RedisServer()
        self.workers: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Installation:
        self.redis.start()
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "REDIS_URL": self.redis.url,
            "DJTASKS_DB_NAME": str(self.dir / "db.sqlite3"),
            "PYTHONUNBUFFERED": "1",
        }
        os.environ.update(self.env)
        self.manage("migrate", "-v", "0")
        import django

        django.setup()
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.workers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.workers:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        self.redis.cleanup()

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args, "--settings=tests.settings"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
            timeout=300,
        )

    def worker(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.dir / f"worker-{len(self.workers)}.log", "wb")
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "taskworker", "--settings=tests.settings", *args],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers.append(process)
        return process
