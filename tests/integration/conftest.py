"""Fixtures for the integration suite: real PostgreSQL, real Redis, real worker threads.

Servers (session-scoped, started here, never skipped — a missing binary fails loudly):

``postgres``      a throw-away PostgreSQL cluster (``initdb`` + ``pg_ctl``) on a free port.
                  PostgreSQL refuses to run as root, so as root the cluster belongs to
                  the ``postgres`` system user.
``redis``         ``redis-server`` on a free port, no persistence.

Per test:

``pg_url``        a fresh database ``t_<uuid>`` on ``postgres`` (SQLAlchemy URL).
``redis_url``     ``redis`` after ``FLUSHALL``.
``fake_provider`` a :class:`~.fake_provider.FakeProvider` every channel posts to.
``recipient_zone`` an ``Etc/GMT±N`` zone where it is early afternoon right now, so push
                  and SMS are inside the send window and outside quiet hours.
``config_path``   a configuration directory in ``tmp_path``: the shipped templates, the
                  classic push → SMS → email scenario, webhook providers → ``fake_provider``.
``make_runtime``  builds :class:`cartflow.workers.runtime.Runtime` objects, stopped at teardown.
``cart_event`` / ``order_event``  native event builders (docs/events.md) — plain functions,
                  imported by the test modules like ``cartflow_process`` (a ``cartflow``
                  subcommand as a child process, killed by pid on the way out).

The engine runs on the real clock here, so tests send events dated in the past: a cart
last touched 25 hours ago has its idle timer and all three steps due at once.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis as redis_client

from cartflow.workers.runtime import Runtime
from cartflow.workers.settings import Settings

from .fake_provider import FakeProvider

#: The repository root (shipped templates live here).
ROOT = Path(__file__).resolve().parents[2]
#: The API key every test runtime accepts.
API_KEY = "k"
#: How long a poll for an asynchronous outcome may take.
POLL_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], Any],
    timeout: float = POLL_TIMEOUT,
    interval: float = 0.1,
    message: str = "condition",
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with ``message`` if not."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


# -- PostgreSQL ----------------------------------------------------------------------------
@dataclass
class PostgresServer:
    host: str
    port: int

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{database}"

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=self.host, port=self.port, user="postgres", dbname="postgres", autocommit=True
        )


def _pg_bindir() -> Path:
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        pytest.fail(
            "pg_config not found: install PostgreSQL 15 server binaries (the Makefile does)",
            pytrace=False,
        )
    bindir = Path(
        subprocess.run(
            [pg_config, "--bindir"], check=True, capture_output=True, text=True
        ).stdout.strip()
    )
    for tool in ("initdb", "pg_ctl"):
        if not (bindir / tool).exists():
            pytest.fail(
                f"{bindir / tool} not found: install the PostgreSQL server package "
                "(the Makefile does)",
                pytrace=False,
            )
    return bindir


def _as_owner(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the ``postgres`` user then."""
    if os.geteuid() != 0:
        return command
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.fail(
            "running as root but 'runuser' is missing: cannot start PostgreSQL", pytrace=False
        )
    return [runuser, "-u", "postgres", "--", *command]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    bindir = _pg_bindir()
    base = Path(tempfile.mkdtemp(prefix="cartflow-pg-"))
    data = base / "data"
    data.mkdir()
    if os.geteuid() == 0:
        import pwd

        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(base)
            pytest.fail("running as root but there is no 'postgres' system user", pytrace=False)
        for path in (base, data):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    port = free_port()
    log = base / "server.log"
    started = False
    try:
        subprocess.run(
            _as_owner(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )
        options = (
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        )
        result = subprocess.run(
            _as_owner(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(log),
                    "-o",
                    options,
                    "-w",
                    "start",
                ]
            ),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            detail = log.read_text() if log.exists() else result.stderr
            pytest.fail(f"PostgreSQL did not start:\n{detail}", pytrace=False)
        started = True
        yield PostgresServer("127.0.0.1", port)
    finally:
        if started:
            subprocess.run(
                _as_owner(
                    [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
                ),
                capture_output=True,
            )
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def fresh_database(server: PostgresServer) -> Iterator[str]:
    """``CREATE DATABASE t_<uuid>``; yields its URL and drops it afterwards."""
    name = f"t_{uuid.uuid4().hex}"
    with server.admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.url(name)
    finally:
        with server.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    """A fresh, empty database for this test."""
    with fresh_database(postgres) as url:
        yield url


# -- Redis ---------------------------------------------------------------------------------
@dataclass
class RedisServer:
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis_client.Redis:
        return redis_client.Redis(host="127.0.0.1", port=self.port)


@pytest.fixture(scope="session")
def redis() -> Iterator[RedisServer]:
    binary = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if binary is None:
        pytest.fail("redis-server not found: install Redis (the Makefile does)", pytrace=False)
    port = free_port()
    process = subprocess.Popen(
        [binary, "--save", "", "--appendonly", "no", "--port", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = RedisServer(port)
    try:
        deadline = time.monotonic() + 10
        while True:
            client = server.client()
            try:
                if client.ping():
                    break
            except redis_client.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"redis-server did not start (exit code {process.poll()})", pytrace=False
                    )
                time.sleep(0.05)
            finally:
                client.close()
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def redis_url(redis: RedisServer) -> str:
    client = redis.client()
    try:
        client.flushall()
    finally:
        client.close()
    return redis.url


# -- the fake provider and the configuration ---------------------------------------------------
@pytest.fixture
def fake_provider() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


def zone_where_it_is(hour: float, now: datetime | None = None) -> str:
    """An ``Etc/GMT±N`` zone whose local time is closest to ``hour`` o'clock right now."""
    now = now or datetime.now(UTC)
    utc_hours = now.hour + now.minute / 60
    best = min(range(-12, 15), key=lambda offset: abs((utc_hours + offset) % 24 - hour))
    # POSIX sign convention: Etc/GMT-3 is three hours *ahead* of UTC.
    return "Etc/UTC" if best == 0 else f"Etc/GMT{-best:+d}"


@pytest.fixture
def recipient_zone() -> str:
    """A zone where it is about 14:00 now: push and SMS may go for hours either way."""
    return zone_where_it_is(14.0)


SCENARIO_YAML = """\
scenario: abandoned_cart
description: The classic three-touch reminder (integration-test copy).
priority: 10
trigger: {on: cart.abandoned, idle: 30m, when: "cart.value > 0"}
holdout: 0%
reentry: 7d
exit_on: [order.completed, cart.emptied, unsubscribed]
expires: 7d
steps:
  - {id: push, after: 30m, channel: push, template: abandoned_cart/push}
  - id: sms
    after: 3h
    channel: sms
    window: "09:00-21:00"
    discount: {percent: 5, ttl: 48h}
    template: abandoned_cart/sms
  - id: email
    after: 24h
    channel: email
    discount: {percent: 10, ttl: 72h}
    template: abandoned_cart/email
"""


def write_config(directory: Path, provider_url: str, *, timeout: float = 2) -> Path:
    """A configuration directory like the shipped one, every channel → ``provider_url``."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "templates", directory / "templates", dirs_exist_ok=True)
    (directory / "scenarios").mkdir(exist_ok=True)
    (directory / "scenarios" / "abandoned_cart.yaml").write_text(SCENARIO_YAML, encoding="utf-8")
    provider = f"{{type: webhook, url: '{provider_url}', timeout: {timeout}}}"
    (directory / "scenarios.yaml").write_text(
        f"""\
version: 1
defaults:
  timezone: UTC
  locale: en
  locales: [en]
  currency: USD
  quiet_hours: "21:00-09:00"
  browsing_grace: 10m
caps:
  - {{channel: any, max: 3, per: 7d}}
  - {{channel: sms, max: 1, per: 24h}}
providers:
  push: {provider}
  sms: {provider}
  email: {provider}
include:
  - scenarios/*.yaml
""",
        encoding="utf-8",
    )
    return directory / "scenarios.yaml"


@pytest.fixture
def config_path(tmp_path: Path, fake_provider: FakeProvider) -> Path:
    return write_config(tmp_path / "config", fake_provider.url)


# -- runtimes ----------------------------------------------------------------------------------
def make_settings(
    database_url: str, redis_url: str, config_path: Path, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "config_path": str(config_path),
        "api_keys": (API_KEY,),
        "log_format": "json",
        "worker_threads": 4,
        "dispatch_interval": 0.2,
        "dispatch_batch": 500,
        "timer_lease": 10.0,
        "api_host": "127.0.0.1",
        "api_port": 0,
        "reload_interval": 60.0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def make_runtime(
    pg_url: str, redis_url: str, config_path: Path
) -> Iterator[Callable[..., Runtime]]:
    """``make_runtime(**settings)`` → a production-mode Runtime (PostgreSQL + Redis)."""
    made: list[Runtime] = []

    def make(**overrides: Any) -> Runtime:
        config = overrides.pop("config_path", config_path)
        runtime = Runtime(make_settings(pg_url, redis_url, config, **overrides), embedded=False)
        made.append(runtime)
        return runtime

    yield make
    for runtime in reversed(made):
        runtime.stop()


@contextlib.contextmanager
def cartflow_process(
    args: list[str], env: dict[str, str], log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """``cartflow ARGS`` as a child process (output appended to ``log_path``); killed by
    its pid on the way out if it is still running."""
    script = Path(sys.executable).with_name("cartflow")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "workers"]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [*command, *args],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def worker_process(
    env: dict[str, str], log_path: Path, threads: int = 2
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """``cartflow worker`` as a child process."""
    return cartflow_process(["worker", "--threads", str(threads)], env, log_path)


# -- events --------------------------------------------------------------------------------------
def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def cart_event(
    cart_id: str,
    *,
    at: datetime,
    zone: str,
    event_id: str | None = None,
    price: float = 4990,
    quantity: int = 1,
) -> dict[str, Any]:
    """A ``cart.updated`` with a full contact, every consent, and one item."""
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex}",
        "type": "cart.updated",
        "at": iso(at),
        "anonymous_id": f"anon_{cart_id}",
        "customer_id": f"cust_{cart_id}",
        "session_id": f"sess_{cart_id}",
        "cart": {
            "id": cart_id,
            "currency": "USD",
            "url": f"https://shop.example/cart/{cart_id}",
            "items": [
                {
                    "sku": "SKU-1",
                    "name": "Sneakers",
                    "price": price,
                    "quantity": quantity,
                    "url": "https://shop.example/p/1",
                }
            ],
        },
        "contact": {
            "email": f"{cart_id}@example.com",
            "phone": "+79991234567",
            "push_token": f"push-token-{cart_id}",
            "locale": "en",
            "timezone": zone,
            "first_name": "Anna",
        },
        "consent": {"push": True, "sms": True, "email": True},
    }


def order_event(cart_id: str, *, at: datetime, event_id: str | None = None) -> dict[str, Any]:
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex}",
        "type": "order.completed",
        "at": iso(at),
        "anonymous_id": f"anon_{cart_id}",
        "customer_id": f"cust_{cart_id}",
        "order": {"id": f"order_{cart_id}", "cart_id": cart_id, "total": 4990, "currency": "USD"},
    }


def ago(**delta: float) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}"}
