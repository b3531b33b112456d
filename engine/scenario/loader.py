"""Load ``scenarios.yaml`` + includes + templates into a :class:`Config`, or report
every problem at once as ``file:line:column: message`` with a hint.

Nothing is half-applied: :func:`load_config` either returns a complete, compiled
configuration or raises :class:`ConfigError` listing all problems.

The parts: :mod:`cartflow.engine.scenario.yaml_source` reads each file safely, with positions;
:mod:`cartflow.engine.scenario.validation` turns pydantic's errors into problems;
:mod:`cartflow.engine.scenario.checks` and :mod:`cartflow.engine.scenario.lint` check the whole; the
result is :mod:`cartflow.engine.scenario.compiled`'s. The names modules import from here
(``Config``, ``CompiledScenario``, ``ConfigError``, ``Problem``, ``send_rules``…) stay
importable from here.
"""

from __future__ import annotations

import glob
import hashlib
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cartflow.engine.conditions import Condition, ConditionError, compile_condition
from cartflow.engine.context_schema import SEGMENT_NAMES
from cartflow.engine.errors import ConfigError, Problem
from cartflow.engine.scenario.compiled import CompiledScenario, Config
from cartflow.engine.scenario.model import Scenario, Settings
from cartflow.engine.scenario.validation import pydantic_problems, salvage
from cartflow.engine.scenario.yaml_source import (
    MAX_ALIAS_EXPANSION,
    MAX_YAML_BYTES,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
    YAML_TAGS,
    Path_,
    Reading,
    Source,
    read_yaml,
    redact,
)
from cartflow.engine.segments import BUILTIN_SEGMENTS
from cartflow.engine.send_rules import send_rules


