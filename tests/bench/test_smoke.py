"""Each benchmark runs at a tiny size and says what it measured (no timing asserted).

The benchmarks start their own PostgreSQL and Redis (bench/servers.py), so these tests
need the same server binaries as the integration suite. What they check is that a
benchmark still runs on the current code and counts what it promises to count — the
guarantees (nothing lost, nothing twice) included — not how fast anything is.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

pytestmark = [pytest.mark.postgres]


def run(script: str, *args: str, timeout: float = 280) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=BENCH.parent,
    )
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done.stdout


def table_rows(text: str, first_cell: str, after: str = "") -> list[list[str]]:
    """Rows of the first table after the line starting with ``after`` whose first cell
    starts with ``first_cell``."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(after)), len(lines))
    rows = []
    for line in lines[start + 1 if after else 0 :]:
        if rows and not line.startswith("|"):
            break
        if line.startswith(f"| {first_cell}"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_backfill_rebuilds_what_the_live_path_kept() -> None:
    out = run("backfill.py", "--shoppers", "12", "--views", "2", "--batches", "5,50")
    rows = table_rows(out, "rebuild")
    assert [row[1] for row in rows] == ["5 profiles", "50 profiles"], out
    assert "rebuilt equal to live: True" in out


def test_hotpath_reports_every_phase_per_unit() -> None:
    out = run("hotpath.py", "--shoppers", "12")
    rows = {row[0]: row for row in table_rows(out, "") if row[0] in ("apply", "idle", "send")}
    assert set(rows) == {"apply", "idle", "send"}, out
    for phase, row in rows.items():
        assert row[1] == "12", f"{phase}: every shopper's unit ran"
        assert float(row[4]) > 0, f"{phase}: statements were counted"
        assert float(row[5]) > 0, f"{phase}: commits were counted"
    assert "Provider calls: 12 of 12." in out


def test_timer_dispatch_claims_each_timer_once() -> None:
    out = run("timers.py", "--sizes", "2000", "--due", "200", "--rounds", "1")
    rows = table_rows(out, "2,000")
    assert len(rows) == 1, out
    *_, twice, left = rows[0]
    assert (twice, left) == ("0", "0"), "a timer was claimed twice or left over"


@pytest.mark.redis
def test_reminders_end_to_end_loses_and_duplicates_nothing() -> None:
    out = run(
        "reminders.py",
        "--systems",
        "cartflow,dramatiq",
        "--only",
        "burst,ingest",
        "--reminders",
        "40",
        "--events",
        "300",
        "--single-seconds",
        "1",
        "--single-rate",
        "20",
        "--drain",
        "120",
        "--settle",
        "1",
        "--orders",
        "0.1",
        "--lead-floor",
        "2",
        timeout=290,
    )
    burst = {
        row[0]: row for row in table_rows(out, "") if row[0] in ("cartflow", "Dramatiq (delay)")
    }
    assert set(burst) == {"cartflow", "Dramatiq (delay)"}, out
    for system, row in burst.items():
        duplicates, lost, orders = row[5], row[6], row[8]
        assert (duplicates, lost) == ("0", "0"), f"{system}: duplicates {duplicates}, lost {lost}"
        assert orders == "4", f"{system}: 10% of 40 carts ordered before due"
    assert burst["cartflow"][7] == "0", "cartflow sent a reminder after its cart's order"
    # the bare task does not look for orders: every ordered cart's reminder goes out
    assert burst["Dramatiq (delay)"][7] == "4", burst["Dramatiq (delay)"]
    ingest = table_rows(out, "cartflow", "### Scheduling")
    assert ingest and ingest[0][1] == "300", out
    assert re.fullmatch(r"[\d,]+", ingest[0][4]), f"applied/s measured: {ingest[0]}"


@pytest.mark.redis
def test_scheduler_parts_lose_duplicate_and_send_after_order_nothing() -> None:
    # Given cartflow with Dramatiq (no scheduler process of its own; Celery is the bench
    # extra, which `make test` does not install)
    # When the scheduler is SIGKILLed mid-burst, two schedulers run at once, and a burst
    # fires with other timers pending far ahead
    out = run(
        "reminders.py",
        "--systems",
        "cartflow,dramatiq",
        "--only",
        "scheduler-crash,schedulers,scale",
        "--crash-reminders",
        "30",
        "--part-reminders",
        "30",
        "--scheduler-counts",
        "2",
        "--pending-sizes",
        "3000",
        "--orders",
        "0.1",
        "--lead-floor",
        "2",
        "--drain",
        "60",
        "--crash-drain",
        "60",
        "--settle",
        "1",
        timeout=200,
    )
    # Then cartflow counts no duplicate, no loss and no send after an order in any of them
    crash = table_rows(out, "", "### Scheduler crash")
    rows = {row[0]: row for row in crash}
    assert rows["cartflow"][5:9] == ["0", "0", "0", "3"], rows["cartflow"]
    assert rows["Dramatiq (delay)"][1].startswith("n/a: no scheduler process"), rows
    two = table_rows(out, "cartflow, 2 schedulers", "### Burst with 2 schedulers")
    assert two and two[0][5:9] == ["0", "0", "0", "3"], out
    scale = table_rows(out, "3,000", "### Pending scale")
    assert scale, out
    _, _, _, _, _, _, duplicates, lost, after_order, orders, per_timer, *_ = scale[0]
    assert (duplicates, lost, after_order, orders) == ("0", "0", "0", "3"), scale[0]
    assert re.fullmatch(r"[\d,]+", per_timer), f"bytes per pending timer measured: {scale[0]}"
