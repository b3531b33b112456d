"""cartflow as a user installs it: a wheel built from this checkout, installed (not
editable) into a fresh virtualenv, run from a folder that is not the repository.

Whatever the code reads from its package at run time (the Alembic scripts, the demo's
default configuration) must be inside the wheel, or this fails. Building needs the build
backend (``setuptools``, from the package index or pip's cache) and installing needs the
pinned dependencies (``constraints.txt``); about a minute in all, most of it the demo.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.wheel

#: Not copied into the build tree: local state, caches, earlier builds.
IGNORED = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "*.pyc",
    ".*_cache",
    ".hypothesis",
    "*.db",
    "*.db-*",
)


def _run(command: list[str | Path], cwd: Path, timeout: float = 180) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env={**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, (
        f"{' '.join(map(str, command))} exited {done.returncode}\n"
        f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
    )
    return done.stdout


def test_the_wheel_validates_migrates_and_runs_the_demo_outside_the_repository(
    tmp_path: Path,
) -> None:
    # a clean copy, so an earlier build/ or stray files in the checkout cannot leak in
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=IGNORED)
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, source], tmp_path)
    (wheel,) = dist.glob("cartflow-*.whl")

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    _run(
        [python, "-m", "pip", "install", "-q", "-c", ROOT / "constraints.txt", wheel],
        tmp_path,
    )

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # the code comes from the virtualenv, not from this checkout
    package = Path(
        _run(
            [python, "-c", "import cartflow.workers; print(cartflow.workers.__path__[0])"],
            elsewhere,
        ).strip()
    )
    assert package.is_relative_to(env_dir), package
    example = package / "defaults" / "scenarios.yaml"
    assert example.is_file() and not example.is_symlink()

    out = _run([env_dir / "bin" / "cartflow", "validate", "--config", example], elsewhere)
    shipped = len(list((ROOT / "scenarios").glob("*.yaml")))  # every one is in the wheel
    assert out.startswith(f"ok: {shipped} scenario(s)"), out

    # the scripts ship in the package: a new SQLite database gets every table
    migrate = (
        "from cartflow.engine.store.database import Database; d = Database('sqlite:///m.db'); "
        "d.migrate(); print(d.missing_tables())"
    )
    assert _run([python, "-c", migrate], elsewhere).strip() == "[]"

    out = _run([env_dir / "bin" / "cartflow", "demo", "--duration", "2h"], elsewhere)
    assert "sent after purchase 0" in out, out[-2000:]
    assert not any(elsewhere.glob("*.yaml")), "the demo wrote a configuration of its own"
