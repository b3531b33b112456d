"""The three usual ways to run "send this reminder at time T", for bench/reminders.py:
a Celery task with ``eta=T``, a Dramatiq actor sent with ``delay``, and an APScheduler
``date`` job per reminder (memory job store). Each reminder POSTs the same JSON to the
same fake provider (bench/fakeprovider.py) over HTTP with one shared ``httpx.Client``,
as cartflow's webhook provider does; nothing else (no state, consent or quiet-hours
checks), so they are upper bounds of what such a design sends.

Producers (``celery_app``, ``dramatiq_actor``) are imported by the harness; the workers
run as child processes of it::

    python bench/alternatives.py celery-worker   --broker URL --threads 8
    python bench/alternatives.py dramatiq-worker --broker URL --threads 8
    python bench/alternatives.py apscheduler --n N --due UNIX --grace default|off \\
        --threads 8 --stats FILE

with ``BENCH_PROVIDER_URL`` set in their environment. Celery runs its ``threads`` pool
(one process, like the others); ``--without-gossip --without-mingle --without-heartbeat``
only skip cluster chatter between workers. Acknowledgements are the defaults everywhere
(Celery acks a task when it starts; Dramatiq when it is done).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

#: Queue (Celery, Dramatiq) every reminder goes through.
QUEUE = "bench"
_client: httpx.Client | None = None
_client_lock = threading.Lock()


def remind(rid: str) -> None:
    """Send reminder ``rid``: one POST to the provider; an error fails the task."""
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                _client = httpx.Client(timeout=10.0)
    body = {
        "id": rid,
        "idempotency_key": rid,
        "channel": "push",
        "to": f"push-token-{rid}",
        "locale": "en",
        "parts": {"title": "You left something behind", "body": "Your cart is waiting"},
        "metadata": {},
    }
    _client.post(os.environ["BENCH_PROVIDER_URL"], json=body).raise_for_status()


# -- Celery ------------------------------------------------------------------------------------
def celery_app(broker: str) -> tuple[Any, Any]:
    """(app, task) on a Redis broker; results ignored, no result backend."""
    from celery import Celery

    app = Celery("bench", broker=broker)
    app.conf.update(
        task_ignore_result=True,
        task_default_queue=QUEUE,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        enable_utc=True,
    )
    task = app.task(name="bench.remind")(remind)
    return app, task


def celery_worker(args: argparse.Namespace) -> None:
    app, _ = celery_app(args.broker)
    app.worker_main(
        [
            "worker",
            "--pool=threads",
            f"--concurrency={args.threads}",
            "--loglevel=WARNING",
            "-Q",
            QUEUE,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )


# -- Dramatiq ------------------------------------------------------------------------------------
def dramatiq_actor(broker_url: str) -> Any:
    """The ``remind`` actor on a Redis broker with Dramatiq's default middleware."""
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=broker_url)
    dramatiq.set_broker(broker)
    return dramatiq.actor(remind, broker=broker, actor_name="remind", queue_name=QUEUE)


def dramatiq_worker(args: argparse.Namespace) -> None:
    from dramatiq import Worker

    actor = dramatiq_actor(args.broker)
    worker = Worker(actor.broker, worker_threads=args.threads)
    worker.start()
    wait_for_signal()
    worker.stop(timeout=10_000)


# -- APScheduler ---------------------------------------------------------------------------------
def apscheduler(args: argparse.Namespace) -> None:
    """Schedule ``--n`` date jobs at ``--due`` in this process and run them; print
    ``READY <seconds the add_job calls took> <RSS before> <RSS after>``; keep job counts in
    ``--stats`` (JSON, rewritten every 0.5 s) until SIGTERM."""
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler

    counts = {"executed": 0, "missed": 0, "errors": 0, "scheduled": 0, "pending": 0}
    names = {EVENT_JOB_EXECUTED: "executed", EVENT_JOB_MISSED: "missed", EVENT_JOB_ERROR: "errors"}

    def listen(event: Any) -> None:
        counts[names[event.code]] += 1

    def report() -> None:
        counts["pending"] = len(scheduler.get_jobs())
        temporary = Path(f"{args.stats}.tmp")
        temporary.write_text(json.dumps(counts))
        temporary.replace(args.stats)

    scheduler = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(args.threads)}, timezone=UTC
    )
    scheduler.add_listener(listen, EVENT_JOB_EXECUTED | EVENT_JOB_MISSED | EVENT_JOB_ERROR)
    scheduler.start()
    due = datetime.fromtimestamp(args.due, UTC)
    grace: dict[str, Any] = {} if args.grace == "default" else {"misfire_grace_time": None}
    before = rss()
    start = time.perf_counter()
    for i in range(args.n):
        rid = f"{args.prefix}{i}"
        scheduler.add_job(remind, "date", run_date=due, args=[rid], id=rid, **grace)
    took = time.perf_counter() - start
    counts["scheduled"] = args.n
    print(f"READY {took:.6f} {before} {rss()}", flush=True)
    wait_for_signal(every=0.5, tick=report)
    report()
    scheduler.shutdown(wait=False)


def rss() -> int:
    """This process's resident memory in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def wait_for_signal(every: float | None = None, tick: Any = None) -> None:
    """Block until SIGINT or SIGTERM, calling ``tick()`` every ``every`` s meanwhile."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(every):
        tick()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("celery-worker", "dramatiq-worker", "apscheduler"))
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--n", type=int, default=0)
    parser.add_argument("--due", type=float, default=0.0)
    parser.add_argument("--grace", choices=("default", "off"), default="default")
    parser.add_argument("--prefix", default="r-")
    parser.add_argument("--stats", default=os.devnull)
    args = parser.parse_args()
    {
        "celery-worker": celery_worker,
        "dramatiq-worker": dramatiq_worker,
        "apscheduler": apscheduler,
    }[args.what](args)


if __name__ == "__main__":
    sys.exit(main())
