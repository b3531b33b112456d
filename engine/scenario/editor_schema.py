"""JSON Schemas of the configuration files, for editors to check them as they are typed.

Generated from the pydantic models of :mod:`cartflow.engine.scenario.model` (their descriptions
and examples are what an editor shows on hover and completion); ``cartflow schema``
writes them into ``schema/``, and a scenario file names its schema on its first line::

    # yaml-language-server: $schema=../schema/scenario.schema.json

The loader reads that line as the YAML comment it is. ``validate`` remains the authority:
a schema cannot check conditions, templates or what one file says about another.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cartflow.engine.scenario.model import Scenario, Settings

#: The JSON Schema dialect written.
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def scenario_file_schema() -> dict[str, Any]:
    """A file under ``scenarios/``: one scenario, or a list of them."""
    scenario = Scenario.model_json_schema()
    defs = scenario.pop("$defs", {})
    return {
        "$schema": DIALECT,
        "title": "cartflow scenario file",
        "description": "One scenario (or a list of them); every key is in docs/scenarios.md.",
        "$defs": {**defs, "Scenario": scenario},
        "anyOf": [
            {"$ref": "#/$defs/Scenario"},
            {"type": "array", "items": {"$ref": "#/$defs/Scenario"}},
        ],
    }


def settings_schema() -> dict[str, Any]:
    """``scenarios.yaml``: the shared settings (and scenarios written inline)."""
    return {
        "$schema": DIALECT,
        "title": "cartflow scenarios.yaml",
        **Settings.model_json_schema(),
    }


#: The files ``cartflow schema`` writes, by name.
SCHEMA_FILES: Mapping[str, Callable[[], dict[str, Any]]] = {
    "scenario.schema.json": scenario_file_schema,
    "settings.schema.json": settings_schema,
}


def schema_text(name: str) -> str:
    """The text of the schema file ``name``, as written."""
    return json.dumps(SCHEMA_FILES[name](), indent=2, ensure_ascii=False) + "\n"


def write_schemas(directory: Path) -> list[Path]:
    """Write every schema file into ``directory``; returns what was written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SCHEMA_FILES:
        path = directory / name
        path.write_text(schema_text(name), encoding="utf-8")
        written.append(path)
    return written
