"""Durable-timer dispatch throughput on a real PostgreSQL (architecture §4).

Each size N (default 100k and 1M) gets a ``timers`` table of its own (schema
``cartflow_bench_<N>``, dropped at the end) holding N pending timers. Then, round by round and
size by size: load ``--due`` due timers and drain them with ``engine.timers.claim_due``
(batches of 500) from one dispatcher, then from two concurrent dispatcher threads. Each
claimed batch is completed with one bulk delete by id and claim token, as a worker would. No
id may be claimed twice and no pending timer touched. The design target: dispatch cost
depends on the timers due, not pending, so throughput at 1M ≈ throughput at 100k.

Without ``--url`` it runs a throwaway server (``initdb`` in a temp dir, ``fsync=off``, as the
``postgres`` user when root) and removes it afterwards.

    .venv/bin/python bench/timers.py [--url URL] [--sizes 100000 1000000] [--due 5000]
                                     [--rounds 10] [--write]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import re
import shlex
import statistics
import sys
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import sqlalchemy
from report import BENCHMARKS, write_section
from servers import exit_on_sigterm, throwaway_postgres
from sqlalchemy import delete, make_url, text

from cartflow.engine.store.database import Database, normalise_url
from cartflow.engine.store.models import Timer
from cartflow.engine.timers import JOURNEY_STEP, claim_due

BATCH = 500
SECTION = "## Timer dispatch (bench/timers.py)"
COPY = "COPY timers (kind, ref, due_at, scheduled_for, attempts) FROM STDIN"
Row = tuple[str, str, datetime, datetime, int]


@dataclass(frozen=True)
class Result:
    pending: int
    load_s: float
    one: float  # timers/s, one dispatcher
    p50_ms: float
    p95_ms: float
    two: float  # timers/s, two dispatchers
    twice: int  # timer ids claimed more than once
    left: int  # due timers neither claimed nor completed


@contextlib.contextmanager
def throwaway_database() -> Iterator[str]:
    """A throwaway cluster (bench/servers.py) with a ``cartflow_bench`` database: its URL."""
    with throwaway_postgres() as server:
        yield server.create_database("cartflow_bench")


def rows(prefix: str, n: int, first: datetime, span: timedelta) -> Iterator[Row]:
    """``n`` timers named ``prefix-i``, due evenly spread over ``span`` from ``first``."""
    for i in range(n):
        at = first + span * i / n
        yield JOURNEY_STEP, f"{prefix}-{i}", at, at, 0


def load(db: Database, data: Iterable[Row]) -> None:
    with db.engine.begin() as conn:  # commits the raw connection's COPY too
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cursor, cursor.copy(COPY) as copy:
            for row in data:
                copy.write_row(row)


def maintenance(db: Database, sql: str) -> None:
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(sql))


def drain(db: Database) -> tuple[list[int], list[float]]:
    """One dispatcher: claim batches until none are due, completing each one."""
    ids: list[int] = []
    latencies: list[float] = []
    while True:
        start = time.perf_counter()
        claims = claim_due(db, datetime.now(UTC), limit=BATCH)
        if not claims:
            return ids, latencies
        latencies.append(time.perf_counter() - start)
        batch = [claim.timer_id for claim in claims]
        with db.transaction() as session:
            session.execute(
                delete(Timer).where(Timer.id.in_(batch), Timer.claim_token == claims[0].token)
            )
        ids.extend(batch)


Sample = tuple[float, int, list[float]]  # timers/s, ids claimed twice, claim latencies


def measure(db: Database, tag: str, due: int, threads: int) -> Sample:
    """Load ``due`` timers due in the last hour and drain them with ``threads`` dispatchers."""
    load(db, rows(f"due-{tag}", due, datetime.now(UTC) - timedelta(hours=1), timedelta(hours=1)))
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(lambda _: drain(db), range(threads)))
    rate = sum(len(ids) for ids, _ in results) / (time.perf_counter() - start)
    ids = [i for claimed, _ in results for i in claimed]
    return rate, len(ids) - len(set(ids)), [lat for _, lats in results for lat in lats]


def schema_db(url: str, schema: str, pending: int) -> tuple[Database, float]:
    """Own ``timers`` table in ``schema``, loaded with ``pending`` timers; (db, load seconds)."""
    url_ = make_url(normalise_url(url)).update_query_dict({"options": f"-csearch_path={schema}"})
    db = Database(url_.render_as_string(hide_password=False))
    db.migrate()
    start = time.perf_counter()
    load(db, rows("pending", pending, datetime.now(UTC) + timedelta(hours=1), timedelta(days=7)))
    maintenance(db, "VACUUM ANALYZE timers")
    maintenance(db, "CHECKPOINT")  # start dispatching with no load backlog being written out
    return db, time.perf_counter() - start


def summarise(
    db: Database, pending: int, load_s: float, one: list[Sample], two: list[Sample]
) -> Result:
    with db.transaction() as session:
        left, kept = session.execute(
            text(
                "SELECT count(*) FILTER (WHERE ref LIKE 'due-%'), "
                "count(*) FILTER (WHERE ref LIKE 'pending-%') FROM timers"
            )
        ).one()
    if kept != pending:
        raise RuntimeError(f"{pending - kept} pending timers were claimed or lost")
    lats_ms = sorted(lat * 1000 for _, _, lats in one for lat in lats) or [math.nan]
    return Result(
        pending=pending,
        load_s=load_s,
        one=statistics.median(rate for rate, _, _ in one),
        p50_ms=statistics.median(lats_ms),
        p95_ms=lats_ms[math.ceil(0.95 * len(lats_ms)) - 1],
        two=statistics.median(rate for rate, _, _ in two),
        twice=sum(twice for _, twice, _ in one + two),
        left=left,
    )


def table(results: list[Result]) -> str:
    lines = [
        "| pending | load s | 1 dispatcher timers/s | claim p50 ms | claim p95 ms "
        "| 2 dispatchers timers/s | claimed twice | left over |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.pending:,} | {r.load_s:.1f} | {r.one:,.0f} | {r.p50_ms:.1f} "
        f"| {r.p95_ms:.1f} | {r.two:,.0f} | {r.twice} | {r.left} |"
        for r in results
    ]
    if len(results) > 1:
        a, b = results[0], results[-1]
        lines.append(
            f"\nThroughput at {b.pending:,} vs {a.pending:,} pending: "
            f"1 dispatcher ×{b.one / a.one:.2f}, 2 dispatchers ×{b.two / a.two:.2f} "
            "(target ≈ 1.0)."
        )
    return "\n".join(lines)


def section(body: str, args: argparse.Namespace, db: Database, load_before: float) -> str:
    with db.engine.connect() as conn:
        server = conn.execute(text("SHOW server_version")).scalar_one()
    cpu = re.search(r"model name\s*: (.*)", Path("/proc/cpuinfo").read_text())
    argv = ["--url", "URL"] if args.url else []
    argv += [
        "--sizes",
        *map(str, args.sizes),
        "--due",
        str(args.due),
        "--rounds",
        str(args.rounds),
        "--write",
    ]
    where = "an existing server (`--url`)" if args.url else "a throwaway local cluster, fsync=off"
    return "\n".join(
        [
            SECTION,
            "",
            f"Measured {datetime.now(UTC):%Y-%m-%d} with "
            f"`.venv/bin/python bench/timers.py {shlex.join(argv)}` on {where}.",
            f"Machine: {os.cpu_count()} cores ({cpu[1] if cpu else platform.machine()}), Linux "
            f"`{platform.release()}`; Python {platform.python_version()}, PostgreSQL {server}, "
            f"SQLAlchemy {sqlalchemy.__version__}, psycopg {psycopg.__version__}; 1-minute "
            f"load average before the run {load_before:.2f} (other work skews the numbers).",
            "",
            "Each size has its own `timers` table (a schema each, same server) with N pending "
            "timers due 1 h to 7 days ahead, loaded by COPY (load s includes VACUUM ANALYZE and "
            f"CHECKPOINT). Then {args.rounds} rounds after a warm-up, sizes in turn: load "
            f"{args.due:,} due timers, drain them with one dispatcher; again with two dispatcher "
            f"threads. A dispatcher calls `claim_due(limit={BATCH})` until nothing is due and "
            "completes each batch by one bulk delete by id and claim token. timers/s (claimed and "
            "completed) is the median over rounds; claim latency is per non-empty one-dispatcher "
            "`claim_due` call. `claimed twice` and `left over` must be 0.",
            "",
            body,
            "",
        ]
    )


def write(text_: str) -> None:
    write_section(SECTION, text_)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="existing database (default: a throwaway server)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--due", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=10, help="dispatch rounds per size")
    parser.add_argument("--write", action="store_true", help=f"update {BENCHMARKS.name}")
    args = parser.parse_args()
    exit_on_sigterm()  # still stop the server
    load_before = os.getloadavg()[0]
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(throwaway_database())
        admin = Database(url)
        stack.callback(admin.dispose)
        dbs: dict[int, Database] = {}
        load_s: dict[int, float] = {}
        for size in dict.fromkeys(args.sizes):
            maintenance(admin, f"CREATE SCHEMA cartflow_bench_{size}")
            if args.url:  # a throwaway server simply goes away
                stack.callback(maintenance, admin, f"DROP SCHEMA cartflow_bench_{size} CASCADE")
            dbs[size], load_s[size] = schema_db(url, f"cartflow_bench_{size}", size)
            stack.callback(dbs[size].dispose)
        samples: dict[tuple[int, int], list[Sample]] = {(s, t): [] for s in dbs for t in (1, 2)}
        # Interleave sizes and dispatcher counts round by round, so that drift on the host
        # (noisy neighbours, autovacuum, checkpoints) hits every cell alike.
        for r in range(-1, args.rounds):  # round -1 warms connections and statement caches
            for size, db in dbs.items():
                for threads in (1, 2):
                    sample = measure(db, f"{threads}-{r}", args.due, threads)
                    if r >= 0:
                        samples[size, threads].append(sample)
        results = [
            summarise(db, size, load_s[size], samples[size, 1], samples[size, 2])
            for size, db in dbs.items()
        ]
        body = table(results)
        print(body)
        if args.write:
            write(section(body, args, admin, load_before))
    return 1 if any(r.twice or r.left for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
