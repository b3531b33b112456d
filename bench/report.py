"""BENCHMARKS.md, one section per benchmark: ``--write`` replaces its own and keeps the rest."""

from __future__ import annotations

from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def write_section(section: str, text: str, path: Path = BENCHMARKS) -> None:
    """Replace the section headed ``section`` (up to the next ``## ``) with ``text``; a
    section not there yet goes at the end."""
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    head, found, rest = old.partition(section)
    tail = rest[rest.find("\n## ") + 1 :] if found and "\n## " in rest else ""
    path.write_text(head.rstrip() + "\n\n" + text.rstrip() + "\n" + ("\n" + tail if tail else ""))
