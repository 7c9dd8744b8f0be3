"""A real 3-master Redis Cluster on loopback ports, made with redis-cli --cluster create, owned by a test."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time

import redis
from redis.cluster import RedisCluster

from tests.support.redisserver import free_port


class RedisClusterNodes:
    """Three cluster-enabled redis-servers (no persistence) joined into one cluster, slots split evenly."""

    def __init__(self, masters: int = 3):
        for tool in ("redis-server", "redis-cli"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} is not on PATH: run bin/test, which installs redis-server.")
        self.ports = [free_port() for _ in range(masters)]
        # The cluster bus port, named: derived (port + 10000), it would not exist above 55535.
        self.bus_ports = {port: free_port() for port in self.ports}
        self.dir = tempfile.mkdtemp(prefix="djtasks-cluster-")
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """The URL of one node: djtasks finds the others."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def node_url(self, index: int) -> str:
        return f"redis://127.0.0.1:{self.ports[index]}/0"

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=5)

    def client(self) -> RedisCluster:
        return RedisCluster(host="127.0.0.1", port=self.ports[0], socket_timeout=5)

    def start_node(self, port: int) -> None:
        self.processes[port] = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                str(self.bus_ports[port]),
                "--cluster-config-file",
                f"{self.dir}/nodes-{port}.conf",
                "--cluster-node-timeout",
                "2000",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start(self) -> RedisClusterNodes:
        for port in self.ports:
            self.start_node(port)
        for port in self.ports:
            self._wait(lambda p=port: self.node(p).ping(), f"node {port} did not answer")
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self._wait(self.ready, "the cluster did not reach cluster_state:ok")
        return self

    def ready(self) -> bool:
        for port in self.ports:
            info = self.node(port).cluster("info")
            if info.get("cluster_state") != "ok" or int(info.get("cluster_known_nodes", 0)) < len(self.ports):
                return False
        return True

    def _wait(self, predicate, message: str, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except redis.RedisError:
                pass
            time.sleep(0.1)
        raise RuntimeError(message)

    def master_of(self, key: str) -> int:
        """Return the port of the master that serves a key's slot."""
        slot = self.client().keyslot(key)
        for start, end, *nodes in self.node(self.ports[0]).execute_command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return int(nodes[0][1])
        raise LookupError(f"no master serves slot {slot}")

    def node_id(self, port: int) -> str:
        return self.node(port).execute_command("CLUSTER", "MYID").decode()

    def flushall(self) -> None:
        for port in self.ports:
            self.node(port).flushall()

    def reshard(self, slot: int, to_port: int) -> None:
        """Move one slot (and its keys) to another master, the way an operator would, with redis-cli."""
        source = self.master_of_slot(slot)
        if source == to_port:
            return
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "reshard",
                f"127.0.0.1:{self.ports[0]}",
                "--cluster-from",
                self.node_id(source),
                "--cluster-to",
                self.node_id(to_port),
                "--cluster-slots",
                "1",
                "--cluster-yes",
                "--cluster-pipeline",
                "10",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def migrate_slot_slowly(self, slot: int, to_port: int, hold_s: float) -> None:
        """Move a slot by hand as redis-cli does, but hold it half-moved (some keys on each side) for hold_s.

        That is the state a resharding of a big slot stays in: commands on keys already moved are
        sent on with ASK, and a script whose keys are split between the two nodes gets TRYAGAIN.
        """
        source = self.master_of_slot(slot)
        src, dst = self.node(source), self.node(to_port)
        src_id, dst_id = self.node_id(source), self.node_id(to_port)
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
        half = keys[: max(1, len(keys) // 2)]
        src.execute_command("MIGRATE", "127.0.0.1", to_port, "", 0, 10000, "KEYS", *half)
        time.sleep(hold_s)
        while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000):
            src.execute_command("MIGRATE", "127.0.0.1", to_port, "", 0, 10000, "REPLACE", "KEYS", *keys)
        for port in self.ports:
            self.node(port).execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)

    def master_of_slot(self, slot: int) -> int:
        for start, end, *nodes in self.node(self.ports[0]).execute_command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return int(nodes[0][1])
        raise LookupError(f"no master serves slot {slot}")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        self.processes.clear()
        shutil.rmtree(self.dir, ignore_errors=True)


class ClusterAsServer:
    """A cluster shaped like tests.support.redisserver.RedisServer, so existing tests run against it.

    stop() kills every node and start() brings them back empty (no persistence; each node keeps
    its cluster configuration file, so the slots are served as before): Redis restarted empty.
    pause() and resume() freeze and thaw every node.
    """

    def __init__(self) -> None:
        self.nodes = RedisClusterNodes()
        self.created = False

    @property
    def url(self) -> str:
        return self.nodes.url

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self.nodes.processes.get(self.nodes.ports[0])

    def client(self) -> RedisCluster:
        return self.nodes.client()

    def start(self) -> None:
        if not self.created:
            self.nodes.start()
            self.created = True
            return
        for port in self.nodes.ports:
            process = self.nodes.processes.get(port)
            if process is None or process.poll() is not None:
                self.nodes.start_node(port)
        self.nodes._wait(self.nodes.ready, "the restarted cluster did not reach cluster_state:ok")

    def stop(self) -> None:
        for process in self.nodes.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)

    def pause(self) -> None:
        for process in self.nodes.processes.values():
            os.kill(process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        for process in self.nodes.processes.values():
            os.kill(process.pid, signal.SIGCONT)

    def cleanup(self) -> None:
        self.nodes.stop()
