"""What the benchmark runs on: one virtualenv per system, its own redis-server and PostgreSQL cluster.

Standard library only: run.py imports this before any virtualenv exists.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"


def log(message: str) -> None:
    print(f"==> {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_venv(name: str, python: str) -> Path:
    """Make benchmarks/.venvs/<name> from requirements-<name>.txt (again when the file changes); return its python."""
    requirements = HERE / f"requirements-{name}.txt"
    wanted = hashlib.sha256(requirements.read_bytes() + (HERE.parent / "requirements.txt").read_bytes()).hexdigest()
    venv = VENVS / name
    stamp = venv / ".requirements-sha256"
    if stamp.exists() and stamp.read_text() == wanted:
        return venv / "bin" / "python"
    log(f"preparing {venv} from {requirements.name}")
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-r",
            str(requirements),
        ],
        check=True,
        cwd=HERE,
    )
    stamp.write_text(wanted)
    return venv / "bin" / "python"


class RedisServer:
    """A redis-server on a free loopback port, without persistence."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not on PATH (bin/test or `apt-get install redis-server` installs it)")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="djtasks-bench-redis-")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
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
        self.version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise SystemExit(f"redis-server did not answer on port {self.port}")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


def _pg_bin() -> Path:
    candidates = [Path(p).parent for tool in ("initdb",) if (p := shutil.which(tool))]
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for directory in candidates:
        if all((directory / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
            return directory
    raise SystemExit("PostgreSQL server binaries not found (bin/test installs Debian's postgresql)")


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.getuid() == 0 else argv


class PostgresCluster:
    """A throwaway cluster (fsync on) on a free loopback port, as bin/test makes one; removed by stop()."""

    def __init__(self, options: str = "") -> None:
        """options: more server settings (-c name=value ...), e.g. scale.py's pg_stat_statements."""
        self.bin = _pg_bin()
        if os.getuid() == 0 and subprocess.run(["id", "postgres"], capture_output=True).returncode != 0:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--user-group",
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    "/usr/sbin/nologin",
                    "postgres",
                ],
                check=True,
            )
        self.dir = Path(tempfile.mkdtemp(prefix="djtasks-bench-pg-", dir="/tmp"))
        if os.getuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(
            _as_postgres(
                [
                    str(self.bin / "initdb"),
                    "-D",
                    str(self.dir / "data"),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ]
            ),
            check=True,
            cwd=self.dir,
            stdout=subprocess.DEVNULL,
        )
        self.port = free_port()
        subprocess.run(
            _as_postgres(
                [
                    str(self.bin / "pg_ctl"),
                    "-D",
                    str(self.dir / "data"),
                    "-l",
                    str(self.dir / "postgres.log"),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    f"-c listen_addresses=127.0.0.1 -c port={self.port} -k {self.dir} -c fsync=on"
                    " -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
                    f" -c pg_stat_statements.track_planning=on {options}",
                    "start",
                ]
            ),
            check=True,
            cwd=self.dir,
            stdout=subprocess.DEVNULL,
        )
        self.version = subprocess.run(
            [str(self.bin / "postgres"), "--version"], capture_output=True, text=True
        ).stdout.strip()

    def url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        subprocess.run(
            _as_postgres(
                [str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "-w", "-t", "60", "stop"]
            ),
            cwd=self.dir,
            stdout=subprocess.DEVNULL,
        )
        shutil.rmtree(self.dir, ignore_errors=True)


def pgbench(url: str, clients: int, seconds: int = 10) -> float | None:
    """pgbench -N's rate (one UPDATE, one SELECT, one INSERT per commit) with this many clients, in tps.

    The reference of what one commit costs on this server with fsync on; None if pgbench fails.
    url names a database that pgbench -i has initialised (pgbench_init).
    """
    try:
        out = subprocess.run(
            ["pgbench", "-N", "-n", "-c", str(clients), "-j", str(clients), "-T", str(seconds), url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        log(f"pgbench failed: {exc}")
        return None
    for line in out.splitlines():
        if line.startswith("tps = "):
            return float(line.split()[2])
    return None


def pgbench_init(url: str) -> bool:
    base, _, name = url.rpartition("/")
    try:
        subprocess.run(
            ["psql", "-q", f"{base}/postgres", "-c", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            ["psql", "-q", f"{base}/postgres", "-c", f'CREATE DATABASE "{name}"'], check=True, capture_output=True
        )
        subprocess.run(["pgbench", "-i", "-q", "-s", "1", url], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        log(f"pgbench -i failed: {exc}")
        return False
    return True


class PgBouncer:
    """Debian's pgbouncer in transaction pooling mode in front of a cluster, on a free loopback port."""

    def __init__(self, cluster: PostgresCluster) -> None:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not os.path.exists(binary):
            raise SystemExit("pgbouncer not found (bin/test or `apt-get install pgbouncer` installs it)")
        self.dir = cluster.dir
        self.port = free_port()
        (self.dir / "userlist.txt").write_text('"postgres" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            f"[databases]\n* = host=127.0.0.1 port={cluster.port}\n[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.dir}/userlist.txt\npool_mode = transaction\n"
            "max_client_conn = 2000\ndefault_pool_size = 20\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
            f"logfile = {self.dir}/pgbouncer.log\npidfile = {self.dir}/pgbouncer.pid\n"
        )
        if os.getuid() == 0:
            for name in ("userlist.txt", "pgbouncer.ini"):
                shutil.chown(self.dir / name, "postgres", "postgres")
        subprocess.run(_as_postgres([binary, "-d", str(self.dir / "pgbouncer.ini")]), check=True, cwd=self.dir)
        self.version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit(f"pgbouncer did not listen on port {self.port}")

    def url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        pidfile = self.dir / "pgbouncer.pid"
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text().strip()), 15)
            except (ProcessLookupError, ValueError):
                pass
