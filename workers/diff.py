"""``cartflow diff OLD NEW``: what changed, and which running journeys it would touch.

OLD and NEW are paths to ``scenarios.yaml`` or git revisions (``HEAD~1``, ``main``; the
config path is then taken inside the revision). ``--apply keep`` (default) leaves running
journeys on their version; ``--apply migrate`` moves them to NEW and re-plans their next
step — an explicit, logged choice.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import tarfile
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from cartflow.engine.clock import SystemClock
from cartflow.engine.configs import ConfigHolder
from cartflow.engine.journeys import finish, schedule_step
from cartflow.engine.scenario.diff import diff_configs, journey_path_changes
from cartflow.engine.scenario.loader import Config, load_config
from cartflow.engine.store.database import Database
from cartflow.engine.store.models import Journey
from cartflow.providers.registry import validators
from cartflow.workers.errors import CliError
from cartflow.workers.tools import existing_database


def resolve(spec: str, config_name: str) -> Config:
    path = Path(spec)
    if path.is_file():
        return load_config(path, provider_types=validators())
    if path.is_dir() and (path / config_name).is_file():
        return load_config(path / config_name, provider_types=validators())
    try:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True
        ).stdout.strip()
        archive = subprocess.run(
            ["git", "archive", "--format=tar", spec], capture_output=True, check=True, cwd=top
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        raise CliError(f"{spec!r} is neither a file nor a git revision") from None
    directory = Path(tempfile.mkdtemp(prefix="cartflow-diff-"))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(directory, filter="data")
    relative = (
        Path(config_name).resolve().relative_to(Path(top).resolve())
        if Path(config_name).is_absolute()
        else Path.cwd().resolve().relative_to(Path(top).resolve()) / config_name
    )
    target = directory / relative
    if not target.is_file():
        raise CliError(f"revision {spec} has no {relative}")
    return load_config(target, provider_types=validators())


def cmd_diff(args: argparse.Namespace) -> int:
    old = resolve(args.old, args.config)
    new = resolve(args.new, args.config)
    changes = diff_configs(old, new)
    print(f"config {old.version} → {new.version}")
    if changes.empty:
        print("no changes")
    for line in changes.settings:
        print(f"settings {line}")
    for change in changes.scenarios:
        print(f"scenario {change.scenario}: {change.kind}")
        for detail in change.details:
            print(f"    {detail}")
    for line in changes.templates:
        print(f"template {line}")
    if not args.database:
        print("\n(in-flight journeys: pass --database URL or set CARTFLOW_DATABASE_URL)")
        return 0
    db = existing_database(args.database, read_only=args.apply == "keep")
    holder = ConfigHolder(new)
    holder.add_version(old)
    affected: Counter[str] = Counter()
    total: Counter[str] = Counter()
    moving: list[str] = []
    with db.reading() as session:
        journeys = list(session.scalars(select(Journey).where(Journey.status == "active")))
    for journey in journeys:
        base = old if journey.scenario_version == old.version else None
        if base is None:
            continue
        total[journey.scenario] += 1
        reason = journey_path_changes(base, new, journey.scenario, journey.step_index)
        if reason:
            affected[f"{journey.scenario}: {reason}"] += 1
            moving.append(journey.id)
    print(f"\nin-flight journeys on {old.version}: {sum(total.values())}")
    for key, count in sorted(affected.items()):
        print(f"  {count} would take a different path ({key})")
    if not affected:
        print("  none would take a different path")
    if args.apply == "migrate":
        ids = [j.id for j in journeys if j.scenario_version == old.version]
        result = migrate(db, holder, old, new, ids, SystemClock().now())
        print("\n".join(result.lines(new.version, left=len(journeys) - len(ids))))
    else:
        print("running journeys keep their version (use --apply migrate to move them)")
    db.dispose()
    return 0


@dataclass
class Migration:
    """What ``--apply migrate`` did, journey by journey."""

    migrated: int = 0
    #: Journeys the new version ended at once, by reason (scenario removed, expired …).
    ended: Counter[str] = field(default_factory=Counter)

    def lines(self, version: str, left: int) -> list[str]:
        out = [f"migrated {self.migrated} journey(s) to {version}"]
        for reason, count in sorted(self.ended.items()):
            out.append(f"ended {count} journey(s): {reason}")
        if not self.ended:
            out.append("ended 0 journey(s)")
        out.append(f"left {left} journey(s) on their version")
        return out


def migrate(
    db: Database, holder: ConfigHolder, old: Config, new: Config, ids: list[str], now: datetime
) -> Migration:
    """Move journeys to ``new``: same step id if it still exists, re-planned timer. A
    journey the new version ends at once (its scenario is gone, its next step falls after
    the expiry, no step is left) is counted as ended, with the reason, not as migrated."""
    holder.attach(db)
    result = Migration()
    with db.transaction() as session:
        for journey in session.scalars(
            select(Journey).where(Journey.id.in_(ids)).with_for_update()
        ):
            before = old.scenario(journey.scenario)
            after = new.scenario(journey.scenario)
            if after is None:
                reason = f"scenario removed in config {new.version}"
                finish(session, journey, "exited", reason, now)
                result.ended[reason] += 1
                continue
            current = before.step(journey.step_index) if before else None
            index = next(
                (i for i, s in enumerate(after.model.steps) if current and s.id == current.id),
                min(journey.step_index, len(after.model.steps)),
            )
            journey.scenario_version = new.version
            schedule_step(
                session, after, journey, index, now, previous_at=journey.last_sent_at or now
            )
            if journey.status == "active":
                result.migrated += 1
            else:
                result.ended[journey.exit_reason or journey.status] += 1
    return result
