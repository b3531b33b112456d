"""A configuration as a set of files: saved when it goes live, loaded back for journeys
that started on it (and for ``cartflow diff`` against a stored version)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from cartflow.engine.scenario.loader import Config, load_config

#: Key under which the snapshot remembers its main file's name.
MAIN = "__main__"


#: Prefix under which template files are kept, relative to the templates directory
#: (which may live outside the configuration's folder).
TEMPLATES = "@templates/"


def snapshot_files(config: Config) -> dict[str, str]:
    root = config.root.resolve()
    files: dict[str, str] = {MAIN: os.path.relpath(Path(config.files[0]).resolve(), root)}
    for name in config.files:
        path = Path(name).resolve()
        files[os.path.relpath(path, root)] = path.read_text(encoding="utf-8")
    for name in config.templates.files():
        relative = os.path.relpath(name, config.templates.directory)
        files[TEMPLATES + relative] = Path(name).read_text(encoding="utf-8")
    return files


def load_snapshot(files: dict[str, Any], provider_types: Any = None) -> Config:
    """Materialise a snapshot in a temporary directory and load it."""
    directory = Path(tempfile.mkdtemp(prefix="cartflow-config-"))
    templates = directory / "@templates"
    templates.mkdir()
    for name, text in files.items():
        if name == MAIN:
            continue
        target = (directory / name).resolve()
        if directory.resolve() not in target.parents:
            raise ValueError(f"snapshot file escapes its directory: {name}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(str(text), encoding="utf-8")
    return load_config(
        directory / str(files[MAIN]), provider_types=provider_types, templates_dir=templates
    )
