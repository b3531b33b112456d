"""A configuration once loaded: :class:`Config` and its :class:`CompiledScenario` list,
with their conditions compiled and where each part sits in the YAML."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cartflow.engine.conditions import Condition
from cartflow.engine.errors import Problem
from cartflow.engine.scenario.model import Scenario, Settings, Step
from cartflow.engine.scenario.yaml_source import Path_, Source
from cartflow.engine.send_rules import send_rules
from cartflow.engine.timing import SendRules


@dataclass
class CompiledScenario:
    model: Scenario
    source: Source
    loc: Path_
    when: Condition | None
    exclude: Condition | None
    step_conditions: dict[str, Condition]
    #: Where each of ``model.steps`` sits in the YAML list (steps that failed validation
    #: are left out of a partial scenario); empty means one to one.
    step_index: tuple[int, ...] = ()
    #: Parts failed validation (already reported); only what loaded is checked, no lint.
    partial: bool = False

    @property
    def id(self) -> str:
        return self.model.scenario

    def step_loc(self, index: int, *rest: str | int) -> Path_:
        """The YAML path of step ``index`` of the model (and ``rest`` below it)."""
        original = self.step_index[index] if index < len(self.step_index) else index
        return (*self.loc, "steps", original, *rest)

    def step(self, index: int) -> Step | None:
        return self.model.steps[index] if 0 <= index < len(self.model.steps) else None


@dataclass
class Config:
    """A loaded, compiled, valid configuration. ``version`` hashes every file it read."""

    root: Path
    settings: Settings
    scenarios: list[CompiledScenario]
    segments: dict[str, Condition]
    templates: Any  # engine.render.TemplateSet
    version: str
    files: list[str]
    warnings: list[Problem] = field(default_factory=list)
    #: Scenarios present but switched off (``enabled: false``): no new journeys, and the
    #: journeys in flight exit at their next step.
    disabled: frozenset[str] = frozenset()

    def scenario(self, scenario_id: str) -> CompiledScenario | None:
        return next((s for s in self.scenarios if s.id == scenario_id), None)

    def send_rules(self, scenario: Scenario, step: Step, channel: str) -> SendRules:
        return send_rules(self.settings, scenario, step, channel)
