"""Durable-timer dispatch throughput on a real PostgreSQL (DESIGN §4).

For each size N (default 100k and 1M) the script bulk-loads N pending timers due far in the
future plus ``--due`` timers already due, then drains the due ones with
``engine.timers.claim_due`` (batches of 500), completing each batch with one bulk delete by
id and claim token, as a worker finishing its timers would. It then loads fresh due timers
and drains them with two concurrent dispatcher threads, checking that no timer id was handed
out twice. The design target: dispatch cost depends on the timers due, not on those pending,
so throughput at 1M pending should be close to throughput at 100k.

Without ``--url`` it runs its own throwaway server (``initdb`` in a temp dir, ``fsync=off``,
as the ``postgres`` user when started as root) and removes it afterwards. With ``--url``,
point it at an empty scratch database: the ``timers`` table is truncated.

    .venv/bin/python bench/timers.py [--sizes 100000 1000000] [--due 5000] [--write]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import sqlalchemy
from sqlalchemy import delete, func, select, text

from engine.store.database import Database
from engine.store.models import Timer
from engine.timers import JOURNEY_STEP, claim_due

BATCH = 500
SECTION = "## Timer dispatch (bench/timers.py)"
BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
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


def run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{shlex.join(cmd)} failed:\n{done.stdout}{done.stderr}")


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A private PostgreSQL cluster on a free port; stopped and deleted on exit."""
    bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                            check=True).stdout.strip()
    pg_ctl, as_pg = f"{bindir}/pg_ctl", ["runuser", "-u", "postgres", "--"]
    if os.geteuid() != 0:
        as_pg = []
    tmp = Path(tempfile.mkdtemp(prefix="cartflow-bench-"))
    data, started = tmp / "data", False
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    try:
        if as_pg:
            shutil.chown(tmp, "postgres", "postgres")
        run([*as_pg, f"{bindir}/initdb", "-D", str(data), "-A", "trust", "-U", "postgres"])
        opts = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off"
        run([*as_pg, pg_ctl, "-D", str(data), "-o", opts, "-l", str(tmp / "log"), "-w", "start"])
        started = True
        dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE DATABASE cartflow_bench")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/cartflow_bench"
    finally:
        if started:
            subprocess.run([*as_pg, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"],
                           capture_output=True, check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def pending_rows(n: int, now: datetime) -> Iterator[Row]:
    """``n`` timers spread over the week starting an hour from now."""
    start, step = now + timedelta(hours=1), timedelta(days=7) / max(n, 1)
    for i in range(n):
        at = start + step * i
        yield JOURNEY_STEP, f"pending-{i}", at, at, 0


def due_rows(tag: str, n: int, now: datetime) -> Iterator[Row]:
    """``n`` timers that fell due during the last hour."""
    for i in range(n):
        at = now - timedelta(seconds=1 + i % 3600)
        yield JOURNEY_STEP, f"due-{tag}-{i}", at, at, 0


def load(db: Database, rows: Iterable[Row]) -> None:
    with db.engine.begin() as conn:  # commits the raw connection's COPY too
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cursor, cursor.copy(COPY) as copy:
            for row in rows:
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
            session.execute(delete(Timer).where(Timer.id.in_(batch),
                                                Timer.claim_token == claims[0].token))
        ids.extend(batch)


def dispatch(db: Database, threads: int) -> tuple[float, list[int], list[float]]:
    """Run ``threads`` dispatchers at once; returns (seconds, ids claimed, claim latencies)."""
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        results = [f.result() for f in [pool.submit(drain, db) for _ in range(threads)]]
    elapsed = time.perf_counter() - start
    return (elapsed, [i for ids, _ in results for i in ids],
            [lat for _, lats in results for lat in lats])


def bench(db: Database, pending: int, due: int, rounds: int) -> Result:
    maintenance(db, "TRUNCATE timers RESTART IDENTITY")
    start = time.perf_counter()
    load(db, pending_rows(pending, datetime.now(UTC)))
    maintenance(db, "VACUUM ANALYZE timers")
    load_s = time.perf_counter() - start

    rates: dict[int, list[float]] = {1: [], 2: []}
    lats: list[float] = []
    twice = 0
    for r in range(rounds):  # alternate so drift (autovacuum, caches) hits both alike
        for threads in (1, 2):
            load(db, due_rows(f"{threads}-{r}", due, datetime.now(UTC)))
            seconds, ids, batch_lats = dispatch(db, threads)
            rates[threads].append(len(ids) / seconds)
            twice += len(ids) - len(set(ids))
            lats += batch_lats if threads == 1 else []

    with db.transaction() as session:
        left, kept = session.execute(text(
            "SELECT count(*) FILTER (WHERE ref LIKE 'due-%'), "
            "count(*) FILTER (WHERE ref LIKE 'pending-%') FROM timers")).one()
    if kept != pending:
        raise RuntimeError(f"{pending - kept} pending timers were claimed or lost")
    lats_ms = sorted(lat * 1000 for lat in lats) or [math.nan]
    return Result(
        pending=pending, load_s=load_s,
        one=statistics.median(rates[1]), p50_ms=statistics.median(lats_ms),
        p95_ms=lats_ms[math.ceil(0.95 * len(lats_ms)) - 1],
        two=statistics.median(rates[2]), twice=twice, left=left,
    )


def table(results: list[Result]) -> str:
    lines = ["| pending | load s | 1 dispatcher timers/s | claim p50 ms | claim p95 ms "
             "| 2 dispatchers timers/s | claimed twice | left over |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r.pending:,} | {r.load_s:.1f} | {r.one:,.0f} | {r.p50_ms:.1f} "
              f"| {r.p95_ms:.1f} | {r.two:,.0f} | {r.twice} | {r.left} |" for r in results]
    if len(results) > 1:
        a, b = results[0], results[-1]
        lines.append(f"\nThroughput at {b.pending:,} vs {a.pending:,} pending: "
                     f"1 dispatcher ×{b.one / a.one:.2f}, 2 dispatchers ×{b.two / a.two:.2f} "
                     "(target ≈ 1.0).")
    return "\n".join(lines)


def section(body: str, args: argparse.Namespace, db: Database) -> str:
    with db.engine.connect() as conn:
        server = conn.execute(text("SHOW server_version")).scalar_one()
    argv = ["--url", "URL"] if args.url else []
    argv += ["--sizes", *map(str, args.sizes), "--due", str(args.due),
             "--rounds", str(args.rounds), "--write"]
    where = "an existing server (`--url`)" if args.url else "a throwaway local cluster, fsync=off"
    return "\n".join([
        SECTION, "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} with "
        f"`.venv/bin/python bench/timers.py {shlex.join(argv)}` on {where}.",
        f"Machine: {os.cpu_count()} cores, Linux `{platform.release()}`; Python "
        f"{platform.python_version()}, PostgreSQL {server}, SQLAlchemy {sqlalchemy.__version__}, "
        f"psycopg {psycopg.__version__}.", "",
        f"Each size: N pending timers due 1 h to 7 days ahead plus {args.due:,} already due, "
        "loaded with COPY (load time includes VACUUM ANALYZE). A dispatcher calls "
        f"`claim_due(limit={BATCH})` until nothing is due and completes each batch with one "
        "bulk delete by id and claim token; timers/s counts claimed and completed. Claim "
        "latency is per non-empty `claim_due` call. Then fresh due timers are drained by two "
        "concurrent dispatcher threads; `claimed twice` and `left over` must be 0.", "",
        body, "",
    ])


def write(text_: str) -> None:
    old = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n"
    head, found, rest = old.partition(SECTION)
    tail = rest[rest.find("\n## ") + 1:] if found and "\n## " in rest else ""
    BENCHMARKS.write_text(head.rstrip() + "\n\n" + text_ + ("\n" + tail if tail else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="existing (scratch!) database; default: a throwaway one")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--due", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=10, help="dispatch rounds per size")
    parser.add_argument("--write", action="store_true", help=f"update {BENCHMARKS.name}")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(throwaway_postgres())
        db = Database(url)
        stack.callback(db.dispose)
        db.migrate()
        with db.transaction() as session:
            if session.execute(select(func.count()).select_from(Timer)).scalar_one():
                sys.exit("the timers table is not empty: use a scratch database")
        bench(db, 0, 1000, 1)  # warm up connections and statement caches
        results = [bench(db, size, args.due, args.rounds) for size in args.sizes]
        body = table(results)
        print(body)
        if args.write:
            write(section(body, args, db))
    return 1 if any(r.twice or r.left for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
