"""``cartflow features rebuild [--all]`` over an install whose kept features are missing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from cartflow.engine.features import read_features
from cartflow.engine.store import Database, Profile
from cartflow.workers.cli import main

from ..engine.test_features_backfill import _apply_live, _history
from ..factories import T0


@pytest.fixture
def upgraded(db: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    """A day of history applied, then the kept features gone (an install from before)."""
    _apply_live(db, _history())
    with db.sessions() as session, session.begin():
        session.execute(text("DELETE FROM profile_features"))
    monkeypatch.setenv("CARTFLOW_DATABASE_URL", db.url)
    return db


def _sessions(db: Database) -> int:
    with db.sessions() as session:
        profile = session.scalars(select(Profile)).one()
        features = read_features(session, profile.id, T0 + timedelta(days=3), None)
    return int(features["sessions"])


def test_rebuild_writes_the_missing_ones_and_says_how_many(
    upgraded: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _sessions(upgraded) == 0
    assert main(["features", "rebuild"]) == 0
    assert capsys.readouterr().out == "features rebuilt for 1 profile(s) without any\n"
    assert _sessions(upgraded) == 3
    # once written, nothing is missing any more
    assert main(["features", "rebuild"]) == 0
    assert capsys.readouterr().out.startswith("features rebuilt for 0 profile(s)")


def test_all_rebuilds_every_profile(upgraded: Database, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["features", "rebuild"]) == 0
    with upgraded.sessions() as session, session.begin():
        session.execute(text("""UPDATE profile_features SET doc = '{"sessions": 99}'"""))
    assert _sessions(upgraded) == 99
    capsys.readouterr()
    assert main(["features", "rebuild", "--all"]) == 0
    assert capsys.readouterr().out == "features rebuilt for 1 profile(s)\n"
    assert _sessions(upgraded) == 3


def test_features_needs_an_action(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["features"])
    assert exited.value.code == 2
    assert "rebuild" in capsys.readouterr().err
