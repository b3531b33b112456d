"""What the lint looks at: a :class:`Plan`, one scenario with the nominal time of each of
its steps (windows, caps and browsing only ever defer a step, never bring it forward),
and :func:`template_uses`, the templates a step may use. Every rule of
:data:`~cartflow.engine.scenario.lint.LINTS` is a :data:`Lint`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cartflow.engine.errors import Problem
from cartflow.engine.scenario.compiled import CompiledScenario
from cartflow.engine.scenario.model import Settings, Step
from cartflow.engine.scenario.yaml_source import Path_


def template_uses(step: Step) -> Iterator[tuple[str, tuple[str, ...], Path_]]:
    """(reference, channels it serves, YAML path below the step) for every template."""
    refs: list[tuple[Any, Path_]] = [
        (v.template, ("variants", j, "template")) for j, v in enumerate(step.variants)
    ] or [(step.template, ("template",))]
    for ref, rest in refs:
        if isinstance(ref, dict):
            for channel, one in ref.items():
                yield str(one), (str(channel),), (*rest, str(channel))
        elif ref:
            yield str(ref), step.channels, rest


@dataclass(frozen=True)
class Plan:
    """One scenario as the lint sees it: its steps and their nominal times."""

    scenario: CompiledScenario
    settings: Settings
    templates: Any
    #: Nominal time of each step after the abandonment anchor.
    due: tuple[timedelta, ...]

    @classmethod
    def of(cls, scenario: CompiledScenario, settings: Settings, templates: Any) -> Plan:
        due: list[timedelta] = []
        for step in scenario.model.steps:
            if step.after_previous is not None:
                due.append((due[-1] if due else timedelta(0)) + step.after_previous)
            else:
                due.append(step.after or timedelta(0))
        return cls(scenario, settings, templates, tuple(due))

    @property
    def steps(self) -> tuple[Step, ...]:
        return self.scenario.model.steps

    @property
    def alive(self) -> int:
        """How many steps can run: scheduling the first one due at or after ``expires``
        ends the journey (one due exactly then meets the expiry check when it fires)."""
        expires = self.scenario.model.expires
        return next((i for i, due in enumerate(self.due) if due >= expires), len(self.due))

    def warn(self, index: int, rest: Path_, message: str) -> Problem:
        """A warning at ``rest`` below step ``index``."""
        line, column = self.scenario.source.where(self.scenario.step_loc(index, *rest))
        return Problem(self.scenario.source.path, line, column, message, "warning")

    def warn_timing(self, index: int, message: str) -> Problem:
        """A warning at the step's ``after`` / ``after_previous`` (or the step)."""
        step = self.steps[index]
        if step.after is not None:
            return self.warn(index, ("after",), message)
        at: Path_ = ("after_previous",) if step.after_previous is not None else ()
        return self.warn(index, at, message)


Lint = Callable[[Plan], Iterator[Problem]]
