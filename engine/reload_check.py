"""How a changed configuration is noticed and tried out before it goes live.

:func:`fingerprint` hashes every file a configuration reads, so watching them loads
nothing. :class:`ReloadCheck` first loads a change in a child process (``python -m
cartflow.engine.configs PATH MEMORY``, which runs :func:`check_main`) that is stopped past
:data:`RELOAD_CHECK_SECONDS` and limited to :data:`RELOAD_CHECK_MEMORY`: a configuration
that would hang or exhaust the loader (however it manages to) is refused with a reason,
never loaded in the process that sends, and the parent waits for the child without
holding the GIL. :class:`~cartflow.engine.configs.ConfigHolder` uses both.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cartflow
from cartflow.engine.scenario.loader import MAX_YAML_BYTES, Config, ConfigError, load_config

if sys.platform != "win32":  # POSIX only: the child's memory limit (check_main)
    import resource

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
    # Where the system has no such limit (no resource module) or refuses it, the time
    # limit still holds.
    if sys.platform != "win32":
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
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
