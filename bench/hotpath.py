"""The engine's hot path in one process, one thread: what each unit of work costs.

No broker, no HTTP, no threads — the methods the Dramatiq actors call, on a throwaway
PostgreSQL (bench/servers.py, fsync=off), with the in-process recording provider behind
push and a simulated clock. For ``--shoppers`` N shoppers with one cart each:

* ``apply``  — ``Engine.apply_events`` on stored ``cart.updated`` events, 1,000 per call;
* ``idle``   — the idle timers fired (abandonment found, journey started, step timer set);
* ``send``   — the push steps fired (guards, render, delivery, provider, recorded).

For each: units/s on one thread, SQL statements, transactions and connection checkouts
per unit, ms per unit and the share of it spent inside the database driver (statement
round trips, server work included). That is the capacity model's input: the database
round trips per unit bound what more workers can give. ``--profile PHASE`` prints the
functions where that phase spends its time (cProfile, cumulative).

    .venv/bin/python bench/hotpath.py [--shoppers 2000] [--statements]
        [--profile send [--sort tottime]] [--write]

``--write`` replaces this benchmark's section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from collections import Counter as Counter_
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event as sa_event

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from report import BENCHMARKS, provenance, write_section  # noqa: E402
from servers import throwaway_postgres  # noqa: E402

from cartflow.engine.clock import SimulatedClock  # noqa: E402
from cartflow.engine.configs import ConfigHolder  # noqa: E402
from cartflow.engine.events import Event  # noqa: E402
from cartflow.engine.scenario.loader import load_config  # noqa: E402
from cartflow.engine.service import Engine  # noqa: E402
from cartflow.engine.store.database import Database  # noqa: E402
from cartflow.providers.recording import RecordingProvider  # noqa: E402
from cartflow.providers.registry import ChannelRouter, validators  # noqa: E402
from cartflow.workers.logs import configure as configure_logs  # noqa: E402

SCENARIO = """\
scenario: bench_push
description: One push the moment a cart is abandoned (bench/hotpath.py).
priority: 10
trigger: {on: cart.abandoned, idle: 30m}
holdout: 0%
reentry: 7d
exit_on: [order.completed, cart.emptied, unsubscribed]
expires: 7d
steps:
  - {id: push, after: 0m, channel: push, template: abandoned_cart/push}
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
  push: {{type: recording}}
