"""Worker hosts inside this machine: network namespaces joined by veth pairs to a bridge, each its own clock.

    with Hosts(3, offsets=[-3.0, 0.0, 3.0]) as hosts:
        redis = hosts.redis()                     # a redis-server on the bridge (and 127.0.0.1)
        hosts.worker(0, redis_url, log_dir, "-c", "2")
        hosts.cut(2); ...; hosts.restore(2)       # ip link set <veth> down / up
        hosts.kill(1)                             # SIGKILL every process of host 1

Each host is a namespace (djt<run>h<i>) holding one end of a veth pair (eth0, 10.X.Y.(10+i)); the
other end is on a bridge in the root namespace (10.X.Y.1), where Redis and the database are
reached: redis-server listens on the bridge address, PostgreSQL through a TCP relay on it (the
test cluster listens on loopback only), SQLite is a file every host opens. Processes of a host
run under `ip netns exec` and libfaketime, FAKETIME="<offset>s", so each has its own clock.

The private range is picked free of this machine's routes; nothing leaves the machine. Everything
made is removed on exit, on a failed test too (and at interpreter exit), and left-overs of a run
that was killed are removed by the next run. Where the kernel refuses namespaces (no root, a
container without CAP_SYS_ADMIN) `Hosts.unavailable()` says why, for a skip.
"""

from __future__ import annotations

import atexit
import glob
import os
import re
import select
import signal
import socket
import subprocess
import threading
from pathlib import Path

from tests.support.redisserver import RedisServer
from tests.support.workers import WorkerProcess

FAKETIME_LIBS = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
# time.sleep() for processes under libfaketime (see its docstring): put first on their PYTHONPATH.
FAKETIME_SITE = Path(__file__).resolve().parent / "faketime_site"
NAME = re.compile(r"^djt(\d+)[hbv]")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers() -> None:
    """Delete namespaces and links of earlier runs whose process is gone (a run killed before its clean-up)."""
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        found = NAME.match(name)
        if found and not _alive(int(found.group(1))):
            _kill_namespace(name)
            _ip("netns", "delete", name, check=False)
    for line in _ip("-o", "link", "show", check=False).stdout.splitlines():
        parts = line.split(": ")
        name = parts[1].split("@")[0] if len(parts) > 1 else ""
        found = NAME.match(name)
        if found and not _alive(int(found.group(1))):
            _ip("link", "delete", name, check=False)


def _kill_namespace(namespace: str) -> None:
    for pid in _ip("netns", "pids", namespace, check=False).stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


