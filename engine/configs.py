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

from engine.scenario.loader import CompiledScenario, Config, ConfigError, load_config
from engine.store.models import Journey

log = structlog.get_logger("cartflow.config")


class ConfigHolder:
    def __init__(self, config: Config, loader: Callable[[], Config] | None = None) -> None:
        self._lock = threading.Lock()
        self._current = config
        self._versions: dict[str, Config] = {config.version: config}
        self._loader = loader

    @classmethod
    def from_path(cls, path: str | Path, provider_types: object = None) -> ConfigHolder:
        def loader() -> Config:
            return load_config(path, provider_types=provider_types)

        return cls(loader(), loader)

    @property
    def current(self) -> Config:
        return self._current

    def config_for(self, journey: Journey) -> Config:
        return self._versions.get(journey.scenario_version, self._current)

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
            log.error("config_refused", problems=[str(p) for p in exc.problems if p.severity == "error"],
                      live_version=self._current.version)
            return False
        if config.version == self._current.version:
            return False
        with self._lock:
            self._versions[config.version] = config
            self._current = config
        log.info("config_reloaded", version=config.version, scenarios=[s.id for s in config.scenarios])
        return True
