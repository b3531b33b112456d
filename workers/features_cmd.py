"""``cartflow features rebuild [--all]``: rebuild the shoppers' kept features from what
the database holds — the retained events, the visits and the paid carts
(:mod:`cartflow.engine.features_backfill`, which migration 0015 ran once on upgrade).

Without ``--all`` only profiles without a document are rebuilt; ``--all`` rebuilds every
one (after a restore, or to repair documents). Each batch is its own transaction and locks
its profiles as applying an event does, so it may run while the engine runs. Prints how
many profiles were written.
"""

from __future__ import annotations

import argparse
import logging

from cartflow.workers.profile_cmd import logs_to_stderr


def cmd_rebuild(args: argparse.Namespace) -> int:
    from cartflow.engine.clock import SystemClock
    from cartflow.engine.features_backfill import backfill
    from cartflow.workers.settings import Settings
    from cartflow.workers.tools import existing_database

    db = existing_database(Settings().database_url, read_only=False)
    try:
        with db.sessions() as session, logs_to_stderr(logging.INFO):
            written = backfill(session, SystemClock().now(), only_missing=not args.all, commit=True)
    finally:
        db.dispose()
    print(f"features rebuilt for {written} profile(s)" + ("" if args.all else " without any"))
    return 0