templates: {templates}
include:
  - scenarios/*.yaml
"""

SECTION = "## The hot path on one thread (bench/hotpath.py)"

#: Noon UTC on a weekday: inside every send window.
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
PHASES = ("apply", "idle", "send")


@dataclass
class Counter:
    """Statements, transactions and checkouts on one engine, and time in the driver."""

    statements: int = 0
    #: Statement text (first line, shortened) → how many times, when listing is on.
    texts: Counter_[str] | None = None
    commits: int = 0
    checkouts: int = 0
    in_driver: float = 0.0
    _started: list[float] = field(default_factory=list)

    def attach(self, db: Database) -> None:
        engine = db.engine

        @sa_event.listens_for(engine, "before_cursor_execute")
        def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            self.statements += 1
            if self.texts is not None:
                self.texts[" ".join(statement.split())[:150]] += 1
            self._started.append(time.perf_counter())

        @sa_event.listens_for(engine, "after_cursor_execute")
        def after(*_: Any) -> None:
            self.in_driver += time.perf_counter() - self._started.pop()

        @sa_event.listens_for(engine, "commit")
        def commit(*_: Any) -> None:
            self.commits += 1

        @sa_event.listens_for(engine.pool, "checkout")
        def checkout(*_: Any) -> None:
            self.checkouts += 1

    def snapshot(self) -> tuple[int, int, int, float]:
        return self.statements, self.commits, self.checkouts, self.in_driver


@dataclass
class Row:
    phase: str
    units: int
    seconds: float
    statements: int
    commits: int
    checkouts: int
    in_driver: float
    #: CPU seconds of this process, and of the PostgreSQL backends serving it.
    cpu: float = 0.0
    pg_cpu: float = 0.0

    def cells(self) -> list[str]:
        per = max(self.units, 1)
        return [
            self.phase,
            f"{self.units:,}",
            f"{self.units / self.seconds:,.0f}",
            f"{1000 * self.seconds / per:.2f}",
            f"{self.statements / per:.1f}",
            f"{self.commits / per:.2f}",
            f"{self.checkouts / per:.2f}",
            f"{100 * self.in_driver / self.seconds:.0f}%",
            f"{1000 * self.cpu / per:.2f}",
            f"{1000 * self.pg_cpu / per:.2f}",
        ]


HEADER = [
    "phase",
    "units",
    "units/s (1 thread)",
    "ms/unit",
    "statements/unit",
    "commits/unit",
    "checkouts/unit",
    "time in DB driver",
    "cartflow CPU ms/unit",
    "PostgreSQL CPU ms/unit",
]


def cart_event(n: int, at: datetime) -> Event:
    cart = f"cart-{n}"
    return Event.model_validate(
        {
            "id": f"evt-{n}",
            "type": "cart.updated",
            "at": at.isoformat(),
            "anonymous_id": f"anon-{n}",
            "customer_id": f"cust-{n}",
            "session_id": f"sess-{n}",
            "cart": {
                "id": cart,
                "currency": "USD",
                "url": f"https://shop.example/cart/{cart}",
                "items": [{"sku": "SKU-1", "name": "Sneakers", "price": 49.9, "quantity": 1}],
            },
            "contact": {"push_token": f"push-{n}", "locale": "en", "timezone": "UTC"},
            "consent": {"push": True},
        }
    )


def backend_cpu(pg: Any, database: str) -> float:
    """CPU seconds (user + system) the PostgreSQL backends connected to ``database`` have
    used, from /proc (the server runs on this machine)."""
    with pg.connect() as conn:
        pids = [
            r[0]
            for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,)
            )
        ]
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def measure(
    phase: str,
    counter: Counter,
    work: Callable[[], int],
    profile: str | None,
    sort: str,
    pg_cpu: Callable[[], float],
) -> Row:
    before = counter.snapshot()
    cpu_before, pg_before = time.process_time(), pg_cpu()
    profiler = cProfile.Profile() if profile == phase else None
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    units = work()
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - start
    cpu, pg = time.process_time() - cpu_before, pg_cpu() - pg_before
    after = counter.snapshot()
    if counter.texts is not None:
        print(f"-- {phase}: statements per unit", file=sys.stderr)
        for text, count in counter.texts.most_common():
            print(f"{count / max(units, 1):6.2f}  {text}", file=sys.stderr)
        counter.texts.clear()
    if profiler:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats(sort).print_stats(45)
        print(out.getvalue(), file=sys.stderr)
        print(f"-- {phase}: own time by package", file=sys.stderr)
        for package, spent in by_package(stats):
            print(f"{100 * spent / seconds:5.1f}%  {package}", file=sys.stderr)
    diff = [a - b for a, b in zip(after, before, strict=True)]
    return Row(phase, units, seconds, int(diff[0]), int(diff[1]), int(diff[2]), diff[3], cpu, pg)


def by_package(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Own (not cumulative) time per top-level package: where the CPU goes."""
    spent: Counter_[str] = Counter_()
    for (path, _, name), row in stats.stats.items():  # type: ignore[attr-defined]
        own = row[2]
        if "site-packages/" in path:
            package = path.split("site-packages/")[1].split("/")[0]
        elif "/cartflow/" in path or "/engine/" in path or "/providers/" in path:
            package = "cartflow"
        elif path == "~":
            package = f"builtins ({name.split(' ')[-1][:40]})"
        else:
            package = "python stdlib"
        spent[package] += own
    return spent.most_common(12)


def fire_all(engine: Engine, kind: str, batch: int) -> int:
    """Claim and fire every due timer of ``kind``, ``batch`` per call as a message would."""
    fired = 0
    while claims := [c for c in engine.claim_due(limit=500) if c.kind == kind]:
        for start in range(0, len(claims), batch):
            fired += len(engine.fire_many(claims[start : start + batch]))
    return fired


def run(
    shoppers: int,
    profile: str | None,
    sort: str,
    statements: bool = False,
    fire_batch: int = 20,
) -> tuple[list[Row], dict[str, Any]]:
    with throwaway_postgres() as pg, tempfile.TemporaryDirectory() as tmp:
        url = pg.create_database("hotpath")
        db = Database(url)
        db.migrate()
        root = Path(tmp)
        (root / "scenarios").mkdir()
        (root / "scenarios" / "bench_push.yaml").write_text(SCENARIO)
        templates = HERE.parent / "templates"
        (root / "scenarios.yaml").write_text(SETTINGS.format(templates=templates))
        config = load_config(root / "scenarios.yaml", provider_types=validators())
        clock = SimulatedClock(T0)
        recorder = RecordingProvider()
        engine = Engine(db, clock, ConfigHolder(config), ChannelRouter({"push": recorder}))
        counter = Counter()
        counter.attach(db)
        if statements:
            counter.texts = Counter_()
        events = [cart_event(n, T0) for n in range(shoppers)]
        ids: list[str] = []
        for start in range(0, shoppers, 1000):
            ids.extend(engine.ingest(events[start : start + 1000]))

        def apply() -> int:
            return sum(
                engine.apply_events(ids[start : start + 1000]) for start in range(0, len(ids), 1000)
            )

        def pg_cpu() -> float:
            return backend_cpu(pg, "hotpath")

        rows = [measure("apply", counter, apply, profile, sort, pg_cpu)]
        clock.set(T0 + timedelta(minutes=31))
        rows.append(
            measure(
                "idle",
                counter,
                lambda: fire_all(engine, "cart_idle", fire_batch),
                profile,
                sort,
                pg_cpu,
            )
        )
        clock.set(T0 + timedelta(minutes=32))
        rows.append(
            measure(
                "send",
                counter,
                lambda: fire_all(engine, "journey_step", fire_batch),
                profile,
                sort,
                pg_cpu,
            )
        )
        facts = {"sent": len(recorder.sent), "postgres": pg.version()}
        db.engine.dispose()
    return rows, facts


def table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def section(body: str, argv: list[str], facts: dict[str, Any]) -> str:
    return "\n".join(
        [
            SECTION,
            "",
            *provenance("hotpath.py", argv, facts["postgres"], facts["load"]),
            "",
            "One process, one thread, no broker and no HTTP: the methods the actors call "
            "(`Engine.apply_events` 1,000 ids per call, `Engine.fire_many` 20 claims per "
            "call), a recording provider in process, a simulated clock. One unit is one "
            "shopper's `cart.updated` applied, one idle check (abandonment found, journey "
            "started, step timer set), one push step (guards, render, delivery, provider, "
            "answer recorded). Logs are written as in production (JSON, contacts scrubbed), to "
            "/dev/null. *Time in DB driver* is the share of wall time inside statement "
            "execution (round trip and server work); *cartflow CPU* is this process's CPU "
            "time, *PostgreSQL CPU* that of the server backends serving it (from /proc).",
            "",
            body,
            "",
        ]
    )


def write(text: str) -> None:
    write_section(SECTION, text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shoppers", type=int, default=2000)
    parser.add_argument("--profile", choices=PHASES)
    parser.add_argument("--write", action="store_true", help=f"update {BENCHMARKS.name}")
    parser.add_argument("--fire-batch", type=int, default=20, help="timers per fire_many call")
    parser.add_argument("--statements", action="store_true", help="list each phase's SQL")
    parser.add_argument("--sort", default="cumulative", help="pstats sort key for --profile")
    args = parser.parse_args()
    # logged as in production (JSON, contacts scrubbed) — the cost counts — into nowhere
    configure_logs("json", stream=open(os.devnull, "w"))  # noqa: SIM115 — for the run
    load = os.getloadavg()[0]
    rows, facts = run(args.shoppers, args.profile, args.sort, args.statements, args.fire_batch)
    facts["load"] = load
    body = table(rows) + f"\n\nProvider calls: {facts['sent']:,} of {args.shoppers:,}."
    print(body)
    if args.write:
        write(section(body, ["--shoppers", str(args.shoppers), "--write"], facts))
    return 0 if facts["sent"] == args.shoppers else 1


if __name__ == "__main__":
    raise SystemExit(main())
