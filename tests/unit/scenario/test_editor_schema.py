"""JSON Schemas for editors (engine/scenario/editor_schema.py, ``cartflow schema``): the
committed files are what the command writes, and the shipped files name them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cartflow.engine.scenario.editor_schema import SCHEMA_FILES, schema_text
from cartflow.engine.scenario.model import Scenario, Settings, Step
from cartflow.workers.cli import main

from .sample_config import problems, write_config

ROOT = Path(__file__).resolve().parents[3]
SCENARIO_LINE = "# yaml-language-server: $schema=../schema/scenario.schema.json\n"


@pytest.mark.parametrize("name", list(SCHEMA_FILES))
def test_the_committed_schema_is_what_the_command_writes(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schema", "--out", str(tmp_path / "out")]) == 0
    written = (tmp_path / "out" / name).read_text(encoding="utf-8")
    assert f"wrote {tmp_path / 'out' / name}" in capsys.readouterr().out
    assert written == schema_text(name)
    assert (ROOT / "schema" / name).read_text(encoding="utf-8") == written


def test_every_key_has_a_description_for_the_editor() -> None:
    for model in (Settings, Scenario, Step):
        for key, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{key}"
    schema = json.loads(schema_text("scenario.schema.json"))
    step = schema["$defs"]["Step"]["properties"]
    assert step["after"]["examples"] == ["30m", "3h"]
    spans = step["window"]["anyOf"][0]["anyOf"]  # "10:00-20:00" or a list, not a tuple
    assert [span["type"] for span in spans] == ["string", "array"]
    assert schema["anyOf"][1] == {"type": "array", "items": {"$ref": "#/$defs/Scenario"}}


def test_the_shipped_files_name_their_schema_on_the_first_line() -> None:
    assert (
        (ROOT / "scenarios.yaml")
        .read_text(encoding="utf-8")
        .startswith("# yaml-language-server: $schema=schema/settings.schema.json\n")
    )
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        assert path.read_text(encoding="utf-8").startswith(SCENARIO_LINE), path.name


def test_the_schema_line_is_a_comment_to_the_loader(tmp_path: Path) -> None:
    # Given the sample's first line (a comment) replaced by the schema line, and a typo
    edits = {
        "scenarios/x.yaml": [
            ("# the scenario every test breaks\n", SCENARIO_LINE),
            ("channel: sms\n", "channel: smss\n"),
        ]
    }

    # Then the typo is where it was: the line counts as one line, nothing more
    found = problems(write_config(tmp_path, edits))
    assert [(p.file, p.line, p.column, p.message) for p in found] == [
        ("scenarios/x.yaml", 14, 14, "unknown channel 'smss' — did you mean 'sms'?")
    ]
