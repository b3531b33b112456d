"""Marketer and ops tools: ``preview``, ``simulate``, ``status``, ``report``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from cartflow.engine.channels import CHANNELS
from cartflow.engine.clock import SimulatedClock, SystemClock, as_utc
from cartflow.engine.configs import ConfigHolder
from cartflow.engine.events import Event, EventError, parse_events
from cartflow.engine.ops import report, status
from cartflow.engine.scenario.loader import Config, load_config
from cartflow.engine.service import Engine, EventConflict
from cartflow.engine.simulation import Simulation
from cartflow.engine.store.database import Database, masked_url, sqlite_file
from cartflow.engine.store.models import Base, Decision, Delivery, Identity
from cartflow.engine.timing import parse_duration
from cartflow.providers.recording import RecordingProvider
from cartflow.providers.registry import ChannelRouter, validators
from cartflow.workers.errors import CliError
from cartflow.workers.errors import NoDatabase as NoDatabase  # re-exported (defined here before)
from cartflow.workers.logs import configure
from cartflow.workers.preview import preview
from cartflow.workers.settings import Settings

#: Decisions ``simulate`` prints (architecture §9), plus send outcomes when a provider failed.
SHOWN = ("sent", "deferred", "skipped", "exited", "failed", "unknown")


def read_events(path: str) -> list[Event]:
    events: list[Event] = []
    problems: list[str] = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            events.extend(parse_events(json.loads(line)))
        except json.JSONDecodeError as exc:
            problems.append(f"{path}:{number}:{exc.colno}: not valid JSON: {exc.msg}")
        except EventError as exc:
            problems.extend(f"{path}:{number}:1: {e['loc']}: {e['msg']}" for e in exc.errors)
    if problems:
        raise CliError("bad events:\n" + "\n".join(problems))
    if not events:
        raise CliError(f"{path} holds no events")
    missing = [e.id for e in events if e.at is None]
    if missing:
        raise CliError(f"simulate needs 'at' on every event; missing on {', '.join(missing[:5])}")
    return events


def simulate(
    config: Config, events: list[Event], until: datetime | None = None, workdir: Path | None = None
) -> list[dict[str, Any]]:
    """Run the real engine over ``events`` on a simulated clock; one dict per decision."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="cartflow-sim-"))
    db = Database(f"sqlite:///{workdir / 'simulate.db'}")
    db.migrate()
    start = min(as_utc(e.at) for e in events if e.at is not None)
    clock = SimulatedClock(start)
    recorder = RecordingProvider()
    sender = ChannelRouter({channel: recorder for channel in CHANNELS})
    engine = Engine(db, clock, ConfigHolder(config), sender)
    sim = Simulation(engine, clock)
    sim.feed(events)
    last = max(as_utc(e.at) for e in events if e.at is not None)
    sim.run_until(until or last + timedelta(days=7))
    rows = decisions(db)
    db.dispose()
    return rows


def decisions(db: Database) -> list[dict[str, Any]]:
    with db.reading() as session:
        customers = {}
        for kind in ("anonymous_id", "customer_id"):  # customer_id wins
            customers.update(
                dict(
                    session.execute(
                        select(Identity.profile_id, Identity.value).where(Identity.kind == kind)
                    ).all()
                )
            )
        deliveries = {d.id: d for d in session.scalars(select(Delivery))}
        out = []
        for row in session.scalars(
            select(Decision).where(Decision.decision.in_(SHOWN)).order_by(Decision.at, Decision.id)
        ):
            delivery = deliveries.get(row.delivery_id or "")
            out.append(
                {
                    "at": row.at.isoformat().replace("+00:00", "Z"),
                    "customer": customers.get(row.profile_id or ""),
                    "cart": row.cart_id,
                    "scenario": row.scenario,
                    "step": row.step_id,
                    "channel": row.channel,
                    "decision": row.decision,
                    "reason": row.reason,
                    "until": row.until.isoformat().replace("+00:00", "Z") if row.until else None,
                    "token": delivery.token_code if delivery else None,
                    "rendered": {k: v for k, v in (delivery.rendered or {}).items() if k != "html"}
                    if delivery
                    else None,
                }
            )
    return out


