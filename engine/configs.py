"""The live configuration, and every version a running journey may still need.

A journey keeps the scenario version it started with: :meth:`ConfigHolder.config_for`
returns that version while it is loaded (the current one otherwise, noted in the log).
Reloading swaps the whole configuration at once; an invalid one is refused and the last
good one stays live. Whatever is built from the configuration once (the providers) hears
of each new version through :attr:`ConfigHolder.on_reload`.

A configuration read with :meth:`ConfigHolder.from_path` is watched cheaply (a hash of its
files); a change is first loaded in a child process (``python -m cartflow.engine.configs PATH``,
see :class:`ReloadCheck`) that is killed past a time and memory limit, and only then in
this process. A configuration that would hang or exhaust the loader (however it manages
to) is refused with a logged reason, and the workers and the scheduler in this process
never stop sending: the parent waits for the child without holding the GIL.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

import cartflow
from cartflow.engine.clock import Clock, SystemClock
from cartflow.engine.scenario.loader import (
    MAX_YAML_BYTES,
    CompiledScenario,
    Config,
    ConfigError,
    load_config,
)
from cartflow.engine.store.database import Database
from cartflow.engine.store.models import ConfigVersion, Journey

log = structlog.get_logger("cartflow.config")

#: Longest a changed configuration may take to load in the checking process, in seconds
#: (the shipped example takes about one, most of it Python starting up).
RELOAD_CHECK_SECONDS = 30.0
#: Address space the checking process may use, in bytes (it needs under 100 MB).
RELOAD_CHECK_MEMORY = 1 << 30


@dataclass(frozen=True)
class ReloadCheck:
    """How a changed configuration is tried out before this process loads it: in a child
    process, stopped after ``seconds`` and limited to ``memory`` bytes (where the system
    allows it). A configuration the child cannot load in time is refused."""

    seconds: float = RELOAD_CHECK_SECONDS
    memory: int = RELOAD_CHECK_MEMORY

    def problems(self, path: str | Path) -> list[str]:
        """Why the configuration at ``path`` cannot go live; empty when it loads."""
        root = str(Path(cartflow.__file__).parent.parent)  # so the child finds 'cartflow'
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p),
        }
        command = [sys.executable, "-m", "cartflow.engine.configs", str(path), str(self.memory)]
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=self.seconds,
                env=env,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return [
                f"{path}: loading did not finish within {self.seconds:g} s and was stopped "
                "(RELOAD_CHECK_SECONDS); look for a condition, template or YAML file that "
                "builds something huge, and run 'cartflow validate'"
            ]
        except OSError as exc:
            return [f"{path}: cannot start the process that checks it: {exc.strerror}"]
        lines = done.stdout.strip().splitlines()
        try:
            answer = json.loads(lines[-1]) if lines else {}
        except ValueError:
            answer = {}
        if done.returncode == 0 and "version" in answer:
            return []
        found = answer.get("problems")
        if isinstance(found, list) and found:
            return [str(p) for p in found]
        return [f"{path}: the process that checks it failed (exit code {done.returncode})"]


def check_main(argv: Sequence[str]) -> int:
    """The checking process: load ``argv[0]`` within ``argv[1]`` bytes of memory and
    print one JSON line, ``{"version": ...}`` or ``{"problems": [...]}``."""
    path, memory = argv[0], int(argv[1]) if len(argv) > 1 else RELOAD_CHECK_MEMORY
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    except (ImportError, ValueError, OSError):
        pass  # not on this system: the time limit still holds
    try:
        config = load_config(path)
    except ConfigError as exc:
        problems = [str(p) for p in exc.problems if p.severity == "error"]
        print(json.dumps({"problems": problems}))
        return 1
    except MemoryError:
        print(json.dumps({"problems": [f"{path}: loading needs more than {memory:,} bytes"]}))
        return 1
    except Exception as exc:  # never a traceback (it could show a value from the environment)
        print(json.dumps({"problems": [f"{path}: cannot be loaded: {type(exc).__name__}"]}))
        return 1
    print(json.dumps({"version": config.version}))
    return 0


def fingerprint(path: Path, config: Config) -> str:
    """A hash of every file the configuration at ``path`` reads (or may read, with the
    includes and templates folder of ``config``): when it changes, reload."""
    root = path.parent
    names = [str(path)]
    for pattern in config.settings.include or ():
        names += sorted(glob.glob(str(root / pattern), recursive=True))
    if config.templates.directory.is_dir():
        names += sorted(str(p) for p in config.templates.directory.rglob("*.j2"))
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode() + b"\0")
        try:
            stat = os.stat(name)
            if stat.st_size > MAX_YAML_BYTES:
                digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
            else:
                digest.update(Path(name).read_bytes())
        except OSError:
            digest.update(b"\0missing")
    return digest.hexdigest()


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
        from sqlalchemy.exc import IntegrityError

        from cartflow.engine.scenario.snapshot import snapshot_files

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
        from cartflow.engine.scenario.snapshot import load_snapshot

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
        check: ReloadCheck | None = ReloadCheck(),
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


if __name__ == "__main__":
    raise SystemExit(check_main(sys.argv[1:]))