class Relay:
    """Forward TCP connections made to (host, port) to a loopback port: PostgreSQL for the hosts."""

    def __init__(self, host: str, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self.server = socket.create_server((host, 0))
        self.address = self.server.getsockname()
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while True:
                readable, _, _ = select.select([a, b], [], [], 60)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except OSError:
            pass
        finally:
            a.close()
            b.close()

    def close(self) -> None:
        self.stopped = True
        self.server.close()


class Hosts:
    def __init__(self, count: int, offsets: list[float] | None = None):
        self.count = count
        self.offsets = offsets or [0.0] * count
        self.run = os.getpid()
        self.bridge = f"djt{self.run}b"
        self.namespaces = [f"djt{self.run}h{i}" for i in range(count)]
        self.veths = [f"djt{self.run}v{i}" for i in range(count)]
        self.subnet = ""
        self.made: list[tuple[str, str]] = []
        self.servers: list[RedisServer] = []
        self.relays: list[Relay] = []
        self.workers: list[WorkerProcess] = []
        self.seen: dict[int, float] = {}

    @staticmethod
    def unavailable() -> str | None:
        """Say why network namespaces cannot be made here (None if they can)."""
        if os.geteuid() != 0:
            return "network namespaces need root (CI runs bin/test as root)"
        if subprocess.run(["which", "ip"], capture_output=True).returncode != 0:
            return "ip (iproute2) is not installed: bin/test installs it"
        if not FAKETIME_LIBS:
            return "libfaketime is not installed: bin/test installs it"
        probe = f"djt{os.getpid()}hprobe"
        made = _ip("netns", "add", probe, check=False)
        if made.returncode != 0:
            return f"the kernel refused a network namespace: {made.stderr.strip()}"
        _ip("netns", "delete", probe, check=False)
        return None

    def _free_subnet(self) -> str:
        routes = _ip("-4", "route", "show", "table", "all", check=False).stdout
        for index in range(self.run, self.run + 2000):
            candidate = f"10.{200 + index % 50}.{(index // 50) % 250}"
            if f"{candidate}." not in routes:
                return candidate
        raise RuntimeError("no free 10.x.y.0/24 range for the hosts' bridge")

    @property
    def gateway(self) -> str:
        """The bridge's address: where the hosts reach Redis and the database."""
        return f"{self.subnet}.1"

    def address(self, host: int) -> str:
        return f"{self.subnet}.{10 + host}"

    def __enter__(self) -> Hosts:
        remove_leftovers()
        atexit.register(self.close)
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _build(self) -> None:
        self.subnet = self._free_subnet()
        _ip("link", "add", self.bridge, "type", "bridge")
        self.made.append(("link", self.bridge))
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for host, (namespace, veth) in enumerate(zip(self.namespaces, self.veths, strict=True)):
            _ip("netns", "add", namespace)
            self.made.append(("netns", namespace))
            _ip("link", "add", veth, "type", "veth", "peer", "name", f"{veth}p")
            self.made.append(("link", veth))
            _ip("link", "set", f"{veth}p", "netns", namespace)
            _ip("-n", namespace, "link", "set", f"{veth}p", "name", "eth0")
            _ip("-n", namespace, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
            _ip("-n", namespace, "link", "set", "eth0", "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
            _ip("link", "set", veth, "master", self.bridge)
            _ip("link", "set", veth, "up")

    def close(self) -> None:
        """Stop what runs on the hosts, delete the namespaces, veths and bridge (safe to call twice)."""
        for process in self.workers:
            process.kill()
        self.workers.clear()
        for namespace in self.namespaces:
            _kill_namespace(namespace)
        for relay in self.relays:
            relay.close()
        self.relays.clear()
        for server in self.servers:
            server.cleanup()
        self.servers.clear()
        for kind, name in reversed(self.made):
            if kind == "netns":
                _ip("netns", "delete", name, check=False)
            else:
                _ip("link", "delete", name, check=False)
        self.made.clear()

    # What runs in the root namespace, for the hosts --------------------------------------------

    def redis(self) -> RedisServer:
        """Start a redis-server listening on loopback and on the bridge; return it."""
        server = RedisServer(bind=("127.0.0.1", self.gateway))
        server.start()
        self.servers.append(server)
        return server

    def relay(self, port: int) -> tuple[str, int]:
        """Make a loopback TCP port (PostgreSQL) reachable from the hosts; return (address, port) to use."""
        relay = Relay(self.gateway, port)
        self.relays.append(relay)
        return relay.address

    # The hosts ---------------------------------------------------------------------------------

    def worker(self, host: int, redis_url: str, log_dir: Path, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        """Start `manage.py taskworker` on a host, under its clock offset."""
        clock = {
            "LD_PRELOAD": FAKETIME_LIBS[0],
            "FAKETIME": f"{self.offsets[host]:+g}s",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(FAKETIME_SITE), os.environ.get("PYTHONPATH")])),
        }
        prefix = ["ip", "netns", "exec", self.namespaces[host]]
        if not {"-n", "--hostname"} & set(args):
            # The namespaces share this machine's host name, and two live workers cannot share a name.
            args = ("-n", f"host{host}-{len(self.workers) + 1}@%h", *args)
        process = WorkerProcess(redis_url, log_dir, *args, env={**clock, **(env or {})}, prefix=prefix).start()
        self.workers.append(process)
        return process

    def pids(self, host: int) -> set[int]:
        found = {int(pid) for pid in _ip("netns", "pids", self.namespaces[host], check=False).stdout.split()}
        self.seen.update(dict.fromkeys(found, self.offsets[host]))
        return found

    def offsets_by_pid(self) -> dict[int, float]:
        """Every pid seen on a host so far (now included) -> its host's clock offset, for ledger.read()."""
        for host in range(self.count):
            self.pids(host)
        return dict(self.seen)

    def kill(self, host: int) -> None:
        """SIGKILL every process of a host: the machine is gone."""
        self.pids(host)
        _kill_namespace(self.namespaces[host])

    def cut(self, host: int) -> None:
        """Cut a host off the network (its veth down): its processes live on, unable to reach anyone."""
        _ip("link", "set", self.veths[host], "down")

    def restore(self, host: int) -> None:
        _ip("link", "set", self.veths[host], "up")
