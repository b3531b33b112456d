"""`cartflow diff`: what changed, which running journeys it touches, and migrating them."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from cartflow.engine.configs import ConfigHolder
from cartflow.engine.scenario.diff import diff_configs
from cartflow.engine.scenario.loader import load_config
from cartflow.engine.store.database import Database
from cartflow.engine.store.models import Journey, Timer
from cartflow.providers.registry import validators
from cartflow.workers.cli import main
from cartflow.workers.diff import migrate
from cartflow.workers.tools import read_events, simulate

ROOT = Path(__file__).resolve().parents[3]


def _copy(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    target.mkdir()
    shutil.copy(ROOT / "scenarios.yaml", target)
    shutil.copytree(ROOT / "scenarios", target / "scenarios")
    shutil.copytree(ROOT / "templates", target / "templates")
    return target / "scenarios.yaml"


def test_diff_names_each_change(tmp_path: Path) -> None:
    # Given a copy where the SMS comes an hour earlier and the English SMS text changed
    new = _copy(tmp_path, "new")
    step_file = new.parent / "scenarios" / "abandoned_cart.yaml"
    step_file.write_text(step_file.read_text().replace("after: 3h", "after: 2h"))
    sms = new.parent / "templates" / "abandoned_cart" / "sms.en.j2"
    sms.write_text(sms.read_text().replace("waiting", "still waiting"))
    (new.parent / "scenarios" / "high_value_cart.yaml").unlink()
    # When the two are compared
    changes = diff_configs(
        load_config(ROOT / "scenarios.yaml", provider_types=validators()),
        load_config(new, provider_types=validators()),
    )
    # Then each change is named, and nothing else
    assert [(c.scenario, c.kind) for c in changes.scenarios] == [
        ("abandoned_cart", "changed"),
        ("high_value_cart", "removed"),
    ]
    assert changes.scenarios[0].details == ["~ steps.sms.after: '3h' → '2h'"]
    assert changes.templates == ["~ abandoned_cart/sms.en.j2"]
    assert changes.settings == []


def test_identical_configs_have_the_same_version_wherever_they_live(tmp_path: Path) -> None:
    a = load_config(ROOT / "scenarios.yaml", provider_types=validators())
    b = load_config(_copy(tmp_path, "copy"), provider_types=validators())
    assert a.version == b.version
    assert diff_configs(a, b).empty


def test_in_flight_journeys_counted_and_migrated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given journeys in flight: the example day simulated until 12:00 UTC
    config = load_config(ROOT / "scenarios.yaml", provider_types=validators())
    events = [
        e
        for e in read_events(str(ROOT / "examples" / "events.jsonl"))
        if e.at and e.at < datetime(2026, 11, 23, 12, tzinfo=UTC)
    ]
    simulate(config, events, until=datetime(2026, 11, 23, 12, tzinfo=UTC), workdir=tmp_path)
    url = f"sqlite:///{tmp_path / 'simulate.db'}"
    db = Database(url)
    with db.sessions() as session:
        active = {
            j.cart_id: j.step_index
            for j in session.scalars(select(Journey).where(Journey.status == "active"))
        }
    # anna waits for her email (step 2); emma (high_value) waits for her email (step 1)
    assert active == {"cart_anna": 2, "cart_emma": 1}
    # And a new version where only the abandoned_cart SMS moves
    new = _copy(tmp_path, "new")
    step_file = new.parent / "scenarios" / "abandoned_cart.yaml"
    step_file.write_text(step_file.read_text().replace("after: 24h", "after: 20h"))
    # When diffed against the database, keeping running journeys
    code = main(["diff", str(ROOT / "scenarios.yaml"), str(new), "--database", url])
    out = capsys.readouterr().out
    # Then anna's journey is the one that would change, and nothing moved
    assert code == 0
    assert "in-flight journeys on" in out and ": 2" in out
    assert "1 would take a different path (abandoned_cart: remaining steps differ)" in out
    assert "keep their version" in out
    with db.sessions() as session:
        rows = list(session.scalars(select(Journey).where(Journey.status == "active")))
    assert {j.scenario_version for j in rows} == {config.version}
    ids = [j.id for j in rows]
    # When migrating explicitly (at 12:00 UTC, where the simulation stopped)
    new_config = load_config(new, provider_types=validators())
    holder = ConfigHolder(new_config)
    moved = migrate(db, holder, config, new_config, ids, datetime(2026, 11, 23, 12, tzinfo=UTC))
    assert (moved.migrated, sum(moved.ended.values())) == (2, 0)
    new_version = new_config.version
    with db.sessions() as session:
        anna = session.scalar(select(Journey).where(Journey.cart_id == "cart_anna"))
        assert anna is not None and anna.scenario_version == new_version and anna.step_index == 2
        timer = session.scalar(select(Timer).where(Timer.ref == anna.id))
        # the email step re-planned on the new definition: 20h after the cart (07:00 UTC)
        assert timer is not None and timer.due_at == datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
    db.dispose()


def test_diff_of_unknown_revision_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", "no-such-rev-xyz", str(ROOT / "scenarios.yaml")]) == 2
    err = capsys.readouterr().err
    assert "neither a file nor a git revision" in err and "Traceback" not in err


def test_cli_migrate_moves_running_journeys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = load_config(ROOT / "scenarios.yaml", provider_types=validators())
    events = [
        e
        for e in read_events(str(ROOT / "examples" / "events.jsonl"))
        if e.at and e.at < datetime(2026, 11, 23, 12, tzinfo=UTC)
    ]
    simulate(config, events, until=datetime(2026, 11, 23, 12, tzinfo=UTC), workdir=tmp_path)
    url = f"sqlite:///{tmp_path / 'simulate.db'}"
    new = _copy(tmp_path, "new")
    step_file = new.parent / "scenarios" / "abandoned_cart.yaml"
    step_file.write_text(step_file.read_text().replace("after: 24h", "after: 20h"))
    assert (
        main(
            [
                "diff",
                str(ROOT / "scenarios.yaml"),
                str(new),
                "--database",
                url,
                "--apply",
                "migrate",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "migrated 2 journey(s)" in out
    assert "ended 0 journey(s)" in out and "left 0 journey(s) on their version" in out
    db = Database(url)
    with db.sessions() as session:
        versions = set(
            session.scalars(select(Journey.scenario_version).where(Journey.status == "active"))
        )
    db.dispose()
    assert versions == {load_config(new, provider_types=validators()).version}


def test_cli_migrate_reports_a_journey_it_ended_as_ended(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given anna waiting for the email step and emma (high_value_cart) for hers
    config = load_config(ROOT / "scenarios.yaml", provider_types=validators())
    events = [
        e
        for e in read_events(str(ROOT / "examples" / "events.jsonl"))
        if e.at and e.at < datetime(2026, 11, 23, 12, tzinfo=UTC)
    ]
    simulate(config, events, until=datetime(2026, 11, 23, 12, tzinfo=UTC), workdir=tmp_path)
    url = f"sqlite:///{tmp_path / 'simulate.db'}"
    # and a new version whose abandoned_cart has no email step any more
    new = _copy(tmp_path, "new")
    step_file = new.parent / "scenarios" / "abandoned_cart.yaml"
    text = step_file.read_text()
    step_file.write_text(text[: text.index("  - id: email")])
    # When migrating
    args = ["diff", str(ROOT / "scenarios.yaml"), str(new), "--database", url]
    assert main([*args, "--apply", "migrate"]) == 0
    out = capsys.readouterr().out
    # Then the report says what happened to each: one moved, one ended with its reason
    assert "migrated 1 journey(s)" in out, out
    assert "ended 1 journey(s): all steps done" in out, out
    db = Database(url)
    with db.sessions() as session:
        anna = session.scalar(select(Journey).where(Journey.cart_id == "cart_anna"))
    db.dispose()
    assert anna is not None and anna.status == "completed"
