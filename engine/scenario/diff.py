"""What changed between two configurations, and which running journeys it would touch.

A running journey keeps the version it started with unless someone explicitly migrates
it; :func:`journey_path_changes` says whether migrating would change what it does next
(remaining steps, their timing, channels, windows, offers, templates or conditions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cartflow.engine.scenario.loader import CompiledScenario, Config


@dataclass
class ScenarioChange:
    scenario: str
    kind: str  # added | removed | changed
    details: list[str] = field(default_factory=list)


@dataclass
class ConfigDiff:
    settings: list[str] = field(default_factory=list)
    scenarios: list[ScenarioChange] = field(default_factory=list)
    templates: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.settings or self.scenarios or self.templates)


def _dump(model: Any) -> dict[str, Any]:
    return dict(model.model_dump(mode="json", exclude_defaults=False))


def _compare(prefix: str, old: Any, new: Any, out: list[str]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old:
                out.append(f"+ {path}: {new[key]!r}")
            elif key not in new:
                out.append(f"- {path}: {old[key]!r}")
            else:
                _compare(path, old[key], new[key], out)
    elif old != new:
        out.append(f"~ {prefix}: {old!r} → {new!r}")


def _steps_by_id(scenario: CompiledScenario) -> dict[str, dict[str, Any]]:
    return {step.id: _dump(step) for step in scenario.model.steps}


def diff_configs(old: Config, new: Config) -> ConfigDiff:
    result = ConfigDiff()
    old_settings = _dump(old.settings)
    new_settings = _dump(new.settings)
    for key in ("scenarios",):
        old_settings.pop(key, None)
        new_settings.pop(key, None)
    _compare("", old_settings, new_settings, result.settings)
    old_by = {s.id: s for s in old.scenarios}
    new_by = {s.id: s for s in new.scenarios}
    for sid in sorted(set(old_by) | set(new_by)):
        if sid not in old_by:
            result.scenarios.append(ScenarioChange(sid, "added"))
            continue
        if sid not in new_by:
            result.scenarios.append(ScenarioChange(sid, "removed"))
            continue
        details: list[str] = []
        a, b = _dump(old_by[sid].model), _dump(new_by[sid].model)
        steps_a, steps_b = a.pop("steps"), b.pop("steps")
        _compare("", a, b, details)
        ids_a = [s["id"] for s in steps_a]
        ids_b = [s["id"] for s in steps_b]
        if ids_a != ids_b:
            details.append(f"~ steps: {' → '.join(ids_a)}  ⇒  {' → '.join(ids_b)}")
        sa, sb = _steps_by_id(old_by[sid]), _steps_by_id(new_by[sid])
        for step_id in ids_b:
            if step_id in sa:
                _compare(f"steps.{step_id}", sa[step_id], sb[step_id], details)
        if details:
            result.scenarios.append(ScenarioChange(sid, "changed", details))
    old_templates = _template_texts(old)
    new_templates = _template_texts(new)
    for name in sorted(set(old_templates) | set(new_templates)):
        if name not in old_templates:
            result.templates.append(f"+ {name}")
        elif name not in new_templates:
            result.templates.append(f"- {name}")
        elif old_templates[name] != new_templates[name]:
            result.templates.append(f"~ {name}")
    return result


def _template_texts(config: Config) -> dict[str, str]:
    from pathlib import Path

    base = Path(config.templates.directory)
    out = {}
    for name in config.templates.files():
        out[str(Path(name).relative_to(base))] = Path(name).read_text(encoding="utf-8")
    return out


def journey_path_changes(old: Config, new: Config, scenario_id: str, step_index: int) -> str | None:
    """Why a journey of ``scenario_id`` waiting on ``step_index`` would behave differently
    under ``new`` (None if it would not)."""
    before = old.scenario(scenario_id)
    after = new.scenario(scenario_id)
    if before is None:
        return None
    if after is None:
        return "scenario removed: the journey would end"
    remaining_old = [_dump(s) for s in before.model.steps[step_index:]]
    ids_done = {s.id for s in before.model.steps[:step_index]}
    remaining_new = [_dump(s) for s in after.model.steps if s.id not in ids_done]
    if remaining_old != remaining_new:
        return "remaining steps differ"
    for key in ("expires", "exit_on", "quiet_hours", "max_staleness"):
        if getattr(before.model, key) != getattr(after.model, key):
            return f"{key} differs"
    templates = {t for s in before.model.steps[step_index:] for t in s.templates()}
    old_t, new_t = _template_texts(old), _template_texts(new)
    for name in set(old_t) | set(new_t):
        if any(name.startswith(t + ".") for t in templates) and old_t.get(name) != new_t.get(name):
            return f"template {name} differs"
    if (
        _dump(old.settings.defaults) != _dump(new.settings.defaults)
        or old.settings.caps != new.settings.caps
    ):
        return "defaults or caps differ"
    return None
