"""Rebuilding the kept features from the database (migration 0015, ``cartflow features
rebuild``): how long an upgrade takes, against applying the same events live.

On a throwaway PostgreSQL (bench/servers.py, fsync=off): ``--shoppers`` N shoppers, each
with a visit, ``--views`` product views, a cart and (every third) an order, ingested and
applied through ``Engine.apply_events`` (timed: *live*). Then ``profile_features`` is
emptied and rebuilt by :func:`cartflow.engine.features_backfill.backfill` once per batch
size in ``--batches`` (timed: *rebuild*). The rebuilt documents are checked equal to the
live ones. The rebuild reads the events' ids inside their JSON (no index covers them), so
every batch reads through the retained events: its cost grows with profiles × events /
batch size.

    .venv/bin/python bench/backfill.py [--shoppers 5000] [--views 6] [--batches 200,1000]
        [--write]

``--write`` replaces this benchmark's section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from hotpath import SCENARIO, SETTINGS, T0  # noqa: E402
from report import provenance, write_section  # noqa: E402
from servers import throwaway_postgres  # noqa: E402

from cartflow.engine import features_backfill  # noqa: E402
from cartflow.engine.clock import SimulatedClock  # noqa: E402
from cartflow.engine.configs import ConfigHolder  # noqa: E402
from cartflow.engine.events import Event  # noqa: E402
from cartflow.engine.scenario.loader import load_config  # noqa: E402
from cartflow.engine.service import Engine  # noqa: E402
from cartflow.engine.store.database import Database  # noqa: E402
from cartflow.engine.store.models import ProfileFeatures  # noqa: E402
from cartflow.providers.recording import RecordingProvider  # noqa: E402
from cartflow.providers.registry import ChannelRouter, validators  # noqa: E402
from cartflow.workers.logs import configure as configure_logs  # noqa: E402

SECTION = "## Rebuilding the kept features (bench/backfill.py)"


def shopper_events(n: int, views: int) -> list[Event]:
    """One shopper's visit: arrive, view products, cart two of them, maybe pay."""
    at = T0 - timedelta(days=n % 20, minutes=n % 600)
    ids = {"anonymous_id": f"anon-{n}", "customer_id": f"cust-{n}", "session_id": f"s-{n}"}
    raw: list[dict[str, Any]] = [
        {"type": "session.started", "session": {"device": "mobile", "source": "email"}}
    ]
    raw += [
        {"type": "product.viewed", "product": {"sku": f"SKU-{k}", "category": f"c{k % 3}"}}
        for k in range(views)
    ]
    lines = [{"sku": f"SKU-{k}", "name": "x", "price": 10, "quantity": 1} for k in range(2)]
    raw.append({"type": "cart.updated", "cart": {"id": f"cart-{n}", "items": lines}})
    if n % 3 == 0:
        raw.append({"type": "order.completed", "order": {"id": f"o-{n}", "cart_id": f"cart-{n}"}})
    return [
        Event.model_validate(
            {"id": f"e-{n}-{k}", "at": (at + timedelta(minutes=k)).isoformat(), **ids, **body}
        )
        for k, body in enumerate(raw)
    ]


def docs(db: Database) -> dict[str, Any]:
    with db.reading() as session:
        return dict(session.execute(select(ProfileFeatures.profile_id, ProfileFeatures.doc)).all())


def run(shoppers: int, views: int, batches: list[int]) -> tuple[str, dict[str, Any]]:
    with throwaway_postgres() as pg, tempfile.TemporaryDirectory() as tmp:
        db = Database(pg.create_database("backfill"))
        db.migrate()
        root = Path(tmp)
        (root / "scenarios").mkdir()
        (root / "scenarios" / "bench_push.yaml").write_text(SCENARIO)
        (root / "scenarios.yaml").write_text(SETTINGS.format(templates=HERE.parent / "templates"))
        config = load_config(root / "scenarios.yaml", provider_types=validators())
        engine = Engine(
            db,
            SimulatedClock(T0),
            ConfigHolder(config),
            ChannelRouter({"push": RecordingProvider()}),
        )
        events = [e for n in range(shoppers) for e in shopper_events(n, views)]
        ids: list[str] = []
        for start in range(0, len(events), 1000):
            ids.extend(engine.ingest(events[start : start + 1000]))
        started = time.perf_counter()
        for start in range(0, len(ids), 1000):
            engine.apply_events(ids[start : start + 1000])
        live = time.perf_counter() - started
        kept = docs(db)
        lines = [
            "| what | batch | seconds | profiles/s | events/s | vs live |",
            "|---|---|---|---|---|---|",
            f"| live: `Engine.apply_events` | 1,000 events | {live:.1f} | "
            f"{shoppers / live:,.0f} | {len(events) / live:,.0f} | 1.00 |",
        ]
        equal = True
        for batch in batches:
            with db.transaction() as session:
                session.execute(delete(ProfileFeatures))
            features_backfill.BATCH = batch
            started = time.perf_counter()
            with db.transaction() as session:
                written = features_backfill.backfill(session, T0, only_missing=True)
            took = time.perf_counter() - started
            equal = equal and written == shoppers and docs(db) == kept
            lines.append(
                f"| rebuild: `backfill` | {batch:,} profiles | {took:.1f} | "
                f"{shoppers / took:,.0f} | {len(events) / took:,.0f} | {took / live:.2f} |"
            )
        db.dispose()
        facts = {"postgres": pg.version(), "events": len(events), "equal": equal}
        return "\n".join(lines), facts


def section(body: str, argv: list[str], facts: dict[str, Any]) -> str:
    return "\n".join(
        [
            SECTION,
            "",
            *provenance("backfill.py", argv, facts["postgres"], facts["load"]),
            "",
            f"{facts['events']:,} retained events. *live* applies them through the engine (every "
            "rule: profiles, carts, timers, features); *rebuild* is the upgrade's migration 0015 "
            "/ `cartflow features rebuild` on the same database after emptying "
            "`profile_features`, one transaction. Rebuilt documents equal the live ones: "
            f"{'yes' if facts['equal'] else 'NO'}.",
            "",
            body,
            "",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shoppers", type=int, default=5000)
    parser.add_argument("--views", type=int, default=6)
    parser.add_argument("--batches", default="200,1000")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args()
    configure_logs("json", stream=open(os.devnull, "w"))  # noqa: SIM115 — for the run
    load = os.getloadavg()[0]
    batches = [int(b) for b in args.batches.split(",")]
    body, facts = run(args.shoppers, args.views, batches)
    facts["load"] = load
    print(body)
    print(f"rebuilt equal to live: {facts['equal']}")
    if args.write:
        argv = ["--shoppers", str(args.shoppers), "--views", str(args.views)]
        write_section(SECTION, section(body, [*argv, "--batches", args.batches, "--write"], facts))
    return 0 if facts["equal"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