def load_config(
    path: str | os.PathLike[str] = "scenarios.yaml",
    *,
    provider_types: Any = None,
    templates_dir: str | os.PathLike[str] | None = None,
) -> Config:
    """Load and compile the configuration rooted at ``path`` or raise :class:`ConfigError`.

    ``templates_dir`` overrides the ``templates:`` setting (used for stored snapshots).
    """
    from cartflow.engine.render import (
        TemplateSet,  # render imports the model; keep import order simple
    )
    from cartflow.engine.scenario.checks import check_config

    main = Path(path)
    root = main.parent if main.parent != Path("") else Path(".")
    problems: list[Problem] = []
    reading = Reading()
    read = read_yaml(main, str(path), problems, reading)
    if read is None:
        raise ConfigError(problems)
    document, main_source = read
    sources = [main_source]
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError([Problem(str(path), 1, 1, "expected a mapping of settings at the top")])
    inline = document.pop("scenarios", None) or []
    try:
        settings = Settings.model_validate(document)
    except ValidationError as exc:
        problems.extend(pydantic_problems(exc, Settings, main_source))
        salvaged = salvage(Settings, document)
        settings = salvaged[0] if salvaged else Settings()
    files = [str(main)]
    raw_scenarios: list[tuple[Any, Source, Path_]] = [
        (item, main_source, ("scenarios", i)) for i, item in enumerate(inline)
    ]
    for index, pattern in enumerate(settings.include or ()):
        matches = sorted(glob.glob(str(root / pattern), recursive=True))
        if not matches and not any(ch in pattern for ch in "*?["):
            line, col = main_source.where(("include", index))
            problems.append(
                Problem(str(path), line, col, f"included file {pattern!r} does not exist")
            )
        for match in matches:
            display = os.path.relpath(match) if not os.path.isabs(str(path)) else match
            files.append(match)
            loaded = read_yaml(Path(match), display, problems, reading)
            if loaded is None:
                continue
            doc, source = loaded
            sources.append(source)
            items = doc if isinstance(doc, list) else [doc]
            for i, item in enumerate(items):
                raw_scenarios.append((item, source, (i,) if isinstance(doc, list) else ()))

    scenarios: list[CompiledScenario] = []
    for raw, source, loc in raw_scenarios:
        if not isinstance(raw, dict):
            line, col = source.where(loc)
            problems.append(
                Problem(
                    source.path,
                    line,
                    col,
                    "a scenario must be a mapping with 'scenario:' and 'steps:'",
                )
            )
            continue
        try:
            model = Scenario.model_validate(raw)
        except ValidationError as exc:
            problems.extend(pydantic_problems(exc, Scenario, source, loc))
            partial = salvage(Scenario, raw, track="steps")
            if partial is not None:
                scenarios.append(_compile_scenario(partial[0], source, loc, problems, partial[1]))
            continue
        scenarios.append(_compile_scenario(model, source, loc, problems))

    segments: dict[str, Condition] = {}
    settings = settings.model_copy(
        update={"segments": {**BUILTIN_SEGMENTS, **(settings.segments or {})}}
    )
    for name, expr in settings.segments.items():
        try:
            segments[name] = compile_condition(expr, allowed=SEGMENT_NAMES)
        except ConditionError as exc:
            line, col = main_source.where(("segments", name))
            problems.append(
                Problem(str(path), line, col + (exc.column or 1) - 1, f"segment '{name}': {exc}")
            )

    templates = TemplateSet(
        Path(templates_dir) if templates_dir else root / settings.templates,
        settings.defaults.locale,
    )
    check_config(settings, scenarios, segments, templates, main_source, problems, provider_types)

    problems = redact(problems, sources)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise ConfigError(problems)
    scenarios.sort(key=lambda s: (-s.model.priority, s.id))
    digest = hashlib.sha256()
    # relative names: the same files give the same version wherever they live
    for name in files:
        digest.update(os.path.relpath(Path(name).resolve(), root.resolve()).encode())
        digest.update(Path(name).read_bytes())
    for name in templates.files():
        digest.update(b"templates:" + os.path.relpath(name, templates.directory).encode())
        digest.update(Path(name).read_bytes())
    return Config(
        root=root,
        settings=settings,
        scenarios=[s for s in scenarios if s.model.enabled],
        disabled=frozenset(s.id for s in scenarios if not s.model.enabled),
        segments=segments,
        templates=templates,
        version=digest.hexdigest()[:16],
        files=files,
        warnings=sorted(p for p in problems if p.severity == "warning"),
    )


def _compile_scenario(
    model: Scenario,
    source: Source,
    loc: Path_,
    problems: list[Problem],
    step_index: tuple[int, ...] | None = None,
) -> CompiledScenario:
    """Compile the conditions; ``step_index`` is given for a partial (salvaged) scenario."""
    compiled_scenario = CompiledScenario(
        model=model,
        source=source,
        loc=loc,
        when=None,
        exclude=None,
        step_conditions={},
        step_index=step_index or (),
        partial=step_index is not None,
    )

    def compile_at(expr: str | None, at: Path_) -> Condition | None:
        if expr is None:
            return None
        try:
            return compile_condition(expr)
        except ConditionError as exc:
            line, col = source.where(at)
            problems.append(Problem(source.path, line, col + (exc.column or 1) - 1, str(exc)))
            return None

    for i, step in enumerate(model.steps):
        compiled = compile_at(step.when, compiled_scenario.step_loc(i, "when"))
        if compiled is not None:
            compiled_scenario.step_conditions[step.id] = compiled
    compiled_scenario.when = compile_at(model.trigger.when, (*loc, "trigger", "when"))
    compiled_scenario.exclude = compile_at(model.audience.exclude, (*loc, "audience", "exclude"))
    return compiled_scenario


#: Defined here before the split, and still imported from here.
__all__ = [
    "MAX_ALIAS_EXPANSION",
    "MAX_YAML_BYTES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "YAML_TAGS",
    "CompiledScenario",
    "Config",
    "ConfigError",
    "Path_",
    "Problem",
    "Source",
    "load_config",
    "redact",
    "send_rules",
]
