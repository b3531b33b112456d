"""Reminders end to end: cartflow against Celery, Dramatiq and APScheduler (issue 16).

One harness, one sitting, the same fake provider (bench/fakeprovider.py) for everyone.
cartflow runs as in production — ``cartflow api``, ``cartflow worker`` and ``cartflow
scheduler`` as child processes on a throwaway PostgreSQL and Redis (bench/servers.py),
configured by environment only — and is driven from the outside: events through
``POST /v1/events``, progress read from its database, Redis and logs. The alternatives
(bench/alternatives.py) send the same POST from a Celery task with ``eta``, a Dramatiq
actor with ``delay``, or an APScheduler ``date`` job.

Parts (``--only``, comma-separated):

* ``burst``  — ``--reminders`` N reminders due at one instant T. cartflow: N carts whose
  idle timers all come due at T (``cart.updated`` dated T − 30 min, a scenario whose only
  step is a push due at abandonment, push consent and token, a time zone where T is
  early afternoon). Sends/s (first to last send at the provider), last send after T,
  skew (send − T) p50/p99, duplicates (one journey step or reminder sent twice), lost
  (not sent within ``--drain`` s), queue messages enqueued vs needed, worker RSS.
  ``--runs K`` repeats it K times (and each schedulers-part burst): medians, min–max of
  sends/s and last send after due.
  In every burst-like part a share of the carts (``--orders``, 5%) is paid for at
  T + ``--order-at`` (−2 s): cartflow gets an ``order.completed`` through the API, and
  each reminder of those carts that reaches the provider after the order's 202 counts as
  *sent after order* (target 0; not expected, so never lost). The alternatives' task has
  no order state and does not look for one: their count is what the naive design sends.
* ``ingest`` — ``--events`` M events through the API in batches of 1,000 (one client),
  events applied/s by the worker (polled ``applied_at``) and the apply backlog; then
  single-event POSTs at ``--single-rate`` for ``--single-seconds``. The alternatives:
  the rate one producer gets M reminders accepted (scheduled 30 min ahead).
* ``crash``  — like burst with ``--crash-reminders``, the worker SIGKILLed at T + 2 s and
  started again at once; lost and duplicated after ``--crash-drain`` s, time to recover
  (last send − T).
* ``scheduler-crash`` — the same with ``cartflow scheduler`` SIGKILLed (APScheduler: its
  one process; Celery and Dramatiq have no scheduler process: a row saying why).
* ``schedulers`` — cartflow only: a burst of ``--part-reminders`` with 1, then 2
  scheduler processes at once (duplicates must stay 0). ``--schedulers N`` runs N in the
  other parts.
* ``scale`` — cartflow only: a burst of ``--part-reminders`` with ``--pending-sizes``
  other timers pending far ahead (COPY into ``timers``): sends/s and skew per size
  (target: flat ±20%), ``timers`` bytes per pending timer.
* ``memory`` — after M pending reminders: worker RSS, and bytes per pending reminder on
  disk (cartflow: ``pg_total_relation_size`` per table) or in Redis / the process.

    .venv/bin/python bench/reminders.py [--reminders 20000] [--events 100000]
        [--only burst,ingest,crash,memory,scheduler-crash,schedulers,scale]
        [--systems cartflow,celery,dramatiq,apscheduler] [--runs 3] [--orders 0.05]
        [--schedulers 1] [--part-reminders 2000] [--pending-sizes 0,1000000] [--write]
    .venv/bin/python bench/reminders.py --quick     # every part, small sizes, < 5 min

Every figure is measured in the run that prints it; a part that fails says so, with why.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.metadata
import itertools
import json
import math
import os
import platform
import re
import shlex
import shutil
import statistics
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from report import BENCHMARKS, write_section
from servers import (
    Postgres,
    Redis,
    exit_on_sigterm,
    free_port,
    kill_group,
    rss_bytes,
    spawn,
    stop,
    throwaway_postgres,
    throwaway_redis,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SECTION = "## Reminders end to end (bench/reminders.py)"
#: Claimed timers per cartflow queue message (the default of CARTFLOW_FIRE_BATCH).
FIRE_BATCH = 20
API_KEY = "bench"
BATCH = 1000
#: cartflow's idle time before a cart counts as abandoned, in the bench scenario.
IDLE = timedelta(minutes=30)
#: Reminders scheduled this far ahead in ingest/memory (never due during the run).
AHEAD = timedelta(minutes=30)
#: Timers preloaded by the scale part are due this far ahead or more (never in a run).
FAR_AHEAD = timedelta(days=7)
#: The burst's own timers (its carts' idle checks, every journey's step; due within
#: minutes, leases included), not the scale part's preload: a range on the indexed
#: ``due_at`` also keeps the poll cheap at 10 M pending.
NEAR = "due_at < now() + interval '1 day'"
OURS = f"(kind = 'journey_step' OR ref LIKE 'c-%') AND {NEAR}"
PARTS = ("burst", "ingest", "crash", "memory", "scheduler-crash", "schedulers", "scale")
SYSTEMS = ("cartflow", "celery", "dramatiq", "apscheduler")
MiB = 1024 * 1024

SCENARIO = """\
scenario: bench_push
description: One push the moment a cart is abandoned (bench/reminders.py).
priority: 10
trigger: {on: cart.abandoned, idle: 30m}
holdout: 0%
reentry: 7d
exit_on: [order.completed, cart.emptied, unsubscribed]
expires: 7d
steps:
  - {id: push, after: 30m, channel: push, template: abandoned_cart/push}
"""

SETTINGS = """\
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
providers:
  push: {{type: webhook, url: "{url}", timeout: 10}}
