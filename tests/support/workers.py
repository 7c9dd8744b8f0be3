"""Start `manage.py taskworker` as a real subprocess against the test database and Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.db import connection

from djtasks.core.conf import get_settings
from djtasks.worker.naming import node_name

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    def __init__(
        self,
        redis_url: str,
        log_dir: Path,
        *args: str,
        env: dict[str, str] | None = None,
        prefix: list[str] | None = None,
    ):
        # prefix: a command to run the worker under (ip netns exec <host>, for tests/support/hosts.py).
        self.prefix = prefix or []
        self.log_path = log_dir / f"worker-{time.monotonic_ns()}.log"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "REDIS_URL": redis_url,
            "DJTASKS_DB_NAME": str(connection.settings_dict["NAME"]),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.args = ["-c", "2", *args] if "-c" not in args else list(args)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [
                *self.prefix,
                sys.executable,
                str(ROOT / "manage.py"),
                "taskworker",
                "--settings=tests.settings",
                *self.args,
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    @property
    def name(self) -> str:
        """The worker's name, as its -n (or WORKER_NAME) gives it on this host."""
        for flag in ("-n", "--hostname"):
            if flag in self.args:
                return node_name(self.args[self.args.index(flag) + 1])
        return node_name(get_settings().WORKER_NAME)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def children(self) -> list[int]:
        import psutil

        return [c.pid for c in psutil.Process(self.pid).children()]

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self, timeout: float = 20) -> int | None:
        """Warm-stop the worker; kill its whole process group if it does not exit in time."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        return self.kill()

    def kill(self) -> int | None:
        """SIGKILL the worker's whole process group (parent and children) and reap the parent."""
        if self.process is None:
            return None
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        code = self.process.wait(timeout=10)
        self._log.close()
        return code
