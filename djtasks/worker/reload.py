"""--reload: restart the worker when its code changes, with Django's autoreloader (development only).

The command's process watches nothing itself: it runs the worker in a child process (Django's
get_child_arguments, DJANGO_AUTORELOAD_ENV set) and starts it again whenever it exits with code 3.
In that child, Django's reloader (StatReloader, or Watchman when installed) watches the modules
loaded and sends file_changed; the worker then stops warmly (running tasks finish within the
grace) and exits 3. SIGTERM and SIGQUIT to the outer process are passed on; Ctrl-C reaches both
from the terminal.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from django.utils import autoreload

from djtasks.worker.supervisor import Worker

logger = logging.getLogger("djtasks")
RESTART = 3


def run(build: Callable[[], Worker]) -> int:
    """Run the worker that `build` makes, restarted on code changes; return the exit code."""
    if watched():
        return _watched(build())
    return _restart_loop()


def watched() -> bool:
    """Whether this process is the worker a --reload process runs (which holds the pid file)."""
    return os.environ.get(autoreload.DJANGO_AUTORELOAD_ENV) == "true"


def _restart_loop() -> int:
    while True:
        env = {**os.environ, autoreload.DJANGO_AUTORELOAD_ENV: "true"}
        process = subprocess.Popen(autoreload.get_child_arguments(), env=env, close_fds=False)
        forward = partial(_forward, process)
        previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGQUIT)}
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal sends it to both
        try:
            code = process.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if code != RESTART:
            return code
        logger.info("Code changed: starting the worker again")


def _forward(process: subprocess.Popen[bytes], signum: int, frame: Any) -> None:
    process.send_signal(signum)


def _watched(worker: Worker) -> int:
    def changed(sender: Any, file_path: Any, **kwargs: Any) -> bool:
        if worker.reload_requested:
            return True  # stopping already: a second signal would make it a cold shutdown
        logger.info("%s changed: the worker stops warmly and starts again", file_path)
        worker.reload_requested = True
        os.kill(os.getpid(), signal.SIGTERM)  # the worker's own warm shutdown
        return True  # handled: Django's reloader must not exit this thread on its own

    autoreload.file_changed.connect(changed, weak=False)
    reloader = autoreload.get_reloader()
    threading.Thread(target=reloader.run, args=(threading.main_thread(),), name="djtasks-reloader", daemon=True).start()
    return worker.run()