def cmd_simulate(args: argparse.Namespace) -> int:

    configure("console", logging.WARNING)

    config = load_config(args.config, provider_types=validators())
    events = read_events(args.events)
    until = None
    if args.until:
        if args.until.startswith("+"):
            try:
                until = max(as_utc(e.at) for e in events if e.at) + parse_duration(args.until[1:])
            except ValueError as exc:
                raise CliError(f"--until: {exc}") from None
        else:
            try:
                until = as_utc(datetime.fromisoformat(args.until.replace("Z", "+00:00")))
            except ValueError:
                raise CliError(
                    "--until takes an ISO time (2026-11-23T12:00:00Z) or +duration (+7d)"
                ) from None
    try:
        rows = simulate(config, events, until)
    except EventConflict as exc:
        raise CliError(f"{args.events}: {exc}") from None
    if args.format == "jsonl":
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
    else:
        print(
            f"{'at (UTC)':17} {'customer':10} {'cart':10} {'step':8} {'channel':7} "
            f"{'decision':9} reason"
        )
        for row in rows:
            print(
                f"{row['at'][:16]:17} {str(row['customer'])[:10]:10} {str(row['cart'])[:10]:10} "
                f"{str(row['step'] or '-')[:8]:8} {row['channel'] or '-'!s:7} {row['decision']:9} "
                f"{row['reason']}{' → ' + row['until'][:16] if row['until'] else ''}"
            )
    return 0


def cmd_preview(args: argparse.Namespace) -> int:

    return preview(args)


#: How to point a read-only command at another database, in every "no database" message.
_POINT_ELSEWHERE = (
    "set CARTFLOW_DATABASE_URL to the database your cartflow processes use "
    "(e.g. sqlite:////srv/cartflow/cartflow.db)"
)


def existing_database(url: str, *, read_only: bool = True) -> Database:
    """``url`` opened (read-only unless asked), once it is known to hold cartflow's
    schema; else :class:`NoDatabase` saying where it looked (password masked) and how to
    look elsewhere. Never creates a database (an empty ``cartflow.db`` helps nobody)."""

    shown = masked_url(url)
    try:
        path = sqlite_file(url)
    except ArgumentError:
        raise NoDatabase(f"cannot read the database URL {shown}; {_POINT_ELSEWHERE}") from None
    where = f"{path} ({shown})" if path is not None else shown
    if path is not None and not path.is_file():
        raise NoDatabase(f"no database at {where}; {_POINT_ELSEWHERE}")
    try:
        db = Database(url, read_only=read_only)
    except (SQLAlchemyError, ImportError) as exc:  # an unknown dialect or driver
        raise NoDatabase(
            f"cannot use the database URL {shown}: {exc}; {_POINT_ELSEWHERE}"
        ) from None
    try:
        missing = db.missing_tables()
    except SQLAlchemyError as exc:
        db.dispose()
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
        raise NoDatabase(
            f"cannot open the database {where}: {reason}; {_POINT_ELSEWHERE}"
        ) from None
    if missing:
        db.dispose()
        what = (
            "no cartflow tables"
            if len(missing) == len(Base.metadata.tables)
            else f"an older cartflow schema (missing {', '.join(missing)}; any cartflow "
            "process migrates it on start)"
        )
        raise NoDatabase(f"the database {where} has {what}; {_POINT_ELSEWHERE}")
    return db


def _db() -> Database:

    return existing_database(Settings().database_url)


def cmd_status(_: argparse.Namespace) -> int:

    db = _db()
    queues = status(db, SystemClock().now(), stuck_after=timedelta(seconds=Settings().timer_lease))
    db.dispose()
    print(
        f"timers pending  {queues.timers_pending}\ntimers due      {queues.timers_due}\n"
        f"timer lag       {queues.timer_lag.total_seconds():.1f}s\n"
        f"events waiting  {queues.events_waiting}\ndeliveries      "
        + ", ".join(f"{k} {v}" for k, v in sorted(queues.deliveries.items()))
        + f"\nsending stuck   {queues.sending_stuck} (longer than "
        f"{queues.stuck_after.total_seconds():g}s; the scheduler settles them as unknown)"
    )
    return 0


def cmd_report(_: argparse.Namespace) -> int:
    db = _db()
    sent = report(db)
    db.dispose()
    print(f"{'scenario':20} {'step':10} {'channel':8} {'sent':>6}")
    for row in sent.rows:
        print(f"{row.scenario:20} {row.step:10} {row.channel:8} {row.sent:>6}")
    for scenario, count in sent.recovered.items():
        print(f"recovered carts in {scenario}: {count}")
    return 0


__all__ = ["cmd_preview", "cmd_report", "cmd_simulate", "cmd_status", "simulate", "sys"]
