"""What every benchmark needs: the stack's endpoints, the benchmark database, processes,
free ports, memory and CPU readings."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import requests

from batchcore import migrate
from stack import config

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
BENCH_DB = "pipelines_bench"
PY = sys.executable


def log(message: str) -> None:
    """One progress line on stderr (the table goes to stdout)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def stack_env() -> dict[str, str]:
    """The running stack's endpoints (STACK_DIR picks which stack); fail loudly without it."""
    env = config.read_stack_env()
    if not env:
        raise SystemExit(f"no {config.STACK_DIR / 'stack.env'}: start the stack with `make up`")
    return env


def with_db(url: str, name: str) -> str:
    """The same PostgreSQL URL with another database name."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def admin_connect(env: dict[str, str], database: str = "postgres"):
    conn = psycopg2.connect(with_db(env["PG_ADMIN_URL"], database))
    conn.autocommit = True
    return conn


def create_bench_database(env: dict[str, str]) -> str:
    """A fresh, migrated database of the benchmark's own; return its URL (service role)."""
    conn = admin_connect(env)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
            cur.execute(f"CREATE DATABASE {BENCH_DB} OWNER pipelines")
    finally:
        conn.close()
    url = with_db(env["DATABASE_URL"], BENCH_DB)
    migrate.apply(url)
    return url


def drop_bench_database(env: dict[str, str]) -> None:
    conn = admin_connect(env)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    finally:
        conn.close()


def postgres_version(env: dict[str, str]) -> str:
    conn = admin_connect(env)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            return cur.fetchone()[0]
    finally:
        conn.close()


def conductor_version(conductor_api: str) -> str:
    root = conductor_api.removesuffix("/api")
    try:
        info = requests.get(f"{root}/actuator/info", timeout=5).json()
        return info["build"]["version"]
    except (requests.RequestException, ValueError, KeyError):
        return requests.get(f"{conductor_api}/version", timeout=5).text.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def token() -> str:
    return "bench-" + secrets.token_urlsafe(24)


def wait_http(url: str, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what} did not answer 200 at {url} within {timeout:.0f}s")


@dataclass
class Child:
    """A process the benchmark started, with its log file."""

    name: str
    proc: subprocess.Popen
    log_path: Path

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def start_child(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> Child:
    """Start a process from the checkout with `env` added, its output in log_dir/name.log."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Child(name, proc, log_path)


# ----------------------------------------------------------------- memory and CPU readings


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the highest resident set size the process has had, in MiB."""
    return _status_kb(pid, "VmHWM") / 1024


def children_of(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(p) for p in path.read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def cpu_seconds(pid: int, reaped: bool = False) -> float:
    """User + system CPU time of one process so far (and of its exited children if `reaped`)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children, those still running and those that exited."""
    return cpu_seconds(pid, reaped=True) + sum(cpu_seconds(c) for c in children_of(pid))


class MachineCpu:
    """How busy all cores were between start() and stop(), from /proc/stat (0..1)."""

    @staticmethod
    def _read() -> tuple[int, int]:
        parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = parts[3] + parts[4]
        return idle, sum(parts)

    def __enter__(self) -> MachineCpu:
        self._idle0, self._total0 = self._read()
        self.busy = float("nan")
        return self

    def __exit__(self, *exc) -> None:
        idle, total = self._read()
        spent = total - self._total0
        self.busy = 1 - (idle - self._idle0) / spent if spent else float("nan")


def median(values: list[float]) -> float:
    ordered = sorted(v for v in values if v == v)
    if not ordered:
        return float("nan")
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
