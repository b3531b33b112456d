"""`cartflow status` and `cartflow report` over a database with a day of journeys, and
without one: a read-only command never creates a database."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cartflow.engine.scenario.loader import load_config
from cartflow.providers.registry import validators
from cartflow.workers.cli import main
from cartflow.workers.tools import read_events, simulate

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


# -- no database: exit 1, say where it looked and how to look elsewhere, create nothing --------
@pytest.fixture
def empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current folder is an empty one and CARTFLOW_DATABASE_URL is unset, so the
    default ``sqlite:///cartflow.db`` points into it."""
    folder = tmp_path / "shop"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv("CARTFLOW_DATABASE_URL", raising=False)
    monkeypatch.delenv("CARTFLOW_DEBUG", raising=False)
    return folder


def _no_traceback(err: str) -> None:
    assert "Traceback" not in err and "internal error" not in err, err
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("command", ["status", "report"])
def test_without_a_database_nothing_is_created_and_the_path_is_named(
    empty_folder: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # When
    code = main([command])
    # Then
    err = capsys.readouterr().err
    assert code == 1
    assert os.listdir(empty_folder) == []
    assert f"no database at {empty_folder / 'cartflow.db'}" in err
    assert "CARTFLOW_DATABASE_URL" in err
    _no_traceback(err)


@pytest.mark.parametrize("command", ["status", "report"])
def test_an_empty_file_is_not_a_database_and_is_left_as_it_was(
    empty_folder: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the empty cartflow.db an earlier version left behind
    (empty_folder / "cartflow.db").touch()
    # When
    code = main([command])
    # Then
    err = capsys.readouterr().err
    assert code == 1
    assert os.listdir(empty_folder) == ["cartflow.db"]
    assert (empty_folder / "cartflow.db").stat().st_size == 0
    assert f"{empty_folder / 'cartflow.db'} (sqlite:///cartflow.db) has no cartflow tables" in err
    assert "CARTFLOW_DATABASE_URL" in err
    _no_traceback(err)


def test_a_file_that_is_not_sqlite_is_one_line_exit_1(
    empty_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (empty_folder / "cartflow.db").write_text("not a database\n" * 100)
    assert main(["status"]) == 1
    err = capsys.readouterr().err
    assert "file is not a database" in err and str(empty_folder / "cartflow.db") in err
    _no_traceback(err)


def test_an_unreachable_server_is_named_with_its_password_masked(
    empty_folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a PostgreSQL URL with a password, where nothing listens (port 1)
    monkeypatch.setenv("CARTFLOW_DATABASE_URL", "postgresql://shop:s3cret@127.0.0.1:1/cartflow")
    # When
    code = main(["report"])
    # Then
    err = capsys.readouterr().err
    assert code == 1
    assert "postgresql://shop:***@127.0.0.1:1/cartflow" in err
    assert "s3cret" not in err
    _no_traceback(err)


def test_diff_does_not_create_the_database_it_is_pointed_at(
    empty_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(ROOT / "scenarios.yaml")
    code = main(["diff", config, config, "--database", "sqlite:///journeys.db"])
    assert code == 1
    assert os.listdir(empty_folder) == []
    assert f"no database at {empty_folder / 'journeys.db'}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "first_line"),
    [("status", "timers pending  0"), ("report", "scenario")],
)
def test_a_migrated_empty_database_prints_its_tables(
    migrated_template: Path,
    empty_folder: Path,
    command: str,
    first_line: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a freshly migrated database as cartflow.db in the current folder
    shutil.copy(migrated_template, empty_folder / "cartflow.db")
    before = (empty_folder / "cartflow.db").read_bytes()
    # When
    code = main([command])
    # Then: the table, and the database as it was
    assert code == 0
    assert capsys.readouterr().out.splitlines()[0].startswith(first_line)
    assert (empty_folder / "cartflow.db").read_bytes() == before


def test_status_and_report_are_engine_queries_at_the_time_given(day_database: Path) -> None:
    from datetime import timedelta

    from cartflow.engine.ops import report, status
    from cartflow.engine.store.database import Database

    # Given the day's database, read at noon (the time the simulation stopped)
    db = Database(f"sqlite:///{day_database}", read_only=True)
    noon = datetime(2026, 11, 23, 12, tzinfo=UTC)
    # When
    queues = status(db, noon, stuck_after=timedelta(minutes=5))
    sent = report(db)
    db.dispose()
    # Then: the numbers the CLI prints, as values
    assert queues.timers_pending == 2
    assert queues.deliveries == {"accepted": 4}
    assert {(r.scenario, r.step, r.channel): r.sent for r in sent.rows}[
        ("abandoned_cart", "push", "push")
    ] == 2
    assert sent.recovered == {"abandoned_cart": 1}
