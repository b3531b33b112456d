"""``cartflow import customers.csv|orders.csv``: a shop's history as native events.

The file kind comes from its header: an ``order_id`` column makes it an orders file (each
row an ``order.completed``), otherwise a ``customer_id`` column makes it a customers file
(each row a ``customer.updated`` with the lifetime figures). Columns, any order, unknown
ones ignored:

* customers: ``customer_id`` (required), ``email``, ``phone``, ``first_name``,
  ``orders_count``, ``total_spent``, ``currency``, ``discount_orders_count``,
  ``first_order_at``, ``last_order_at``. The figures are "as of" ``--as-of`` (default:
  the file's modification time), the baseline that orders cartflow sees later add to.
* orders: ``order_id``, ``customer_id``, ``created_at`` (required), ``total``,
  ``currency``, ``discount_code``.

Each row goes through the same ingest as ``POST /v1/events`` (stored, then applied), with
an id derived from the row's content, so importing a file again applies nothing twice. A
bad row is reported as ``file:line: column 'x': why`` and skipped (a row is one event:
nothing of it is half-applied); the others are applied; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cartflow.engine.clock import SystemClock
from cartflow.engine.configs import ConfigHolder
from cartflow.engine.events import Event
from cartflow.engine.scenario.loader import load_config
from cartflow.engine.service import Engine
from cartflow.providers.registry import ChannelRouter, validators
from cartflow.workers.errors import CliError
from cartflow.workers.settings import Settings
from cartflow.workers.tools import existing_database

CONTACT = ("email", "phone", "first_name")
FIGURES = (
    "orders_count",
    "total_spent",
    "currency",
    "discount_orders_count",
    "first_order_at",
    "last_order_at",
)
ORDER = {
    "order_id": "id",
    "total": "total",
    "currency": "currency",
    "discount_code": "discount_code",
}


def _event_id(kind: str, body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"imp_{kind}_{hashlib.sha256(canonical.encode()).hexdigest()[:32]}"


def _customer(row: dict[str, str], as_of: str) -> tuple[dict[str, Any], dict[tuple[Any, ...], str]]:
    body: dict[str, Any] = {"type": "customer.updated", "at": as_of}
    columns: dict[tuple[Any, ...], str] = {("customer_id",): "customer_id"}
    body["customer_id"] = row.get("customer_id", "")
    contact = {k: row[k] for k in CONTACT if row.get(k)}
    if contact:
        body["contact"] = contact
        columns.update({("contact", k): k for k in contact})
    body["customer"] = {k: row[k] for k in FIGURES if row.get(k)}
    columns.update({("customer", k): k for k in FIGURES})
    return body, columns


def _order(row: dict[str, str]) -> tuple[dict[str, Any], dict[tuple[Any, ...], str]]:
    body: dict[str, Any] = {
        "type": "order.completed",
        "at": row.get("created_at", ""),
        "customer_id": row.get("customer_id", ""),
        "order": {field: row[col] for col, field in ORDER.items() if row.get(col)},
    }
    columns: dict[tuple[Any, ...], str] = {("at",): "created_at", ("customer_id",): "customer_id"}
    columns.update({("order", field): col for col, field in ORDER.items()})
    return body, columns


def _column(loc: tuple[Any, ...], columns: dict[tuple[Any, ...], str]) -> str:
    for size in range(len(loc), 0, -1):
        if tuple(loc[:size]) in columns:
            return columns[tuple(loc[:size])]
    return str(loc[-1]) if loc else "?"


def read_rows(path: Path, as_of: str) -> tuple[list[Event], list[str], int]:
    """The file's rows as events, the problems (``file:line: column 'x': why``), rows read."""
    events: list[Event] = []
    problems: list[str] = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        required: tuple[str, ...]
        if "order_id" in header:
            kind, required = "order", ("order_id", "customer_id", "created_at")
        elif "customer_id" in header:
            kind, required = "customer", ("customer_id",)
        else:
            raise CliError(f"{path}:1: the header needs a customer_id (and order_id for orders)")
        missing = [c for c in required if c not in header]
        if missing:
            raise CliError(f"{path}:1: column {missing[0]!r}: missing from the header")
        count = 0
        for row in reader:
            count += 1
            line = reader.line_num
            cells = {k: (v or "").strip() for k, v in row.items() if k is not None}
            empty = [c for c in required if not cells.get(c)]
            if empty:
                problems.append(f"{path}:{line}: column {empty[0]!r}: empty")
                continue
            body, columns = _customer(cells, as_of) if kind == "customer" else _order(cells)
            body["id"] = _event_id(kind, body)
            try:
                events.append(Event.model_validate(body))
            except ValidationError as exc:
                first = exc.errors()[0]
                column = _column(tuple(first["loc"]), columns)
                problems.append(f"{path}:{line}: column {column!r}: {first['msg']}")
    return events, problems, count


def cmd_import(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"no file {path}")
    mtime = datetime.fromtimestamp(int(path.stat().st_mtime), UTC)
    as_of = args.as_of or mtime.isoformat()
    events, problems, count = read_rows(path, as_of)
    for problem in problems:
        print(problem, file=sys.stderr)
    settings = Settings()
    db = existing_database(settings.database_url, read_only=False)
    try:
        config = load_config(args.config, provider_types=validators())
        engine = Engine(db, SystemClock(), ConfigHolder(config), ChannelRouter({}))
        new = engine.ingest(events) if events else []
        applied = engine.apply_events(new) if new else 0
    finally:
        db.dispose()
    print(
        f"{path}: {count} rows, {applied} applied, {len(events) - len(new)} already imported, "
        f"{len(problems)} bad"
    )
    return 1 if problems else 0
