"""Redis with Sentinel on loopback: a primary, a replica and three sentinels, real processes owned by a test."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from tests.support.redisserver import free_port

MASTER = "mymaster"


class SentinelDeployment:
    """One primary, one replica, three sentinels (quorum 2); failover after 1 s without the primary."""

    def __init__(self, sentinels: int = 3, down_after_ms: int = 1000):
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not on PATH: run bin/test, which installs it.")
        self.dir = Path(tempfile.mkdtemp(prefix="djtasks-sentinel-"))
        self.data_ports = [free_port(), free_port()]  # [initial primary, initial replica]
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self.down_after_ms = down_after_ms
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """Celery's form: every sentinel, then the database."""
        return ";".join(f"sentinel://127.0.0.1:{port}" for port in self.sentinel_ports) + "/0"

    @property
    def options(self) -> dict[str, object]:
        return {"master_name": MASTER}

    def _server(self, port: int, *extra: str) -> None:
        args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.dir), "--dbfilename", f"dump-{port}.rdb", *extra]
        self.processes[port] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _sentinel(self, port: int) -> None:
        conf = self.dir / f"sentinel-{port}.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {self.data_ports[0]} 2\n"
            f"sentinel down-after-milliseconds {MASTER} {self.down_after_ms}\n"
            f"sentinel failover-timeout {MASTER} 10000\n"
            f"sentinel parallel-syncs {MASTER} 1\n"
        )
        log = open(self.dir / f"sentinel-{port}.log", "wb")
        self.processes[port] = subprocess.Popen(["redis-server", str(conf), "--sentinel"], stdout=log, stderr=log)

    def start(self) -> SentinelDeployment:
        """Start it all; one that does not come up is stopped (its servers outlived a failed fixture before)."""
        primary, replica = self.data_ports
        try:
            self._server(primary)
            self._server(replica, "--replicaof", "127.0.0.1", str(primary))
            for port in self.sentinel_ports:
                self._sentinel(port)
            self.wait(lambda: self.client(replica).info("replication").get("master_link_status") == "up", "replica")
            self.wait(lambda: all(self.sentinels_know_replica(p) for p in self.sentinel_ports), "sentinels")
        except BaseException:
            self.stop()
            raise
        return self

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=2, socket_connect_timeout=1)

    def sentinels_know_replica(self, port: int) -> bool:
        info = self.client(port).execute_command("SENTINEL", "MASTER", MASTER)
        fields = dict(zip(info[::2], info[1::2], strict=True)) if isinstance(info, list) else info
        others = int(fields.get(b"num-other-sentinels", fields.get("num-other-sentinels", 0)))
        replicas = int(fields.get(b"num-slaves", fields.get("num-slaves", 0)))
        return replicas >= 1 and others >= len(self.sentinel_ports) - 1

    def primary_port(self) -> int | None:
        """The port the sentinels name as the primary now (None if none answers)."""
        for port in self.sentinel_ports:
            try:
                host_port = self.client(port).execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)
                return int(host_port[1])
            except (redis.RedisError, TypeError):
                continue
        return None

    def kill(self, port: int) -> None:
        process = self.processes[port]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def cut_replication(self, replica: int) -> None:
        """Keep a replica from its primary: it reconnects as a user the primary does not know, and fails.

        Unlike a frozen replica, which reads what the kernel buffered for it once it resumes, this one
        never receives what the primary acknowledges from now on (the primary still accepts writes).
        """
        client = self.client(replica)
        client.config_set("masteruser", "djtasks-cut-off")
        client.config_set("masterauth", "cut-off")
        client.client_kill_filter(_type="master")
        self.wait(lambda: client.info("replication").get("master_link_status") == "down", "cut replication link")

    def pause(self, port: int) -> None:
        os.kill(self.processes[port].pid, signal.SIGSTOP)

    def resume(self, port: int) -> None:
        os.kill(self.processes[port].pid, signal.SIGCONT)

    def wait_for_promotion(self, old: int, timeout: float = 30) -> float:
        """Wait until every sentinel names a primary other than `old`, and it says it is one; return when."""

        def promoted() -> bool:
            ports = {self._named(p) for p in self.sentinel_ports}
            if len(ports) != 1 or old in ports or None in ports:
                return False
            (new,) = ports
            return self.client(new).info("replication").get("role") == "master"

        self.wait(promoted, "a promoted replica", timeout)
        return time.time()

    def _named(self, port: int) -> int | None:
        try:
            return int(self.client(port).execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)[1])
        except (redis.RedisError, TypeError):
            return None

    def wait(self, predicate, what: str, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except redis.RedisError:
                pass
            time.sleep(0.05)
        logs = "".join(p.read_text(errors="replace")[-1500:] for p in self.dir.glob("sentinel-*.log"))
        raise RuntimeError(f"Sentinel deployment: no {what} within {timeout} s\n{logs}")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                try:
                    os.kill(process.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
                process.kill()
                process.wait(timeout=10)
        self.processes.clear()
        shutil.rmtree(self.dir, ignore_errors=True)
