"""The live configuration, and every version a running journey may still need.

A journey keeps the scenario version it started with: :meth:`ConfigHolder.config_for`
returns that version while it is loaded (the current one otherwise, noted in the log).
Reloading swaps the whole configuration at once; an invalid one is refused and the last
good one stays live.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import structlog

from engine.clock import Clock, SystemClock
from engine.scenario.loader import CompiledScenario, Config, ConfigError, load_config
from engine.store.database import Database
from engine.store.models import ConfigVersion, Journey

log = structlog.get_logger("cartflow.config")


class ConfigHolder:
    def __init__(self, config: Config, loader: Callable[[], Config] | None = None) -> None:
        self._lock = threading.Lock()
        self._current = config
        self._versions: dict[str, Config] = {config.version: config}
        self._loader = loader
        self._db: Database | None = None
        self._clock: Clock = SystemClock()

    def attach(self, db: Database, clock: Clock | None = None) -> None:
        """Persist every live version in ``db`` and read old ones back from it."""
        self._db = db
        self._clock = clock or self._clock
        self._save(self._current)

    def _save(self, config: Config) -> None:
        if self._db is None:
            return
        from sqlalchemy.exc import IntegrityError

        from engine.scenario.snapshot import snapshot_files

        with self._db.transaction() as session:
            if session.get(ConfigVersion, config.version) is not None:
                return
        try:
            with self._db.transaction() as session:
                session.add(
                    ConfigVersion(
                        version=config.version,
                        created_at=self._clock.now(),
                        files=snapshot_files(config),
                    )
                )
        except IntegrityError:
            pass  # another process saved the same version first

    def _stored(self, version: str) -> Config | None:
        if self._db is None:
            return None
        from engine.scenario.snapshot import load_snapshot

        with self._db.reading() as session:
            row = session.get(ConfigVersion, version)
            files = dict(row.files) if row is not None else None
        if files is None:
            return None
        try:
            config = load_snapshot(files)
        except (ConfigError, ValueError, OSError):
            log.error("config_snapshot_invalid", version=version)
            return None
        with self._lock:
            self._versions[version] = config
        return config

    @classmethod
    def from_path(cls, path: str | Path, provider_types: object = None) -> ConfigHolder:
        def loader() -> Config:
            return load_config(path, provider_types=provider_types)

        return cls(loader(), loader)

    @property
    def current(self) -> Config:
        return self._current

    def config_for(self, journey: Journey) -> Config:
        """The configuration the journey started with (memory, then the database)."""
        found = self._versions.get(journey.scenario_version)
        if found is None:
            found = self._stored(journey.scenario_version)
        if found is None:
            log.warning(
                "config_version_missing",
                version=journey.scenario_version,
                journey_id=journey.id,
                using=self._current.version,
            )
            return self._current
        return found

    def scenario_for(self, journey: Journey) -> CompiledScenario | None:
        config = self.config_for(journey)
        scenario = config.scenario(journey.scenario)
        if scenario is None and config is not self._current:
            scenario = self._current.scenario(journey.scenario)
        return scenario

    def add_version(self, config: Config) -> None:
        with self._lock:
            self._versions.setdefault(config.version, config)

    def reload(self) -> bool:
        """Load the configuration again; True if a new valid version went live."""
        if self._loader is None:
            return False
        try:
            config = self._loader()
        except ConfigError as exc:
            log.error(
                "config_refused",
                problems=[str(p) for p in exc.problems if p.severity == "error"],
                live_version=self._current.version,
            )
            return False
        except Exception as exc:  # unreadable file, database hiccup: keep the live one
            log.error(
                "config_refused",
                problems=[f"{type(exc).__name__}: {exc}"],
                live_version=self._current.version,
            )
            return False
        if config.version == self._current.version:
            return False
        try:
            self._save(config)
        except Exception as exc:
            log.error("config_not_saved", version=config.version, error=type(exc).__name__)
            return False
        with self._lock:
            self._versions[config.version] = config
            self._current = config
        log.info(
            "config_reloaded", version=config.version, scenarios=[s.id for s in config.scenarios]
        )
        return True
