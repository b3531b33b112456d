"""Checks that need the whole configuration: names that must exist, templates that must
compile, and lint — mistakes that load fine but would misbehave with shoppers.

Each check appends :class:`Problem` s; errors refuse the configuration, warnings do not.
"""

from __future__ import annotations

import difflib
from typing import Any

from jinja2 import TemplateSyntaxError, meta

from engine.conditions import Condition
from engine.scenario.loader import CompiledScenario, Problem, Source
from engine.scenario.model import Settings

# The per-step checks are a flat list, like the send-time guards (STYLE §5).


def check_config(
    settings: Settings,
    scenarios: list[CompiledScenario],
    segments: dict[str, Condition],
    templates: Any,
    main: Source,
    problems: list[Problem],
    provider_types: Any = None,
) -> None:
    seen: dict[str, CompiledScenario] = {}
    for scenario in scenarios:
        where = scenario.source.where(scenario.loc + ("scenario",))
        if scenario.id in seen:
            problems.append(Problem(scenario.source.path, *where,
                f"duplicate scenario '{scenario.id}' (also in {seen[scenario.id].source.path}); "
                "scenario ids must be unique"))
        seen[scenario.id] = scenario
        _check_segments(scenario, settings, problems)
        _check_steps(scenario, settings, templates, problems)
    if provider_types is not None:
        from engine.scenario.providers_check import check_provider

        for channel, provider in settings.providers.items():
            check_provider(channel, provider, main, problems, provider_types)


def _at(scenario: CompiledScenario, *loc: str | int, key: bool = False) -> tuple[int, int]:
    return scenario.source.where(scenario.loc + loc, key=key)


def _check_segments(scenario: CompiledScenario, settings: Settings, problems: list[Problem]) -> None:
    for i, name in enumerate(scenario.model.audience.segments):
        if name not in settings.segments:
            close = difflib.get_close_matches(name, list(settings.segments), n=1)
            hint = f" — did you mean '{close[0]}'?" if close else (
                " (define it under 'segments:' in scenarios.yaml)")
            problems.append(Problem(scenario.source.path, *_at(scenario, "audience", "segments", i),
                                    f"undefined segment '{name}'{hint}"))


def _check_steps(scenario: CompiledScenario, settings: Settings, templates: Any,
                 problems: list[Problem]) -> None:
    model = scenario.model
    path = scenario.source.path
    ids: set[str] = set()
    for i, step in enumerate(model.steps):
        if step.id in ids:
            problems.append(Problem(path, *_at(scenario, "steps", i, "id"),
                                    f"duplicate step id '{step.id}'; step ids must be unique in a scenario"))
        ids.add(step.id)
        templates_to_check = (
            [(step.template, ("steps", i, "template"))] if step.template
            else [(v.template, ("steps", i, "variants", j, "template")) for j, v in enumerate(step.variants)]
        )
        for ref, loc in templates_to_check:
            _check_template(scenario, ref, loc, step.channels, settings, templates, problems)


def _check_template(scenario: CompiledScenario, ref: str, loc: tuple[str | int, ...],
                    channels: tuple[str, ...], settings: Settings, templates: Any,
                    problems: list[Problem]) -> None:
    from engine.render import CONTEXT_NAMES, OPTIONAL_BLOCKS, REQUIRED_BLOCKS

    path = scenario.source.path
    line, col = _at(scenario, *loc)
    defaults = settings.defaults
    locales = list(dict.fromkeys([defaults.locale, *defaults.locales]))
    for locale in locales:
        name = f"{ref}.{locale}.j2"
        if not (templates.directory / name).is_file():
            fallback = templates.name_for(ref, None, defaults.locale) if locale == defaults.locale else None
            if fallback:
                continue
            problems.append(Problem(path, line, col,
                f"missing template {settings.templates}/{name} for locale '{locale}' "
                f"(locales required by defaults.locales: {', '.join(locales)})"))
            continue
        file_path = f"{settings.templates}/{name}"
        try:
            source = templates.env.loader.get_source(templates.env, name)[0]
            ast = templates.env.parse(source)
            templates.env.compile(source, name=name)
        except TemplateSyntaxError as exc:
            problems.append(Problem(str(templates.directory / name), exc.lineno or 1, 1,
                                    f"template syntax: {exc.message}"))
            continue
        blocks = templates.blocks(name)
        for channel in channels:
            missing = [b for b in REQUIRED_BLOCKS[channel] if b not in blocks]
            if missing:
                problems.append(Problem(str(templates.directory / name), 1, 1,
                    f"template used for {channel} needs {{% block {missing[0]} %}}"
                    f" (a {channel} message has: {', '.join(REQUIRED_BLOCKS[channel] + OPTIONAL_BLOCKS.get(channel, ()))})"))
        unknown = sorted(set(meta.find_undeclared_variables(ast)) - set(CONTEXT_NAMES))
        for name_ in unknown:
            close = difflib.get_close_matches(name_, CONTEXT_NAMES, n=1)
            hint = f" — did you mean '{close[0]}'?" if close else f" (known: {', '.join(CONTEXT_NAMES)})"
            tline = _line_of(source, name_)
            problems.append(Problem(str(templates.directory / name), tline, 1,
                f"template uses '{name_}', which the message context does not have{hint}"))
        del file_path


def _line_of(source: str, word: str) -> int:
    for number, text in enumerate(source.splitlines(), start=1):
        if word in text:
            return number
    return 1
