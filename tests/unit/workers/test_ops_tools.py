"""`cartflow status` and `cartflow report` over a database with a day of journeys."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.scenario.loader import load_config
from providers.registry import validators
from workers.cli import main
from workers.tools import read_events, simulate

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def day_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = load_config(ROOT / "scenarios.yaml", provider_types=validators())
    noon = datetime(2026, 11, 23, 12, tzinfo=UTC)
    events = [
        e for e in read_events(str(ROOT / "examples" / "events.jsonl")) if e.at and e.at < noon
    ]
    simulate(config, events, until=noon, workdir=tmp_path)
    monkeypatch.setenv("CARTFLOW_DATABASE_URL", f"sqlite:///{tmp_path / 'simulate.db'}")
    return tmp_path / "simulate.db"


def test_status_shows_timers_events_and_deliveries(
    day_database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    # pending at noon: anna's email and emma's email (both journeys still running)
    assert int(out.split("timers pending")[1].split()[0]) == 2
    assert "events waiting  0" in out
    assert "deliveries      accepted 4" in out  # anna push+sms, oksana push, emma push


def test_report_counts_sends_per_step_and_recovered_carts(
    day_database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report"]) == 0
    out = capsys.readouterr().out
    rows = {
        tuple(line.split()[:3]): int(line.split()[3])
        for line in out.splitlines()[1:]
        if line and not line.startswith("recovered")
    }
    # by 12:00 UTC: anna push+sms, oksana push, emma push (high value)
    assert rows[("abandoned_cart", "push", "push")] == 2
    assert rows[("abandoned_cart", "sms", "sms")] == 1
    assert rows[("high_value_cart", "push", "push")] == 1
    # oksana paid after her push
    assert "recovered carts in abandoned_cart: 1" in out
