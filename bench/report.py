"""BENCHMARKS.md, one section per benchmark: ``--write`` replaces its own and keeps the rest."""

from __future__ import annotations

import os
import platform
import re
import shlex
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def write_section(section: str, text: str, path: Path = BENCHMARKS) -> None:
    """Replace the section headed ``section`` (up to the next ``## ``) with ``text``; a
    section not there yet goes at the end."""
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    head, found, rest = old.partition(section)
    tail = rest[rest.find("\n## ") + 1 :] if found and "\n## " in rest else ""
    path.write_text(head.rstrip() + "\n\n" + text.rstrip() + "\n" + ("\n" + tail if tail else ""))


def provenance(script: str, argv: list[str], postgres: str, load: float) -> list[str]:
    """The two lines that say how and where a section was measured (a throwaway
    PostgreSQL on this machine)."""
    cpu = re.search(r"model name\s*: (.*)", Path("/proc/cpuinfo").read_text())
    return [
        f"Measured {datetime.now(UTC):%Y-%m-%d} with `.venv/bin/python bench/{script} "
        f"{shlex.join(argv)}`.",
        f"Machine: {os.cpu_count()} cores ({cpu[1] if cpu else platform.machine()}), Linux "
        f"`{platform.release()}`; Python {platform.python_version()}, PostgreSQL "
        f"{postgres} (throwaway, fsync=off), SQLAlchemy {sqlalchemy.__version__}; "
        f"1-minute load average before the run {load:.2f}.",
    ]
