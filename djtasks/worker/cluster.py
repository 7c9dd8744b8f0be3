"""taskmulti's actions on its nodes: start detached workers, signal them through their pid files.

A node is started as its own session (it outlives taskmulti and the terminal), with its output in
its log file; it writes its pid file itself and removes it when it exits. start waits until each
node has written its pid file, or reports the node's own words if it exited instead.
stop sends SIGTERM (a warm shutdown) and returns; stopwait waits until the nodes are gone; kill
sends SIGKILL. A pid file whose process is gone is removed as the node is reported down.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable

from djtasks.worker.multi import Node
from djtasks.worker.output import alive, pid_in

START_WAIT_S = 20.0
Say = Callable[[str], None]


class Cluster:
    def __init__(self, nodes: list[Node], command: list[str], say: Say, env: dict[str, str] | None = None):
        self.nodes, self.command, self.say, self.env = nodes, command, say, env

    def pid(self, node: Node) -> int | None:
        """The node's pid if it runs; a stale pid file is removed."""
        pid = pid_in(node.pidfile)
        if pid is not None and not alive(pid):
            os.unlink(node.pidfile)
            return None
        return pid

    def start(self) -> int:
        self.say("> Starting nodes...")
        started = [(node, self._spawn(node)) for node in self.nodes]
        failed = 0
        for node, process in started:
            failed += not self._confirm(node, process)
        return 1 if failed else 0

    def _spawn(self, node: Node) -> subprocess.Popen[bytes] | None:
        if (pid := self.pid(node)) is not None:
            self.say(f"\t> {node.name}: already running (pid {pid})")
            return None
        for path in (node.pidfile, node.logfile):
            if os.path.dirname(path):
                os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(node.logfile, "ab") as log:
            return subprocess.Popen(
                [*self.command, *node.argv()],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=self.env,
            )

    def _confirm(self, node: Node, process: subprocess.Popen[bytes] | None) -> bool:
        if process is None:
            return True
        deadline = time.monotonic() + START_WAIT_S
        while time.monotonic() < deadline:
            if pid_in(node.pidfile) == process.pid:
                self.say(f"\t> {node.name}: OK (pid {process.pid})")
                return True
            if process.poll() is not None:
                tail = _tail(node.logfile)
                self.say(f"\t> {node.name}: FAILED (exit code {process.returncode})\n{tail}")
                return False
            time.sleep(0.05)
        self.say(f"\t> {node.name}: started (pid {process.pid}) but wrote no pid file in {START_WAIT_S:g} s")
        return False

    def signal(self, signum: int, *, group: bool = False) -> list[tuple[Node, int]]:
        """Send a signal to every node that runs (with group, to its whole session: children too)."""
        sent = []
        for node in self.nodes:
            pid = self.pid(node)
            if pid is None:
                self.say(f"> {node.name}: DOWN")
                continue
            self.say(f"> Sending {signal.Signals(signum).name} to node {node.name} (pid {pid})")
            try:
                if group and os.getpgid(pid) == pid:  # a node leads its own session (start_new_session)
                    os.killpg(pid, signum)
                else:
                    os.kill(pid, signum)
            except ProcessLookupError:
                continue
            sent.append((node, pid))
        return sent

    def stop(self, *, wait: bool) -> int:
        sent = self.signal(signal.SIGTERM)
        if wait:
            self._wait(sent)
        return 0

    def kill(self) -> int:
        for node, pid in self.signal(signal.SIGKILL, group=True):  # its children too: nothing runs on unleased
            if _gone(pid, 5.0) and pid_in(node.pidfile) == pid:
                os.unlink(node.pidfile)
        return 0

    def restart(self) -> int:
        self._wait(self.signal(signal.SIGTERM))
        return self.start()

    def _wait(self, sent: list[tuple[Node, int]]) -> None:
        waiting = list(sent)
        if waiting:
            self.say(f"> Waiting for {len(waiting)} node(s) -> {', '.join(str(pid) for _, pid in waiting)}...")
        while waiting:
            for node, pid in list(waiting):
                if not alive(pid):
                    self.say(f"\t> {node.name}: OK")
                    waiting.remove((node, pid))
            time.sleep(0.2)

    def show(self) -> int:
        for node in self.nodes:
            self.say(node.shown(self.command))
        return 0


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def _tail(path: str, size: int = 2000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read().decode(errors="replace")
    except OSError:
        return ""
