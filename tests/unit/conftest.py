"""Fixtures for the engine's unit tests.

``clock``     a :class:`SimulatedClock` at 2026-11-22 07:00 UTC (10:00 in Moscow, a Sunday):
              every channel may send right away, so quiet hours only matter when a test
              moves the clock on purpose.
``db``        a fresh, migrated SQLite file per test (the migration runs once per session;
              each test gets a copy of that file).
``recorder``  a :class:`RecordingProvider` behind every channel (``.calls`` adds when).
``engine``    the real :class:`Engine` with the shipped ``scenarios.yaml``.
``sim``       a :class:`Simulation` driving ``engine`` on ``clock``.

Event builders and read-backs live in ``factories.py`` next to this file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from cartflow.engine.clock import SimulatedClock
from cartflow.engine.configs import ConfigHolder
from cartflow.engine.scenario.loader import Config, load_config
from cartflow.engine.service import Engine
from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Database
from cartflow.providers.recording import RecordingProvider
from cartflow.providers.registry import validators

from .factories import T0, ClockedRecorder, build_engine, fresh_database


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """Each test starts from the logging set-up the one before found: a command a test
    runs (``cartflow demo``, ``simulate``…) configures structlog for its console, and a
    level filter left behind would hide the info events later tests capture."""
    before = structlog.get_config()
    yield
    structlog.configure(**before)


#: The repository root: the shipped ``scenarios.yaml`` and ``templates/`` live here.
ROOT = Path(__file__).resolve().parents[2]


# -- database -------------------------------------------------------------------------
@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file; tests copy it instead of migrating again."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    database = Database(f"sqlite:///{path}")
    database.migrate()
    database.dispose()
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    return path


@pytest.fixture
def db(migrated_template: Path, tmp_path: Path) -> Iterator[Database]:
    database = fresh_database(migrated_template, tmp_path)
    yield database
    database.dispose()


# -- configuration, clock, providers, engine --------------------------------------------
@pytest.fixture(scope="session")
def shipped_config() -> Config:
    """The shipped example configuration (scenarios.yaml + scenarios/abandoned_cart.yaml)."""
    return load_config(ROOT / "scenarios.yaml", provider_types=validators())


@pytest.fixture
def configs(shipped_config: Config) -> ConfigHolder:
    return ConfigHolder(shipped_config)


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(T0)


@pytest.fixture
def recorder(clock: SimulatedClock) -> ClockedRecorder:
    """A :class:`RecordingProvider` that also notes the time of every call."""
    return ClockedRecorder(clock)


@pytest.fixture
def engine(
    db: Database, clock: SimulatedClock, configs: ConfigHolder, recorder: RecordingProvider
) -> Engine:
    return build_engine(db, clock, configs, recorder)


@pytest.fixture
def sim(engine: Engine, clock: SimulatedClock) -> Simulation:
    return Simulation(engine, clock)
