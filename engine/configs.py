"""The live configuration, and every version a running journey may still need.

A journey keeps the scenario version it started with: :meth:`ConfigHolder.config_for`
returns that version while it is loaded (the current one otherwise, noted in the log).
Reloading swaps the whole configuration at once; an invalid one is refused and the last
good one stays live. Whatever is built from the configuration once (the providers) hears
of each new version through :attr:`ConfigHolder.on_reload`.

A configuration read with :meth:`ConfigHolder.from_path` is watched cheaply (a hash of its
files); a change is first loaded in a child process (``python -m cartflow.engine.configs PATH``,
see :class:`~cartflow.engine.reload_check.ReloadCheck`) that is killed past a time and
memory limit, and only then in this process. A configuration that would hang or exhaust
the loader (however it manages to) is refused with a logged reason, and the workers and
the scheduler in this process never stop sending: the parent waits for the child without
holding the GIL.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path

import structlog
from sqlalchemy.exc import IntegrityError

from cartflow.engine.clock import Clock, SystemClock

# An ``X as X`` import re-exports a name defined here before (still imported from here).
from cartflow.engine.reload_check import RELOAD_CHECK_MEMORY as RELOAD_CHECK_MEMORY
from cartflow.engine.reload_check import RELOAD_CHECK_SECONDS as RELOAD_CHECK_SECONDS
from cartflow.engine.reload_check import ReloadCheck as ReloadCheck
from cartflow.engine.reload_check import check_main as check_main
from cartflow.engine.reload_check import fingerprint as fingerprint
from cartflow.engine.scenario.loader import CompiledScenario, Config, ConfigError, load_config
from cartflow.engine.scenario.snapshot import load_snapshot, snapshot_files
from cartflow.engine.store.database import Database
from cartflow.engine.store.models import ConfigVersion, Journey

log = structlog.get_logger("cartflow.config")


class ConfigHolder:
    def __init__(
        self,
        config: Config,
        loader: Callable[[], Config] | None = None,
        *,
        watch: Callable[[Config], str] | None = None,
        check: Callable[[], list[str]] | None = None,
    ) -> None:
        """``loader`` loads the configuration again; ``watch`` fingerprints its files (no
        reload while it stays the same); ``check`` tries a change out of process first."""
        self._lock = threading.Lock()
        self._current = config
        self._versions: dict[str, Config] = {config.version: config}
        self._loader = loader
        self._watch = watch
        self._check = check
        self._seen = watch(config) if watch is not None else None
        self._db: Database | None = None
        self._clock: Clock = SystemClock()
        #: Called with (the old, the new configuration) after a new version went live, in
        #: order; one that raises is logged and the others still run (the reload stands).
        self.on_reload: list[Callable[[Config, Config], None]] = []

    def attach(self, db: Database, clock: Clock | None = None) -> None:
        """Persist every live version in ``db`` and read old ones back from it."""
        self._db = db
        self._clock = clock or self._clock
        self._save(self._current)

    def _save(self, config: Config) -> None:
        if self._db is None:
            return
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
    def from_path(
        cls,
        path: str | Path,
        provider_types: object = None,
        check: ReloadCheck | None = ReloadCheck(),  # noqa: B008 -- frozen, shared safely
    ) -> ConfigHolder:
        """Load ``path`` now; reload it when its files change, after ``check`` (None: load
        changes in this process straight away)."""

        def loader() -> Config:
            return load_config(path, provider_types=provider_types)

        def watch(config: Config) -> str:
            return fingerprint(Path(path), config)

        return cls(
            loader(),
            loader,
            watch=watch,
            check=(lambda: check.problems(path)) if check is not None else None,
        )

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
        """Load the configuration again; True if a new valid version went live.

        With a ``watch``, nothing happens until the files change, and a refused change is
        not tried again until they change again."""
        if self._loader is None:
            return False
        seen = self._watch(self._current) if self._watch is not None else None
        if seen is not None and seen == self._seen:
            return False
        refused = self._check() if self._check is not None else []
        if refused:
            log.error("config_refused", problems=refused, live_version=self._current.version)
            self._seen = seen
            return False
        try:
            config = self._loader()
        except ConfigError as exc:
            log.error(
                "config_refused",
                problems=[str(p) for p in exc.problems if p.severity == "error"],
                live_version=self._current.version,
            )
            self._seen = seen
            return False
        except Exception as exc:  # unreadable file, database hiccup: keep the live one
            log.error(  # the type only: a message could hold a value from the environment
                "config_refused",
                problems=[f"{type(exc).__name__} while loading; the live version stays"],
                live_version=self._current.version,
            )
            return False
        if config.version == self._current.version:
            self._seen = seen
            return False
        try:
            self._save(config)
        except Exception as exc:
            log.error("config_not_saved", version=config.version, error=type(exc).__name__)
            return False
        with self._lock:
            old = self._current
            self._versions[config.version] = config
            self._current = config
            self._seen = seen
        log.info(
            "config_reloaded", version=config.version, scenarios=[s.id for s in config.scenarios]
        )
        self._tell(old, config)
        return True

    def _tell(self, old: Config, new: Config) -> None:
        for listener in list(self.on_reload):
            try:
                listener(old, new)
            except Exception as exc:  # the type only: a message could hold a secret
                log.error(
                    "config_listener_failed",
                    listener=getattr(listener, "__qualname__", type(listener).__name__),
                    version=new.version,
                    error=type(exc).__name__,
                )


if __name__ == "__main__":  # the child process of ReloadCheck (the command is documented)
    raise SystemExit(check_main(sys.argv[1:]))
