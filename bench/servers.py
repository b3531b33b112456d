"""Throwaway servers and child processes for the benchmarks (bench/timers.py,
bench/reminders.py): a private PostgreSQL cluster and a Redis server on free loopback
ports, and child processes that are always ended on the way out.

PostgreSQL runs from ``initdb`` in a temp dir with ``fsync=off``, as the ``postgres``
user when root (PostgreSQL refuses root); Redis without persistence. Both are stopped
and their files deleted when the ``with`` block ends, also on Ctrl-C or SIGTERM (see
:func:`exit_on_sigterm`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psycopg
import redis


def run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{shlex.join(cmd)} failed:\n{done.stdout}{done.stderr}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def exit_on_sigterm() -> None:
    """SIGTERM raises SystemExit, so ``finally`` blocks and ``with`` exits stop servers."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int

    def url(self, database: str) -> str:
        """SQLAlchemy URL (psycopg 3 driver)."""
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        return f"host={self.host} port={self.port} user=postgres dbname={database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn(database), autocommit=True)

    def create_database(self, name: str) -> str:
        """``CREATE DATABASE name`` (dropped first if it exists); returns its URL."""
        with self.connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def version(self) -> str:
        with self.connect() as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"


@contextlib.contextmanager
def throwaway_postgres(max_connections: int = 100) -> Iterator[Postgres]:
    """A private PostgreSQL cluster on a free port; stopped and deleted on exit."""
    bindir = subprocess.run(
        ["pg_config", "--bindir"], capture_output=True, text=True, check=True
    ).stdout.strip()
    pg_ctl = f"{bindir}/pg_ctl"
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    tmp = Path(tempfile.mkdtemp(prefix="cartflow-bench-"))
    data = tmp / "data"
    port = free_port()
    try:
        if as_pg:
            shutil.chown(tmp, "postgres", "postgres")
        run(
            [
                *as_pg,
                f"{bindir}/initdb",
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ]
        )
        opts = (
            f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c max_connections={max_connections}"
        )
        log = tmp / "log"
        try:
            run([*as_pg, pg_ctl, "-D", str(data), "-o", opts, "-l", str(log), "-w", "start"])
        except RuntimeError as error:
            raise RuntimeError(f"{error}\n{log.read_text() if log.exists() else ''}") from None
        yield Postgres("127.0.0.1", port)
    finally:
        subprocess.run(
            [*as_pg, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"],
            capture_output=True,
            check=False,
        )  # harmless if it never started
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass(frozen=True)
class Redis:
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port)

    def version(self) -> str:
        with self.client() as client:
            return str(client.info("server")["redis_version"])


@contextlib.contextmanager
def throwaway_redis() -> Iterator[Redis]:
    """``redis-server`` on a free loopback port, no persistence; stopped on exit."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="cartflow-bench-redis-"))
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C reaches us, and we stop it in order
    )
    server = Redis(port)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with server.client() as client:
                    client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start ({process.poll()})") from None
                time.sleep(0.05)
        yield server
    finally:
        stop(process)
        shutil.rmtree(tmp, ignore_errors=True)


# -- child processes -----------------------------------------------------------------------
#: Every child started by :func:`spawn` and not yet stopped; ended at exit at the latest.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def spawn(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    pipe: bool = False,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in a session of its own (so a SIGKILL of its group takes its children,
    and the terminal's Ctrl-C reaches only us). Output is appended to ``log`` (else
    dropped); with ``pipe`` its stdout is a pipe to read instead (stderr still to ``log``)."""
    handle = open(log, "ab") if log is not None else None  # noqa: SIM115 - the child keeps it
    sink: int | IO[bytes] = handle if handle is not None else subprocess.DEVNULL
    try:
        process = subprocess.Popen(
            cmd,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE if pipe else sink,
            stderr=sink,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            start_new_session=True,
        )
    finally:
        if handle is not None:
            handle.close()
    _CHILDREN[process.pid] = process
    return process


def kill_group(process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the process group of a child started by :func:`spawn` (its id)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def stop(process: subprocess.Popen[Any], timeout: float = 15.0) -> int | None:
    """SIGTERM the child's group, SIGKILL it if it has not exited within ``timeout``."""
    try:
        if process.poll() is None:
            kill_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                kill_group(process, signal.SIGKILL)
                process.wait(timeout=10)
        kill_group(process, signal.SIGKILL)  # anything it left behind in its group
        return process.returncode
    finally:
        _CHILDREN.pop(process.pid, None)


@atexit.register
def _stop_all() -> None:
    for process in list(_CHILDREN.values()):
        stop(process, timeout=5)


# -- process memory --------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                text = Path(f"/proc/{pid}/task/{task}/children").read_text()
                found += [int(p) for p in text.split()]
    return found


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants (0 once it is gone)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
            todo += _children(current)
    return total