include:
  - scenarios/*.yaml
"""


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.2) -> Any:
    """Poll ``predicate`` until truthy (returned) or ``timeout`` s (then its last value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def sleep_until(moment: float) -> None:
    while (left := moment - time.time()) > 0:
        time.sleep(min(left, 0.5))


def zone_where_it_is(hour: float, at: datetime) -> str:
    """An ``Etc/GMT±N`` zone whose local time at ``at`` is closest to ``hour`` o'clock."""
    utc_hours = at.hour + at.minute / 60
    best = min(range(-12, 15), key=lambda offset: abs((utc_hours + offset) % 24 - hour))
    return "Etc/UTC" if best == 0 else f"Etc/GMT{-best:+d}"  # POSIX sign: GMT-3 is UTC+3


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# -- the fake provider, samplers, counters ------------------------------------------------------
class Provider:
    """bench/fakeprovider.py as a child process."""

    def __init__(self, log: Path) -> None:
        self.process = spawn([sys.executable, str(HERE / "fakeprovider.py")], pipe=True, log=log)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode()
        if not line.startswith("PORT "):
            stop(self.process)
            raise RuntimeError(f"fake provider did not start: {line!r}")
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}/send"
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)

    def stats(self) -> dict[str, int]:
        return dict(self.client.get("/stats").json())

    def dump(self) -> list[tuple[str, str, float]]:
        return [tuple(r) for r in self.client.get("/dump").json()]  # type: ignore[misc]

    def reset(self) -> None:
        self.client.post("/reset")

    def close(self) -> None:
        self.client.close()
        stop(self.process)


class Sampler:
    """Calls ``probe`` every ``interval`` s on a thread; keeps (seconds, values) samples."""

    def __init__(self, probe: Callable[[], dict[str, float]], interval: float = 0.5) -> None:
        self.probe = probe
        self.interval = interval
        self.samples: list[tuple[float, dict[str, float]]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="sampler")
        self.started = time.time()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.time(), self.probe()))
            except Exception as exc:  # a probe failing is reported, never fatal
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def peak(self, key: str) -> float:
        return max((values.get(key, 0.0) for _, values in self.samples), default=math.nan)


class KeyspaceCounter:
    """Counts Redis keyspace notifications (``hset``, ``lpush``, ``rpush``) per key: how
    many messages each queue took, duplicates and re-enqueues included."""

    def __init__(self, server: Redis) -> None:
        self.client = server.client()
        self.client.config_set("notify-keyspace-events", "Klh")
        self.client.config_set("client-output-buffer-limit", "pubsub 0 0 0")
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.psubscribe("__keyspace@0__:*")
        self.counts: Counter[tuple[str, str]] = Counter()
        self._stop = threading.Event()
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="keyspace")
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                message = self.pubsub.get_message(timeout=0.2)
                if message and message["type"] == "pmessage":
                    key = message["channel"].decode().split(":", 1)[1]
                    self.counts[key, message["data"].decode()] += 1
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"

    def get(self, key: str, op: str) -> int:
        return self.counts[key, op]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(Exception):
            self.pubsub.close()
        self.client.close()


# -- results -------------------------------------------------------------------------------------
@dataclass
class Burst:
    system: str
    expected: int
    sent: int = 0
    total: int = 0
    duplicates: int = 0
    lost: int = 0
    pending: int = 0
    early: int = 0
    unexpected: int = 0
    rate: float = math.nan
    last_after_due: float = math.nan
    skew_p50: float = math.nan
    skew_p99: float = math.nan
    setup_s: float = math.nan
    enqueued: int | None = None
    needed: int | None = None
    rss_peak: float = math.nan
    queue_peak: float = math.nan
    #: Carts whose shopper paid at T + ``--order-at`` (not expected, not lost).
    ordered: int = 0
    #: ... of them, reminders that reached the provider after the order's 202 (target 0).
    sent_after_order: int = 0
    #: ... and before it (the order was not stored yet: allowed).
    sent_before_order: int = 0
    #: Other timers pending far ahead (scale part), and ``timers`` bytes per one of them.
    other_pending: int = 0
    bytes_per_pending: float = math.nan
    load_s: float = math.nan
    #: Runs behind this row (``--runs``): (min, max) of sends/s and last send after due.
    runs: int = 1
    rate_range: tuple[float, float] = (math.nan, math.nan)
    last_range: tuple[float, float] = (math.nan, math.nan)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    #: Why this measurement does not apply to this system (a row saying so).
    na: str | None = None
    #: The drain time, when it ran out with reminders still pending (so the last send
    #: after due is more than this, not the last one seen).
    drained_out: float = math.nan


def failed(cls: type[Any], system: str, exc: BaseException, **kwargs: Any) -> Any:
    reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    log(f"{system}: FAILED {reason}\n{traceback.format_exc()}")
    return cls(system=system, error=reason, **kwargs)


@dataclass
class Ingest:
    system: str
    events: int = 0
    accept_rate: float = math.nan
    batch_p50_ms: float = math.nan
    batch_p99_ms: float = math.nan
    applied_rate: float = math.nan
    applied: int = 0
    backlog_max: int = 0
    drained_after: float = math.nan
    backlog_series: str = ""
    redriven: int = 0
    apply_messages: int | None = None
    apply_needed: int | None = None
    single_offered: float = math.nan
    single_rate: float = math.nan
    single_p50_ms: float = math.nan
    single_p99_ms: float = math.nan
    single_errors: int = 0
    single_sent: int = 0
    #: CPU ms per single POST of the API process, and of this (the load generator).
    single_api_cpu_ms: float = math.nan
    single_client_cpu_ms: float = math.nan
    notes: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class Memory:
    system: str
    pending: int = 0
    worker_rss: float = math.nan
    worker_rss_delta: float = math.nan
    other_rss: str = ""
    store: str = ""
    store_bytes: float = math.nan
    tables: list[tuple[str, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None


# -- systems under test --------------------------------------------------------------------------
class Context:
    def __init__(
        self, args: argparse.Namespace, pg: Postgres, rd: Redis, provider: Provider, workdir: Path
    ) -> None:
        self.args = args
        self.pg = pg
        self.redis = rd
        self.provider = provider
        self.workdir = workdir
        self.runs = itertools.count(1)


class System:
    """One system under test, started fresh for each part."""

    name = ""
    label = ""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.run_id = next(ctx.runs)
        self.logs = ctx.workdir / f"{self.run_id:02d}-{self.name}"
        self.logs.mkdir()
        self.redis = ctx.redis.client()
        self.redis.flushall()
        ctx.provider.reset()
        self.keyspace = KeyspaceCounter(ctx.redis)
        self.processes: list[Any] = []

    #: Why this system has no scheduler process of its own to kill (None: it has one).
    no_scheduler: str | None = None

    def lead(self, n: int) -> float:
        """Seconds from now to the due instant: room to schedule ``n`` reminders first."""
        args = self.ctx.args
        return float(args.lead) if args.lead is not None else float(args.lead_floor) + n / 1000

    # to implement
    def start(self) -> None: ...
    def schedule(self, due: float, n: int) -> float:
        raise NotImplementedError

    def worker_pids(self) -> list[int]:
        raise NotImplementedError

    def kill_worker(self) -> None:
        raise NotImplementedError

    def kill_scheduler(self) -> None:
        raise NotImplementedError

    def order(self, indices: list[int]) -> dict[str, float]:
        """The shoppers of reminders ``indices`` pay now; each one's ref → when the order
        was known to the system. A bare task has no order state to tell and does not look
        for one (the naive design): the order is known to no one, so it counts from now."""
        now = time.time()
        return {self.ref(i): now for i in indices}

    def queue_sample(self) -> dict[str, float]:
        return {}

    def enqueued(self, n: int) -> tuple[int | None, int | None]:
        return None, None

    def ref(self, i: int) -> str:
        """How the fake provider names reminder ``i``."""
        return f"r-{i}"

    def expected(self, n: int) -> set[str]:
        return {self.ref(i) for i in range(n)}

    def finish(self, result: Burst) -> None:
        """Anything system-specific to add to a burst result before stopping."""

    def idle(self) -> bool:
        """Nothing of this run is left to send, here or in the broker."""
        return False

    def pending(self) -> int:
        """Reminders still scheduled or queued somewhere (they may go out later)."""
        return 0

    def stop(self) -> None:
        for process in reversed(self.processes):
            stop(process)
        self.processes.clear()
        self.keyspace.close()
        self.redis.close()

    def sample(self) -> dict[str, float]:
        values = {"rss": float(sum(rss_bytes(pid) for pid in self.worker_pids()))}
        values.update(self.queue_sample())
        return values


class Cartflow(System):
    name = "cartflow"
    label = "cartflow"

    def __init__(self, ctx: Context, schedulers: int | None = None) -> None:
        super().__init__(ctx)
        #: ``cartflow scheduler`` processes run at once (``--schedulers``).
        self.scheduler_count = schedulers or ctx.args.schedulers
        self.label = (
            "cartflow"
            if schedulers is None
            else f"cartflow, {schedulers} scheduler{'s' if schedulers > 1 else ''}"
        )
        self.db = f"cf_{self.run_id}"
        self.url = ctx.pg.create_database(self.db)
        config = self.logs / "config"
        shutil.copytree(ROOT / "templates", config / "templates")
        (config / "scenarios").mkdir()
        (config / "scenarios" / "bench_push.yaml").write_text(SCENARIO)
        (config / "scenarios.yaml").write_text(SETTINGS.format(url=ctx.provider.url))
        self.port = free_port()
        self.env = {
            "CARTFLOW_DATABASE_URL": self.url,
            "CARTFLOW_REDIS_URL": ctx.redis.url,
            "CARTFLOW_CONFIG": str(config / "scenarios.yaml"),
            "CARTFLOW_API_KEYS": API_KEY,
            "CARTFLOW_LOG_FORMAT": "json",
            "CARTFLOW_API_HOST": "127.0.0.1",
            "CARTFLOW_API_PORT": str(self.port),
            "CARTFLOW_WORKER_THREADS": str(ctx.args.threads),
            "CARTFLOW_TIMER_LEASE": str(ctx.args.lease),
            # the children run the code of the tree this script is in (a git worktree
            # included), not whatever copy the venv's editable install points at
            "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.getenv("PYTHONPATH")])]),
        }
        self.api: Any = None
        self.worker: Any = None
        #: Worker processes beyond the first (``--workers``).
        self.more_workers: list[Any] = []
        self.schedulers: list[Any] = []
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=120,
        )

    def command(self, *args: str) -> list[str]:
        script = Path(sys.executable).with_name("cartflow")
        return (
            [str(script), *args]
            if script.exists()
            else [sys.executable, "-m", "cartflow.workers", *args]
        )

    def _spawn(self, what: str, *args: str) -> Any:
        process = spawn(
            self.command(what, *args), env=self.env, log=self.logs / f"{what}.log", cwd=self.logs
        )
        self.processes.append(process)
        return process

    def start(self) -> None:
        self.api = self._spawn("api")  # migrates the database before it serves
        healthy = wait_until(self._healthy, timeout=60)
        if not healthy:
            raise RuntimeError(f"cartflow api did not answer /healthz: {self._tail('api')}")
        self.worker = self._spawn("worker")
        self.more_workers = [self._spawn("worker") for _ in range(self.ctx.args.workers - 1)]
        self.schedulers = [self._spawn("scheduler") for _ in range(self.scheduler_count)]

    def _healthy(self) -> bool:
        if self.api.poll() is not None:
            raise RuntimeError(f"cartflow api exited {self.api.returncode}: {self._tail('api')}")
        try:
            return self.client.get("/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    def _tail(self, what: str) -> str:
        path = self.logs / f"{what}.log"
        return path.read_text(errors="replace")[-800:] if path.exists() else ""

    def sql(self, query: str) -> list[tuple[Any, ...]]:
        with self.ctx.pg.connect(self.db) as conn:
            cursor = conn.execute(query)
            return [tuple(row) for row in cursor.fetchall()] if cursor.description else []

    def event(self, cart: str, at: datetime, zone: str) -> dict[str, Any]:
        return {
            "id": f"evt-{cart}",
            "type": "cart.updated",
            "at": iso(at),
            "anonymous_id": f"anon-{cart}",
            "customer_id": f"cust-{cart}",
            "session_id": f"sess-{cart}",
            "cart": {
                "id": cart,
                "currency": "USD",
                "url": f"https://shop.example/cart/{cart}",
                "items": [
                    {
                        "sku": "SKU-1",
                        "name": "Sneakers",
                        "price": 49.9,
                        "quantity": 1,
                        "url": "https://shop.example/p/1",
                    }
                ],
            },
            "contact": {
                "push_token": f"push-token-{cart}",
                "locale": "en",
                "timezone": zone,
                "first_name": "Anna",
            },
            "consent": {"push": True},
        }

    def post(self, events: list[dict[str, Any]]) -> float:
        """POST one batch; returns its latency in s; raises unless 202."""
        start = time.perf_counter()
        body = {"events": events} if len(events) > 1 else events[0]
        response = self.client.post("/v1/events", json=body)
        if response.status_code != 202:
            raise RuntimeError(f"POST /v1/events: {response.status_code} {response.text[:200]}")
        return time.perf_counter() - start

    def applied(self) -> tuple[int, int]:
        row = self.sql(
            "SELECT count(*) FILTER (WHERE applied_at IS NOT NULL), count(*) FROM events"
        )[0]
        return int(row[0]), int(row[1])

    def schedule(self, due: float, n: int) -> float:
        start = time.time()
        moment = datetime.fromtimestamp(due, UTC)
        zone = zone_where_it_is(14.0, moment)
        at = moment - IDLE
        for first in range(0, n, BATCH):
            self.post([self.event(f"c-{i}", at, zone) for i in range(first, min(n, first + BATCH))])
        ready = wait_until(
            lambda: self.applied()[0] >= n and self.idle_timers() >= n,
            timeout=max(0.0, due - time.time() - 0.5),
            interval=0.5,
        )
        if not ready:
            applied, stored = self.applied()
            raise RuntimeError(
                f"not ready by the due instant: {applied:,} of {stored:,} events applied, "
                f"{self.idle_timers():,} idle timers after {time.time() - start:.0f} s; "
                "raise --lead"
            )
        return time.time() - start

    def idle_timers(self) -> int:
        return int(
            self.sql("SELECT count(*) FROM timers WHERE kind = 'cart_idle' AND ref LIKE 'c-%'")[0][
                0
            ]
        )

    def lead(self, n: int) -> float:
        """Time the ``n`` events to post and apply, measured on a warm-up batch (carts
        ``w-…`` active now, so their reminders are 30 min away and never due here)."""
        if self.ctx.args.lead is not None:
            return float(self.ctx.args.lead)
        size = min(n, BATCH)
        start = time.time()
        now = datetime.now(UTC)
        post = self.post([self.event(f"w-{i}", now, "Etc/UTC") for i in range(size)])
        if not wait_until(lambda: self.applied()[0] >= size, timeout=600, interval=0.2):
            raise RuntimeError(f"warm-up: {size:,} events not applied in 600 s")
        apply_rate = size / (time.time() - start)
        lead = float(self.ctx.args.lead_floor) + 5 + 1.3 * (n / apply_rate + post * n / size)
        self.keyspace.counts.clear()
        log(f"cartflow: warm-up applied {apply_rate:,.0f} events/s; due in {lead:.0f} s")
        return lead

    def worker_pids(self) -> list[int]:
        workers = [self.worker, *self.more_workers] if self.worker is not None else []
        return [worker.pid for worker in workers]

    def kill_worker(self) -> None:
        """SIGKILL every worker process, then start as many again."""
        for worker in [self.worker, *self.more_workers]:
            kill_group(worker)
            worker.wait(timeout=10)
            self.processes.remove(worker)
        self.worker = self._spawn("worker")
        self.more_workers = [self._spawn("worker") for _ in range(self.ctx.args.workers - 1)]

    def kill_scheduler(self) -> None:
        """SIGKILL every scheduler process, then start as many again."""
        for scheduler in self.schedulers:
            kill_group(scheduler)
            scheduler.wait(timeout=10)
            self.processes.remove(scheduler)
        self.schedulers = [self._spawn("scheduler") for _ in range(self.scheduler_count)]

    def order(self, indices: list[int]) -> dict[str, float]:
        """POST an ``order.completed`` for each cart ``c-i`` (batches of :data:`BATCH`);
        each reminder's ref → when the 202 for its order came back."""
        durable: dict[str, float] = {}
        now = datetime.now(UTC)
        for first in range(0, len(indices), BATCH):
            chunk = indices[first : first + BATCH]
            self.post([self.order_event(f"c-{i}", now) for i in chunk])
            answered = time.time()
            durable.update(dict.fromkeys((self.ref(i) for i in chunk), answered))
        return durable

    def order_event(self, cart: str, at: datetime) -> dict[str, Any]:
        return {
            "id": f"ord-{cart}",
            "type": "order.completed",
            "at": iso(at),
            "anonymous_id": f"anon-{cart}",
            "customer_id": f"cust-{cart}",
            "order": {"id": f"o-{cart}", "cart_id": cart, "total": 49.9, "currency": "USD"},
        }

    def preload(self, n: int) -> tuple[float, float]:
        """COPY ``n`` journey-step timers due 7 to 37 days ahead into ``timers`` (a pending
        journey's next step, the ref a journey id's length), then VACUUM ANALYZE and
        CHECKPOINT; returns (bytes of ``timers`` per timer added, seconds it took)."""
        from timers import COPY  # bench/timers.py: the real columns

        start = time.time()
        size = "SELECT pg_total_relation_size('timers')"
        before = int(self.sql(size)[0][0])
        first = datetime.now(UTC) + FAR_AHEAD
        with self.ctx.pg.connect(self.db) as conn:
            with conn.cursor() as cursor, cursor.copy(COPY) as copy:
                for i in range(n):
                    at = first + timedelta(days=30) * i / n
                    copy.write_row(("journey_step", f"{i:032x}", at, at, 0))
            conn.execute("VACUUM ANALYZE timers")
            conn.execute("CHECKPOINT")
        added = int(self.sql(size)[0][0]) - before
        return added / n, time.time() - start

    def queue_sample(self) -> dict[str, float]:
        return {
            "queue": float(self.timer_queue_length()),
            "held": float(self.redis.hlen("dramatiq:cartflow.msgs")),
        }

    def enqueued(self, n: int) -> tuple[int | None, int | None]:
        # each cart needs two timers carried: the idle check, then the push step, up to
        # FIRE_BATCH claims per message (CARTFLOW_FIRE_BATCH): at best 2n / FIRE_BATCH
        # messages over the two queues (each tick's last batch of a kind may be partial)
        counts = [
            self.keyspace.get(f"dramatiq:{q}.msgs", "hset") for q in ("cartflow", "cartflow.checks")
        ]
        known = [c for c in counts if c is not None]
        return (sum(known) if known else None), math.ceil(2 * n / FIRE_BATCH)

    def ref(self, i: int) -> str:
        return f"c-{i}:push"

    def timer_queue_length(self) -> int:
        """Messages waiting on the timer queues: sends, and idle checks behind them."""
        return sum(int(self.redis.llen(f"dramatiq:{q}")) for q in ("cartflow", "cartflow.checks"))

    def pending(self) -> int:
        # every reminder not sent yet has one timer: its cart's idle check or its push step
        return int(self.sql(f"SELECT count(*) FROM timers WHERE {OURS}")[0][0])

    def idle(self) -> bool:
        (left,) = self.sql(
            f"SELECT (SELECT count(*) FROM timers WHERE {OURS})"
            " + (SELECT count(*) FROM deliveries WHERE status IN ('pending', 'sending'))"
        )[0]
        return not left and not self.timer_queue_length()

    def redriven(self) -> int:
        total = 0
        path = self.logs / "scheduler.log"
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                if '"events_redriven"' in line:
                    with contextlib.suppress(ValueError):
                        total += int(json.loads(line).get("count", 0))
        return total

    def finish(self, result: Burst) -> None:
        statuses = self.sql("SELECT status, count(*) FROM deliveries GROUP BY status ORDER BY 1")
        result.notes.append("deliveries " + ", ".join(f"{s} {c:,}" for s, c in statuses))
        timers = self.sql(
            "SELECT kind, count(*) FROM timers WHERE ref NOT LIKE 'w-%' "
            f"AND {NEAR} GROUP BY kind ORDER BY 1"
        )
        if timers:
            result.notes.append("timers left " + ", ".join(f"{k} {c:,}" for k, c in timers))
        if redriven := self.redriven():
            result.notes.append(f"events re-driven {redriven:,}")
        if self.scheduler_count > 1 and self.label == "cartflow":
            result.notes.append(f"{self.scheduler_count} schedulers")

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            self.client.close()
            with self.ctx.pg.connect() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')


class Queued(System):
    """A worker process of bench/alternatives.py on the Redis broker; reminders sent by
    this process as producer."""

    kind = ""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.worker: Any = None

    def _worker(self) -> Any:
        process = spawn(
            [
                sys.executable,
                str(HERE / "alternatives.py"),
                self.kind,
                "--broker",
                self.ctx.redis.url,
                "--threads",
                str(self.ctx.args.threads),
            ],
            env={"BENCH_PROVIDER_URL": self.ctx.provider.url},
            log=self.logs / "worker.log",
        )
        self.processes.append(process)
        return process

    def start(self) -> None:
        self.worker = self._worker()
        self.send("warm-up", time.time())
        if not wait_until(lambda: self.ctx.provider.stats()["count"] >= 1, timeout=60):
            raise RuntimeError(f"the worker never ran the warm-up reminder: {self._tail()}")
        self.ctx.provider.reset()
        self.keyspace.counts.clear()

    def _tail(self) -> str:
        path = self.logs / "worker.log"
        return path.read_text(errors="replace")[-800:] if path.exists() else ""

    def send(self, rid: str, due: float) -> None:
        raise NotImplementedError

    def schedule(self, due: float, n: int) -> float:
        start = time.time()
        for i in range(n):
            self.send(f"r-{i}", due)
        return time.time() - start

    def worker_pids(self) -> list[int]:
        return [self.worker.pid] if self.worker is not None else []

    def kill_worker(self) -> None:
        kill_group(self.worker)
        self.worker.wait(timeout=10)
        self.processes.remove(self.worker)
        self.worker = self._worker()


class Celery(Queued):
    name = "celery"
    label = "Celery (eta)"
    kind = "celery-worker"
    no_scheduler = (
        "no scheduler process: the worker fetches ETA tasks at once and holds them until "
        "due (celery beat schedules periodic tasks, not ETAs) — the worker crash is the one"
    )

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        import alternatives

        self.app, self.task = alternatives.celery_app(ctx.redis.url)

    def send(self, rid: str, due: float) -> None:
        self.task.apply_async(args=[rid], eta=datetime.fromtimestamp(due, UTC))

    def queue_sample(self) -> dict[str, float]:
        return {"queue": float(self.redis.llen("bench")), "held": float(self.redis.hlen("unacked"))}

    def enqueued(self, n: int) -> tuple[int | None, int | None]:
        return self.keyspace.get("bench", "lpush"), n

    def idle(self) -> bool:
        return not self.redis.llen("bench") and not self.redis.hlen("unacked")

    def pending(self) -> int:
        return int(self.redis.llen("bench") + self.redis.hlen("unacked"))

    def finish(self, result: Burst) -> None:
        unacked = self.redis.hlen("unacked")
        if unacked:
            result.notes.append(
                f"{unacked:,} still unacked in Redis (redelivered after visibility_timeout, "
                "3600 s by default)"
            )

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            with contextlib.suppress(Exception):
                self.app.close()


class Dramatiq(Queued):
    name = "dramatiq"
    label = "Dramatiq (delay)"
    kind = "dramatiq-worker"
    no_scheduler = (
        "no scheduler process: the worker's consumer moves due messages off the delay "
        "queue — the worker crash is the one"
    )

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        import alternatives

        self.actor = alternatives.dramatiq_actor(ctx.redis.url)

    def send(self, rid: str, due: float) -> None:
        self.actor.send_with_options(args=(rid,), delay=max(0, int((due - time.time()) * 1000)))

    def queue_sample(self) -> dict[str, float]:
        r = self.redis
        return {
            "queue": float(r.llen("dramatiq:bench.DQ") + r.llen("dramatiq:bench")),
            "held": float(r.hlen("dramatiq:bench.DQ.msgs") + r.hlen("dramatiq:bench.msgs")),
        }

    def idle(self) -> bool:
        return not sum(self.queue_sample().values())

    def pending(self) -> int:
        return int(
            self.redis.hlen("dramatiq:bench.DQ.msgs") + self.redis.hlen("dramatiq:bench.msgs")
        )

    def enqueued(self, n: int) -> tuple[int | None, int | None]:
        # a delayed message is enqueued twice: on the delay queue, then on the queue when due
        return (
            self.keyspace.get("dramatiq:bench.DQ.msgs", "hset")
            + self.keyspace.get("dramatiq:bench.msgs", "hset"),
            2 * n,
        )

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            with contextlib.suppress(Exception):
                self.actor.broker.close()


class APScheduler(System):
    name = "apscheduler"

    def __init__(self, ctx: Context, grace: str = "default") -> None:
        super().__init__(ctx)
        self.grace = grace
        self.label = (
            "APScheduler (misfire grace 1 s, default)"
            if grace == "default"
            else "APScheduler (misfire grace off)"
        )
        self.worker: Any = None
        self.stats = self.logs / "stats.json"
        self.add_s = math.nan
        self.rss_before = math.nan
        self.rss_after = math.nan
        self.killed_counts: dict[str, int] = {}

    def _runner(self, n: int, due: float, prefix: str = "r-") -> Any:
        self.stats.unlink(missing_ok=True)  # the counts are the new runner's
        process = spawn(
            [
                sys.executable,
                str(HERE / "alternatives.py"),
                "apscheduler",
                "--n",
                str(n),
                "--due",
                repr(due),
                "--grace",
                self.grace,
                "--threads",
                str(self.ctx.args.threads),
                "--prefix",
                prefix,
                "--stats",
                str(self.stats),
            ],
            env={"BENCH_PROVIDER_URL": self.ctx.provider.url},
            pipe=True,
            log=self.logs / "runner.log",
        )
        self.processes.append(process)
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        if not line.startswith("READY"):
            raise RuntimeError(f"APScheduler runner did not start: {line!r}")
        _, add_s, before, after = line.split()
        self.add_s, self.rss_before, self.rss_after = float(add_s), float(before), float(after)
        return process

    def start(self) -> None:
        self._runner(1, time.time(), prefix="warm-up-")  # same as a real one: one job, now
        if not wait_until(lambda: self.ctx.provider.stats()["count"] >= 1, timeout=60):
            raise RuntimeError("the runner never ran the warm-up reminder")
        stop(self.processes.pop())
        self.ctx.provider.reset()
        self.keyspace.counts.clear()

    def schedule(self, due: float, n: int) -> float:
        self.worker = self._runner(n, due)
        return self.add_s

    def worker_pids(self) -> list[int]:
        return [self.worker.pid] if self.worker is not None else []

    def kill_worker(self) -> None:
        before = self.counts()
        kill_group(self.worker)
        self.worker.wait(timeout=10)
        self.killed_counts = before
        self.processes.remove(self.worker)
        # the memory job store died with the process: the restarted app has nothing to run
        self.worker = self._runner(0, time.time())

    def kill_scheduler(self) -> None:
        """The scheduler is the process that runs the jobs: the same kill as the worker's."""
        self.kill_worker()

    def counts(self) -> dict[str, int]:
        try:
            return dict(json.loads(self.stats.read_text()))
        except (OSError, ValueError):
            return {}

    def idle(self) -> bool:
        counts = self.counts()
        done = counts.get("executed", 0) + counts.get("missed", 0) + counts.get("errors", 0)
        return bool(counts) and not counts.get("pending") and done >= counts.get("scheduled", 0)

    def pending(self) -> int:
        return int(self.counts().get("pending", 0))

    def finish(self, result: Burst) -> None:
        stop(self.worker)
        self.processes.remove(self.worker)
        self.worker = None
        counts = self.counts()  # of the runner last started (after a crash: the new one)
        if self.killed_counts:
            killed = self.killed_counts
            result.notes.append(
                f"killed runner (≤ 0.5 s before): {killed.get('executed', 0):,} executed, "
                f"{killed.get('missed', 0):,} skipped as misfired, {killed.get('pending', 0):,} "
                "not yet due in its job store; the rest of its jobs sat in its thread pool's "
                "queue — all gone with the process"
            )
            return
        if counts.get("missed"):
            result.notes.append(f"{counts['missed']:,} jobs skipped as misfired")
        if counts.get("errors"):
            result.notes.append(f"{counts['errors']:,} jobs raised")


def make(ctx: Context, name: str) -> list[tuple[str, Callable[[], System]]]:
    """(key, factory) for each configuration of system ``name``."""
    if name == "cartflow":
        return [("cartflow", lambda: Cartflow(ctx))]
    if name == "celery":
        return [("celery", lambda: Celery(ctx))]
    if name == "dramatiq":
        return [("dramatiq", lambda: Dramatiq(ctx))]
    return [
        ("apscheduler", lambda: APScheduler(ctx, "default")),
        ("apscheduler-off", lambda: APScheduler(ctx, "off")),
    ]


# -- burst and crash -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """One burst: ``n`` reminders due at one instant T, and what happens around T."""

    n: int
    #: SIGKILL ``"worker"`` or ``"scheduler"`` at T + 2 s and start it again (None: no crash).
    crash: str | None = None
    #: Other timers pending far ahead, loaded before scheduling (cartflow, scale part).
    pending: int = 0


def ordered_indices(n: int, share: float) -> list[int]:
    """``floor(n × share)`` reminder indices spread evenly over ``range(n)``."""
    return [i for i in range(n) if math.floor((i + 1) * share) > math.floor(i * share)]


def burst(factory: Callable[[], System], plan: Plan, args: argparse.Namespace) -> Burst:
    system = factory()
    n = plan.n
    result = Burst(system=system.label, expected=n)
    drain = args.crash_drain if plan.crash else args.drain
    try:
        if plan.crash == "scheduler" and system.no_scheduler:
            return Burst(system=system.label, expected=n, na=system.no_scheduler)
        system.start()
        if plan.pending:
            assert isinstance(system, Cartflow), "only cartflow has a timers table to fill"
            log(f"{system.label}: loading {plan.pending:,} timers pending far ahead")
            result.bytes_per_pending, result.load_s = system.preload(plan.pending)
            result.other_pending = plan.pending
        due = time.time() + system.lead(n)
        ordered = ordered_indices(n, args.orders)
        log(
            f"{system.label}: {n:,} reminders due at +{due - time.time():.0f} s"
            + (f", {len(ordered):,} orders at due {args.order_at:+g} s" if ordered else "")
            + (f" ({plan.crash} SIGKILLed at due + 2 s)" if plan.crash else "")
        )
        result.setup_s = system.schedule(due, n)
        if time.time() > due:
            raise RuntimeError(f"scheduling took {result.setup_s:.0f} s, past the due instant")
        provider = system.ctx.provider
        durable: dict[str, float] = {}

        def place_orders() -> None:
            durable.update(system.order(ordered))

        def crash() -> None:
            before = provider.stats()["unique"]
            (system.kill_worker if plan.crash == "worker" else system.kill_scheduler)()
            result.notes.append(f"{plan.crash} SIGKILL at due + 2 s with {before:,} sent")

        timeline: list[tuple[float, Callable[[], None]]] = []
        if ordered:
            timeline.append((due + args.order_at, place_orders))
        if plan.crash:
            timeline.append((due + 2, crash))
        with Sampler(system.sample) as sampler:
            for moment, action in sorted(timeline, key=lambda item: item[0]):
                sleep_until(moment)
                action()
            sleep_until(due)
            done = wait_until(
                lambda: provider.stats()["unique"] >= n or system.idle(),
                timeout=due + drain - time.time(),
                interval=0.25,
            )
            if done:
                time.sleep(args.settle)  # late duplicates
            else:
                result.notes.append(f"drain timeout: {drain:.0f} s after due")
                result.drained_out = drain
        result.rss_peak = sampler.peak("rss")
        result.queue_peak = sampler.peak("held")
        count(result, system, provider.dump(), due, durable)
        if done and result.sent < result.expected:
            result.notes.append(f"nothing left to send after {time.time() - due:.0f} s")
        result.enqueued, result.needed = system.enqueued(n)
        if system.keyspace.error:
            result.notes.append(f"queue counter failed: {system.keyspace.error}")
        if ordered and not isinstance(system, Cartflow):
            result.notes.append("the task does not look for orders")
        system.finish(result)
        log(
            f"{system.label}: sent {result.sent:,}/{result.expected:,}, {result.rate:,.0f}/s, "
            f"last +{result.last_after_due:.1f} s, dup {result.duplicates}, lost {result.lost}, "
            f"sent after order {result.sent_after_order}/{result.ordered}; "
            + "; ".join(result.notes)
        )
        return result
    except Exception as exc:
        return failed(Burst, system.label, exc, expected=n)
    finally:
        system.stop()


def count(
    result: Burst,
    system: System,
    records: list[tuple[str, str, float]],
    due: float,
    durable: dict[str, float],
) -> None:
    """Fill ``result`` from the provider's records: reminders due (all but the ordered
    ones) sent, lost, twice; ordered ones sent after their order was durable."""
    n = result.expected
    expected = system.expected(n) - set(durable)
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for ref, _key, at in records:
        first.setdefault(ref, at)
        last[ref] = at
    times = sorted(first[r] for r in expected if r in first)
    result.expected = len(expected)
    result.ordered = len(durable)
    result.sent_after_order = sum(1 for r, t in durable.items() if r in last and last[r] > t)
    result.sent_before_order = sum(1 for r, t in durable.items() if r in first and first[r] <= t)
    result.total = len(records)
    result.sent = len(times)
    result.pending = min(len(expected) - result.sent, system.pending())
    result.lost = len(expected) - result.sent - result.pending
    result.duplicates = len(records) - len(first)
    result.unexpected = len(set(first) - expected - set(durable))
    result.early = sum(1 for t in times if t < due - 0.001)
    if times:
        skews = [t - due for t in times]
        result.last_after_due = times[-1] - due
        result.skew_p50, result.skew_p99 = percentile(skews, 0.5), percentile(skews, 0.99)
        if len(times) > 1 and times[-1] > times[0]:
            result.rate = (len(times) - 1) / (times[-1] - times[0])
    result.rate_range = (result.rate, result.rate)
    result.last_range = (result.last_after_due, result.last_after_due)
    if result.early:
        result.notes.append(f"{result.early:,} sent before due")
    if result.unexpected:
        result.notes.append(f"{result.unexpected:,} unexpected sends")
    if result.sent_before_order:
        result.notes.append(
            f"{result.sent_before_order:,} ordered carts' reminders sent before the order's 202"
        )


def repeated(
    factory: Callable[[], System], plan: Plan, args: argparse.Namespace, runs: int
) -> Burst:
    """``runs`` bursts of one configuration, one after another, as one row: medians of the
    figures, min/max of sends/s and last send after due, the counts (duplicates, lost, sent
    after order) summed over the runs."""
    results = [burst(factory, plan, args) for _ in range(runs)]
    good = [r for r in results if not r.error and not r.na]
    if len(good) < len(results) or runs == 1:
        return next((r for r in results if r.error or r.na), results[0])

    def median(values: list[float]) -> float:
        known = [v for v in values if not math.isnan(v)]
        return statistics.median(known) if known else math.nan

    def spread(values: list[float]) -> tuple[float, float]:
        known = [v for v in values if not math.isnan(v)]
        return (min(known), max(known)) if known else (math.nan, math.nan)

    row = Burst(system=good[0].system, expected=good[0].expected, runs=runs)
    for name in ("rate", "last_after_due", "skew_p50", "skew_p99", "setup_s", "rss_peak"):
        setattr(row, name, median([getattr(r, name) for r in good]))
    for name in ("sent", "total", "duplicates", "lost", "pending", "early", "unexpected"):
        setattr(row, name, sum(getattr(r, name) for r in good))
    for name in ("ordered", "sent_after_order", "sent_before_order"):
        setattr(row, name, sum(getattr(r, name) for r in good))
    row.expected = sum(r.expected for r in good)
    row.rate_range = spread([r.rate for r in good])
    row.last_range = spread([r.last_after_due for r in good])
    if all(r.enqueued is not None for r in good):
        row.enqueued = sum(r.enqueued or 0 for r in good)
        row.needed = sum(r.needed or 0 for r in good)
    notes = ["; ".join(r.notes) for r in good]
    row.notes = [f"{runs} runs, counts summed"] + (
        notes[:1]
        if len(set(notes)) == 1 and notes[0]
        else [f"run {k}: {text}" for k, text in enumerate(notes, 1) if text]
    )
    return row


# -- ingest and memory ---------------------------------------------------------------------------
def series(samples: list[tuple[float, int]], start: float, points: int = 10) -> str:
    """A few (t, backlog) points, evenly spread, as ``t s: backlog``."""
    if not samples:
        return ""
    step = max(1, len(samples) // points)
    chosen = samples[::step]
    if chosen[-1] != samples[-1]:
        chosen.append(samples[-1])
    return ", ".join(f"{t - start:.0f} s: {b:,}" for t, b in chosen)


def cartflow_ingest(
    ctx: Context, m: int, args: argparse.Namespace, single: bool
) -> tuple[Ingest, Memory]:
    system = Cartflow(ctx)
    result = Ingest(system=system.label, events=m)
    memory = Memory(system=system.label)
    try:
        system.start()
        log(f"cartflow: ingest {m:,} events in batches of {BATCH:,}")
        zone = zone_where_it_is(14.0, datetime.now(UTC))
        latencies: list[float] = []
        backlog: list[tuple[float, int]] = []
        accepted = 0

        def probe() -> dict[str, float]:
            applied, stored = system.applied()
            backlog.append((time.time(), stored - applied))
            return {"applied": applied, "stored": stored}

        start = time.time()
        with Sampler(probe, interval=0.5) as sampler:
            for first in range(0, m, BATCH):
                now = datetime.now(UTC)
                batch = [
                    system.event(f"i-{i}", now, zone) for i in range(first, min(m, first + BATCH))
                ]
                latencies.append(system.post(batch))
                accepted += len(batch)
            accepted_at = time.time()
            done = wait_until(
                lambda: system.applied()[0] >= m, timeout=args.apply_timeout, interval=0.5
            )
            finished = time.time()
        result.accept_rate = accepted / (accepted_at - start)
        result.batch_p50_ms = percentile(latencies, 0.5) * 1000
        result.batch_p99_ms = percentile(latencies, 0.99) * 1000
        result.applied = system.applied()[0]
        result.applied_rate = result.applied / (finished - start)
        result.backlog_max = max((b for _, b in backlog), default=0)
        result.backlog_series = series(backlog, start)
        if done:
            result.drained_after = finished - accepted_at
        else:
            result.notes.append(
                f"apply timeout: {result.applied:,} of {m:,} applied after "
                f"{args.apply_timeout:.0f} s"
            )
        if sampler.errors:
            result.notes.append(f"probe errors: {sampler.errors[0]}")
        result.redriven = system.redriven()
        result.apply_messages = system.keyspace.get("dramatiq:cartflow.events.msgs", "hset")
        result.apply_needed = math.ceil(m / BATCH)
        log(
            f"cartflow: accepted {result.accept_rate:,.0f}/s, applied {result.applied_rate:,.0f}/s,"
            f" backlog max {result.backlog_max:,}, re-driven {result.redriven:,}"
        )
        if single:
            single_posts(system, zone, args, result)
            if not wait_until(lambda: len(set(system.applied())) == 1, timeout=args.apply_timeout):
                memory.notes.append("single-POST events not all applied before measuring")
        cartflow_memory(system, memory)
        return result, memory
    except Exception as exc:
        error = failed(Ingest, system.label, exc, events=m)
        return error, Memory(system=system.label, error=error.error)
    finally:
        system.stop()


def single_posts(system: Cartflow, zone: str, args: argparse.Namespace, result: Ingest) -> None:
    """Open loop: event k is due to leave at start + k / rate; latency counts from then."""
    total = int(args.single_rate * args.single_seconds)
    log(f"cartflow: {total:,} single-event POSTs offered at {args.single_rate:,.0f}/s")
    counter = itertools.count()
    latencies: list[float] = []
    errors: list[str] = []
    start = time.time() + 0.5
    deadline = start + args.single_seconds + 30

    def client() -> None:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{system.port}",
            timeout=30,
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as http:
            while (k := next(counter)) < total:
                planned = start + k / args.single_rate
                sleep_until(planned)
                if time.time() > deadline:
                    return
                event = system.event(f"s-{k}", datetime.now(UTC), zone)
                try:
                    response = http.post("/v1/events", json=event)
                    if response.status_code == 202:
                        latencies.append(time.time() - planned)
                    else:
                        errors.append(str(response.status_code))
                except httpx.HTTPError as exc:
                    errors.append(type(exc).__name__)

    api_cpu, own_cpu = cpu_seconds(system.api.pid), time.process_time()
    with ThreadPoolExecutor(args.single_clients) as pool:
        for future in [pool.submit(client) for _ in range(args.single_clients)]:
            future.result()
    ended = time.time()
    requests = max(1, len(latencies) + len(errors))
    result.single_api_cpu_ms = 1000 * (cpu_seconds(system.api.pid) - api_cpu) / requests
    result.single_client_cpu_ms = 1000 * (time.process_time() - own_cpu) / requests
    result.single_offered = args.single_rate
    result.single_sent = len(latencies)
    result.single_rate = len(latencies) / (ended - start)
    result.single_p50_ms = percentile(latencies, 0.5) * 1000
    result.single_p99_ms = percentile(latencies, 0.99) * 1000
    result.single_errors = len(errors)
    if errors:
        result.notes.append(f"single POST errors: {Counter(errors).most_common(3)}")
    if len(latencies) + len(errors) < total:
        result.notes.append(
            f"{total - len(latencies) - len(errors):,} single POSTs never left "
            "(30 s past the offered window)"
        )
    log(
        f"cartflow: single POSTs {result.single_rate:,.0f}/s, p50 {result.single_p50_ms:.0f} ms, "
        f"p99 {result.single_p99_ms:.0f} ms, errors {len(errors)}; CPU per request: API "
        f"{result.single_api_cpu_ms:.2f} ms, load generator {result.single_client_cpu_ms:.2f} ms"
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process ``pid`` has used (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cartflow_memory(system: Cartflow, memory: Memory) -> None:
    system.sql("VACUUM ANALYZE")
    memory.pending = int(
        system.sql(
            "SELECT count(*) FROM carts c JOIN timers t ON t.kind = 'cart_idle' AND t.ref = c.id"
        )[0][0]
    )
    memory.tables = [
        (str(name), int(size))
        for name, size in system.sql(
            "SELECT relname, pg_total_relation_size(relid) FROM pg_stat_user_tables ORDER BY 2 DESC"
        )
    ]
    total = sum(size for _, size in memory.tables)
    memory.store = "PostgreSQL"
    memory.store_bytes = total / memory.pending if memory.pending else math.nan
    memory.worker_rss = float(rss_bytes(system.worker.pid))
    memory.other_rss = (
        f"api {rss_bytes(system.api.pid) / MiB:,.0f} MiB, "
        f"scheduler {rss_bytes(system.schedulers[0].pid) / MiB:,.0f} MiB; "
        f"Redis used_memory {system.redis.info('memory')['used_memory'] / MiB:,.1f} MiB"
    )
    log(
        f"cartflow: {memory.pending:,} pending carts, {total / MiB:,.1f} MiB on disk, "
        f"{memory.store_bytes:,.0f} B each, worker RSS {memory.worker_rss / MiB:,.0f} MiB"
    )


def alternative_ingest(factory: Callable[[], System], m: int) -> tuple[Ingest, Memory]:
    """One producer schedules ``m`` reminders 30 min ahead; then memory with them pending."""
    system = factory()
    result = Ingest(system=system.label, events=m)
    memory = Memory(system=system.label)
    try:
        system.start()
        log(f"{system.label}: scheduling {m:,} reminders 30 min ahead")
        before_rss = float(sum(rss_bytes(pid) for pid in system.worker_pids()))
        before_redis = int(system.redis.info("memory")["used_memory"])
        seconds = system.schedule(time.time() + AHEAD.total_seconds(), m)
        result.accept_rate = m / seconds
        if isinstance(system, APScheduler):
            # measured by the runner around its own add_job calls
            before_rss, after_rss = system.rss_before, system.rss_after
        else:
            # the worker pulls what it holds in memory (Celery: every eta task;
            # Dramatiq: up to 1,000 × threads delayed messages): wait until that settles
            last: list[float] = []

            def settled() -> bool:
                last.append(sum(system.queue_sample().values()))
                return len(last) > 6 and len(set(last[-6:])) == 1

            wait_until(settled, timeout=120, interval=0.5)
            after_rss = float(sum(rss_bytes(pid) for pid in system.worker_pids()))
        after_redis = int(system.redis.info("memory")["used_memory"])
        memory.pending = m
        memory.worker_rss = after_rss
        memory.worker_rss_delta = (after_rss - before_rss) / m
        if isinstance(system, APScheduler):
            memory.store = "process memory (job store)"
            memory.store_bytes = memory.worker_rss_delta
        else:
            memory.store = "Redis"
            memory.store_bytes = (after_redis - before_redis) / m
            memory.other_rss = f"Redis used_memory {after_redis / MiB:,.1f} MiB"
        log(
            f"{system.label}: {result.accept_rate:,.0f}/s accepted; worker RSS "
            f"{after_rss / MiB:,.0f} MiB (+{memory.worker_rss_delta:,.0f} B each), "
            f"{memory.store} {memory.store_bytes:,.0f} B each"
        )
        return result, memory
    except Exception as exc:
        error = failed(Ingest, system.label, exc, events=m)
        return error, Memory(system=system.label, error=error.error)
    finally:
        system.stop()


# -- report --------------------------------------------------------------------------------------
def num(value: float | None, fmt: str = ",.0f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value, fmt)


def ratio(a: float, b: float, higher_better: bool) -> str:
    if any(math.isnan(x) for x in (a, b)) or b == 0 or a == 0:
        return "–"
    value = a / b
    return (f"×{value:.2f}" if value >= 0.1 else f"×{value:.2g}") + (
        " (better)" if (value > 1) == higher_better and value != 1 else ""
    )


def figure(value: float, spread: tuple[float, float], runs: int, fmt: str = ",.0f") -> str:
    """``value``, and ``(min–max)`` after it when it is the median of several runs."""
    if runs == 1 or math.isnan(spread[0]):
        return num(value, fmt)
    return f"{num(value, fmt)} ({num(spread[0], fmt)}–{num(spread[1], fmt)})"


def last_send(r: Burst) -> str:
    """Last send after due; "> drain" when the drain ran out with reminders pending."""
    if r.pending and not math.isnan(r.drained_out):
        return f"> {r.drained_out:.0f} ({r.pending:,} pending)"
    return figure(r.last_after_due, r.last_range, r.runs, ".1f")


def burst_table(results: list[Burst], title: str, *, recover: bool = False) -> str:
    last = "last send after due s" + (" (time to recover)" if recover else "")
    lines = [
        f"| {title} | sends/s | {last} | skew p50 s | skew p99 s | duplicates | lost "
        "| sent after order | orders | pending at end | queue messages / needed "
        "| worker RSS peak MiB | scheduling s | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        if r.error or r.na:
            why = f"failed: {r.error}" if r.error else f"n/a: {r.na}"
            lines.append(f"| {r.system} | {why} |||||||||||||")
            continue
        queue = f"{r.enqueued:,} / {r.needed:,}" if r.enqueued is not None else "– (in process)"
        lines.append(
            f"| {r.system} | {figure(r.rate, r.rate_range, r.runs)} | {last_send(r)} "
            f"| {num(r.skew_p50, '.2f')} | {num(r.skew_p99, '.2f')} | {r.duplicates:,} "
            f"| {r.lost:,} | {r.sent_after_order:,} | {r.ordered:,} | {r.pending:,} | {queue} "
            f"| {num(r.rss_peak / MiB)} | {num(r.setup_s, '.1f')} "
            f"| {'; '.join(r.notes)} |"
        )
    base = next((r for r in results if r.system == "cartflow" and not r.error), None)
    others = [r for r in results if r is not base and not r.error and not r.na]
    if base and others:
        lines += [
            "",
            "| cartflow vs | sends/s | last send after due | skew p99 | worker RSS |",
            "|---|---:|---:|---:|---:|",
        ]
        for r in others:
            lines.append(
                f"| {r.system} | {ratio(base.rate, r.rate, True)} "
                f"| {ratio(base.last_after_due, r.last_after_due, False)} "
                f"| {ratio(base.skew_p99, r.skew_p99, False)} "
                f"| {ratio(base.rss_peak, r.rss_peak, False)} |"
            )
    return "\n".join(lines)


def scale_table(results: list[Burst]) -> str:
    lines = [
        "| other timers pending | sends/s | vs fewest pending | last send after due s "
        "| skew p50 s | skew p99 s | duplicates | lost | sent after order | orders "
        "| timers bytes per pending timer | load s | notes |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    base = next((r for r in results if not r.error), None)
    for r in results:
        if r.error:
            lines.append(f"| {r.system} | failed: {r.error} ||||||||||||")
            continue
        flat = ratio(r.rate, base.rate, True).removesuffix(" (better)") if base else "–"
        lines.append(
            f"| {r.other_pending:,} | {num(r.rate)} | {flat} | {last_send(r)} "
            f"| {num(r.skew_p50, '.2f')} | {num(r.skew_p99, '.2f')} | {r.duplicates:,} "
            f"| {r.lost:,} | {r.sent_after_order:,} | {r.ordered:,} "
            f"| {num(r.bytes_per_pending) if r.other_pending else '–'} "
            f"| {num(r.load_s, '.1f')} | {'; '.join(r.notes)} |"
        )
    return "\n".join(lines)


def ingest_table(results: list[Ingest]) -> str:
    lines = [
        "| system | reminders | accepted/s (one client) | batch p50 / p99 ms | applied/s "
        "| backlog max | drained after last 202 s | apply messages / needed | events re-driven "
        "| notes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        if r.error:
            lines.append(f"| {r.system} | failed: {r.error} |||||||||")
            continue
        cf = r.system == "cartflow"
        messages = (
            f"{r.apply_messages:,} / {r.apply_needed:,}" if r.apply_messages is not None else "–"
        )
        lines.append(
            f"| {r.system} | {r.events:,} | {num(r.accept_rate)} "
            f"| {num(r.batch_p50_ms)} / {num(r.batch_p99_ms)} "
            f"| {num(r.applied_rate) if cf else '– (stored on accept)'} "
            f"| {f'{r.backlog_max:,}' if cf else '–'} | {num(r.drained_after, '.1f')} "
            f"| {messages} | {f'{r.redriven:,}' if cf else '–'} | {'; '.join(r.notes)} |"
        )
    base = next((r for r in results if r.system == "cartflow" and not r.error), None)
    others = [r for r in results if r is not base and not r.error]
    if base and others:
        lines += [
            "",
            "| cartflow vs | accepted/s | applied/s vs their accepted/s |",
            "|---|---:|---:|",
        ]
        lines += [
            f"| {r.system} | {ratio(base.accept_rate, r.accept_rate, True)} "
            f"| {ratio(base.applied_rate, r.accept_rate, True)} |"
            for r in others
        ]
    if base and base.backlog_series:
        lines += [
            "",
            f"cartflow apply backlog (stored − applied) over time: {base.backlog_series}.",
        ]
    if base and not math.isnan(base.single_rate):
        lines += [
            "",
            "| cartflow single-event POSTs | offered/s | achieved/s | accepted | p50 ms | p99 ms "
            "| errors | API CPU ms/request | load generator CPU ms/request |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| one event per request | {num(base.single_offered)} | {num(base.single_rate)} "
            f"| {base.single_sent:,} | {num(base.single_p50_ms)} | {num(base.single_p99_ms)} "
            f"| {base.single_errors:,} | {base.single_api_cpu_ms:.2f} "
            f"| {base.single_client_cpu_ms:.2f} |",
        ]
    return "\n".join(lines)


def memory_table(results: list[Memory]) -> str:
    lines = [
        "| system | pending reminders | worker RSS MiB | worker RSS per pending B | held in "
        "| bytes per pending | other |",
        "|---|---:|---:|---:|---|---:|---|",
    ]
    for r in results:
        if r.error:
            lines.append(f"| {r.system} | failed: {r.error} ||||||")
            continue
        lines.append(
            f"| {r.system} | {r.pending:,} | {num(r.worker_rss / MiB)} | {num(r.worker_rss_delta)} "
            f"| {r.store} | {num(r.store_bytes)} | {r.other_rss} |"
        )
    base = next((r for r in results if r.system == "cartflow" and not r.error), None)
    if base and base.tables:
        total = sum(size for _, size in base.tables)
        lines += ["", "| cartflow table | MiB | bytes per pending cart |", "|---|---:|---:|"]
        lines += [
            f"| {name} | {size / MiB:,.1f} | {size / base.pending:,.0f} |"
            for name, size in base.tables
            if size
        ]
        lines.append(f"| total | {total / MiB:,.1f} | {total / base.pending:,.0f} |")
    return "\n".join(lines)


def versions() -> str:
    found = []
    for package in ("cartflow", "celery", "kombu", "dramatiq", "APScheduler", "redis", "httpx"):
        try:
            found.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{package} not installed")
    return ", ".join(found)


def machine(ctx: Context) -> str:
    cpu = re.search(r"model name\s*: (.*)", Path("/proc/cpuinfo").read_text())
    return (
        f"{os.cpu_count()} cores ({cpu[1] if cpu else platform.machine()}), Linux "
        f"`{platform.release()}`; Python {platform.python_version()}, PostgreSQL "
        f"{ctx.pg.version()} (throwaway, fsync=off), Redis {ctx.redis.version()} (no "
        f"persistence); {versions()}"
    )


def report(
    ctx: Context, argv: list[str], load_before: float, elapsed: float, bodies: list[str]
) -> str:
    args = ctx.args
    return "\n".join(
        [
            SECTION,
            "",
            f"Measured {datetime.now(UTC):%Y-%m-%d} with `.venv/bin/python bench/reminders.py "
            f"{shlex.join(argv)}` ({elapsed / 60:.0f} min in all).",
            f"Machine: {machine(ctx)}. 1-minute load average before the run {load_before:.2f} "
            "(the machine is shared: other work skews the numbers).",
            "",
            f"Everyone sends to the same fake provider (bench/fakeprovider.py: asyncio HTTP, "
            f"200 at once) with {args.threads} worker threads per worker process, one process "
            f"(cartflow: {args.workers}, with {args.schedulers} `cartflow scheduler`; the "
            "schedulers part sets its own). cartflow runs "
            "as in production: `cartflow api`, `cartflow worker`, `cartflow scheduler`, default "
            f"settings but the timer lease ({args.lease:g} s), on a PostgreSQL and a Redis of "
            "their own; its reminder is real work (idle check, journey, consent, quiet hours, "
            "caps, template render, delivery record) while the alternatives only POST "
            "(bench/alternatives.py: Celery `eta`, threads pool, default acks; Dramatiq `delay`, "
            "default middleware; APScheduler `date` jobs in a memory job store). Send times are "
            "the provider's arrival times; due is T. Duplicates: the same journey step "
            "(cartflow) or reminder id sent more than once. Lost: due but not received within "
            f"the drain time ({args.drain:g} s burst, {args.crash_drain:g} s crash, then "
            f"{args.settle:g} s more for late duplicates). Queue messages: counted by Redis "
            "keyspace notifications; needed is, for cartflow, 2 timers per reminder (idle check, "
            f"then the push step) carried {FIRE_BATCH} to a message — 2N/{FIRE_BATCH} at best, "
            "each tick's last message of a kind may be partial — for Dramatiq 2 per reminder "
            "(delay queue, then the queue), 1 for Celery. Scheduling s: "
            "cartflow from the first POST until every event is applied and every idle timer "
            "exists (due T is set after timing a warm-up batch), the others the producer's calls. "
            'Ratios are cartflow ÷ the other ("better" where cartflow wins).',
            "",
            f"Orders: {args.orders:.0%} of each burst's carts are paid for at due "
            f"{args.order_at:+g} s, after their idle timers exist. cartflow gets an "
            "`order.completed` per cart through `POST /v1/events` (batches of 1,000); *sent "
            "after order* counts those carts' reminders that reached the provider after the "
            "202 for their order (target 0); they are neither expected nor lost. A bare "
            "Celery, Dramatiq or APScheduler reminder has no order state and its task does "
            "not look for one — the cheapest honest version of the naive design — so its "
            "count is every ordered cart's reminder. "
            + (
                f"Burst rows are the median of {args.runs} runs (min–max in brackets); their "
                "counts are summed over the runs."
                if args.runs > 1
                else ""
            ),
            "",
            *bodies,
        ]
    )


def write(text: str) -> None:
    write_section(SECTION, text)


# -- main ----------------------------------------------------------------------------------------
#: ``--quick``: every part, every system, small sizes (under 5 minutes on 2 cores). Flags
#: given on the command line still win.
QUICK: dict[str, Any] = {
    "reminders": 200,
    "events": 1000,
    "crash_reminders": 200,
    "part_reminders": 200,
    "pending_sizes": "0,100000",
    "lead_floor": 3.0,
    "drain": 60.0,
    # cartflow's recovery from a worker SIGKILL takes minutes (the queue lease): quick
    # reports what is still pending after this instead of waiting for it
    "crash_drain": 20.0,
    "settle": 1.0,
    "single_rate": 100.0,
    "single_seconds": 2.0,
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="every part at small sizes (under 5 min)"
    )
    parser.add_argument("--reminders", type=int, default=20_000, help="burst size N")
    parser.add_argument("--events", type=int, default=100_000, help="ingest size M")
    parser.add_argument("--crash-reminders", type=int, help="crash size (default: --reminders)")
    parser.add_argument(
        "--part-reminders", type=int, default=2000, help="burst size of the schedulers, scale parts"
    )
    parser.add_argument(
        "--pending-sizes",
        default="0,1000000",
        help="scale: other timers pending, comma-separated (10000000 too if you have the time)",
    )
    parser.add_argument(
        "--scheduler-counts", default="1,2", help="schedulers part: scheduler processes per run"
    )
    parser.add_argument("--runs", type=int, default=1, help="burst, schedulers: runs each (median)")
    parser.add_argument(
        "--orders", type=float, default=0.05, help="share of the carts ordered before due"
    )
    parser.add_argument(
        "--order-at", type=float, default=-2.0, help="s after due the orders are posted"
    )
    parser.add_argument(
        "--schedulers", type=int, default=1, help="cartflow scheduler processes (parts but one)"
    )
    parser.add_argument("--only", default=",".join(PARTS), help="parts, comma-separated")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="systems, comma-separated")
    parser.add_argument("--threads", type=int, default=8, help="worker threads, everyone")
    parser.add_argument(
        "--workers", type=int, default=1, help="cartflow worker processes (the others: 1)"
    )
    parser.add_argument("--lease", type=float, default=60.0, help="CARTFLOW_TIMER_LEASE")
    parser.add_argument("--lead", type=float, help="s from scheduling start to due (default: by N)")
    parser.add_argument(
        "--lead-floor",
        type=float,
        default=10.0,
        help="default lead: this + N/1000 s (cartflow: + 5 s + its measured scheduling time)",
    )
    parser.add_argument("--drain", type=float, default=1200.0, help="burst: s after due to wait")
    parser.add_argument("--crash-drain", type=float, default=900.0, help="crash: s after due")
    parser.add_argument("--settle", type=float, default=5.0, help="s to wait for late duplicates")
    parser.add_argument("--apply-timeout", type=float, default=2400.0, help="ingest: s to apply")
    parser.add_argument("--single-rate", type=float, default=500.0, help="single POSTs offered/s")
    parser.add_argument("--single-seconds", type=float, default=10.0)
    parser.add_argument("--single-clients", type=int, default=32)
    parser.add_argument("--keep", action="store_true", help="keep the logs' temp directory")
    parser.add_argument("--write", action="store_true", help=f"update {BENCHMARKS.name}")
    if parser.parse_args(argv).quick:
        parser.set_defaults(**QUICK)
    args = parser.parse_args(argv)
    args.pending_sizes = [int(size) for size in str(args.pending_sizes).split(",") if size]
    args.scheduler_counts = [int(k) for k in str(args.scheduler_counts).split(",") if k]
    args.crash_reminders = args.crash_reminders or args.reminders
    args.parts = [p for p in args.only.split(",") if p]
    args.system_names = [s for s in args.systems.split(",") if s]
    for part in args.parts:
        if part not in PARTS:
            parser.error(f"unknown part {part!r}; choose from {', '.join(PARTS)}")
    for name in args.system_names:
        if name not in SYSTEMS:
            parser.error(f"unknown system {name!r}; choose from {', '.join(SYSTEMS)}")
    return args


@contextlib.contextmanager
def workspace(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cartflow-reminders-"))
    try:
        yield path
    finally:
        if keep:
            log(f"logs kept in {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def main() -> int:
    argv = sys.argv[1:]
    args = parse(argv)
    exit_on_sigterm()
    load_before = os.getloadavg()[0]
    started = time.time()
    sys.path.insert(0, str(HERE))  # bench/alternatives.py for the producers
    log(f"load average before: {load_before:.2f}")
    with contextlib.ExitStack() as stack:
        workdir = stack.enter_context(workspace(args.keep))
        pg = stack.enter_context(throwaway_postgres(max_connections=200))
        rd = stack.enter_context(throwaway_redis())
        provider = Provider(workdir / "provider.log")
        stack.callback(provider.close)
        ctx = Context(args, pg, rd, provider, workdir)
        factories = [f for name in args.system_names for f in make(ctx, name)]
        bodies: list[str] = []
        problems = 0
        if "burst" in args.parts:
            plan = Plan(args.reminders)
            results = [repeated(f, plan, args, args.runs) for _, f in factories]
            problems += sum(1 for r in results if r.error)
            runs = f" (median of {args.runs} runs, min–max in brackets)" if args.runs > 1 else ""
            bodies += [
                f"### Burst: {args.reminders:,} reminders due at one instant{runs}",
                "",
                burst_table(results, "system"),
                "",
            ]
        if "ingest" in args.parts or "memory" in args.parts:
            ingests: list[Ingest] = []
            memories: list[Memory] = []
            for key, f in factories:
                if key == "apscheduler-off":
                    continue  # scheduling and memory do not depend on the grace time
                if key == "cartflow":
                    ing, mem = cartflow_ingest(ctx, args.events, args, "ingest" in args.parts)
                else:
                    ing, mem = alternative_ingest(f, args.events)
                    ing.system = mem.system = ing.system.replace(
                        " (misfire grace 1 s, default)", " (memory job store)"
                    )
                ingests.append(ing)
                memories.append(mem)
                problems += bool(ing.error) + bool(mem.error and not ing.error)
            if "ingest" in args.parts:
                bodies += [
                    f"### Scheduling throughput: {args.events:,} reminders",
                    "",
                    ingest_table(ingests),
                    "",
                ]
            if "memory" in args.parts:
                bodies += [
                    f"### Memory: {args.events:,} pending reminders",
                    "",
                    memory_table(memories),
                    "",
                ]
        if "crash" in args.parts:
            plan = Plan(args.crash_reminders, crash="worker")
            results = [burst(f, plan, args) for _, f in factories]
            problems += sum(1 for r in results if r.error)
            bodies += [
                f"### Crash: worker SIGKILLed 2 s after {args.crash_reminders:,} reminders "
                "came due, restarted at once",
                "",
                burst_table(results, "system", recover=True),
                "",
            ]
        if "scheduler-crash" in args.parts:
            plan = Plan(args.crash_reminders, crash="scheduler")
            results = [burst(f, plan, args) for _, f in factories]
            problems += sum(1 for r in results if r.error)
            bodies += [
                f"### Scheduler crash: scheduler SIGKILLed 2 s after {args.crash_reminders:,} "
                "reminders came due, restarted at once",
                "",
                burst_table(results, "system", recover=True),
                "",
                "APScheduler's scheduler is the process that runs its jobs, so its row is the "
                "worker crash again.",
                "",
            ]
        if "cartflow" in args.system_names and "schedulers" in args.parts:
            plan = Plan(args.part_reminders)
            results = [
                repeated(functools.partial(Cartflow, ctx, schedulers=k), plan, args, args.runs)
                for k in args.scheduler_counts
            ]
            problems += sum(1 for r in results if r.error)
            bodies += [
                f"### Burst with {' vs '.join(map(str, args.scheduler_counts))} schedulers: "
                f"cartflow, {args.part_reminders:,} due",
                "",
                burst_table(results, "schedulers"),
                "",
                "Two `cartflow scheduler` processes claim from one `timers` table at once "
                "(`FOR UPDATE SKIP LOCKED`): duplicates must stay 0. The alternatives have no "
                "scheduler process to double.",
                "",
            ]
        if "cartflow" in args.system_names and "scale" in args.parts:
            results = []
            for size in args.pending_sizes:
                row = burst(lambda: Cartflow(ctx), Plan(args.part_reminders, pending=size), args)
                row.system = f"{size:,} pending"
                results.append(row)
            problems += sum(1 for r in results if r.error)
            bodies += [
                f"### Pending scale: cartflow, {args.part_reminders:,} due with other timers "
                "pending far ahead",
                "",
                scale_table(results),
                "",
                f"The other timers are journey steps due {FAR_AHEAD.days} to "
                f"{FAR_AHEAD.days + 30} days ahead, loaded by COPY into the run's `timers` table "
                "before scheduling (then VACUUM ANALYZE, CHECKPOINT; load s). Bytes per pending "
                "timer: the growth of `pg_total_relation_size('timers')` ÷ their number. Target: "
                "sends/s flat (×0.8–1.2) across sizes, ≤ 150 B per pending timer.",
                "",
            ]
        elapsed = time.time() - started
        text = report(ctx, argv, load_before, elapsed, bodies)
        print(text)
        if args.write:
            write(text)
            log(f"wrote {BENCHMARKS}")
    log(f"done in {(time.time() - started) / 60:.1f} min")
    if problems:  # a lost or duplicated reminder is a result; a part that failed is not
        log(f"{problems} measurement(s) failed: see the tables")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
