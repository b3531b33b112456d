"""Checks that need the whole configuration: names that must exist and templates that
must compile; then the lint (:mod:`cartflow.engine.scenario.lint`), which only warns.

Errors refuse the configuration: duplicate scenario or step ids, undefined segments,
templates that are missing, do not parse, lack a channel's block, use a name or an
attribute the message context does not have (:mod:`cartflow.engine.context_schema`) or one the step
cannot provide (``discount`` on a step without ``discount:``), and provider settings the
provider rejects.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateSyntaxError, meta, nodes

from cartflow.engine.conditions import Condition
from cartflow.engine.context_schema import TEMPLATE_NAMES
from cartflow.engine.errors import Problem, did_you_mean
from cartflow.engine.paths import check_paths, unguarded_reads
from cartflow.engine.sandbox import TemplateLimitError
from cartflow.engine.scenario.compiled import CompiledScenario
from cartflow.engine.scenario.lint import LINTS, Plan, template_uses
from cartflow.engine.scenario.model import Settings
from cartflow.engine.scenario.yaml_source import Path_, Source


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
    checked: dict[tuple[str, tuple[str, ...]], FileCheck] = {}  # a file is checked once
    for scenario in scenarios:
        where = scenario.source.where((*scenario.loc, "scenario"))
        if scenario.id in seen:
            problems.append(
                Problem(
                    scenario.source.path,
                    *where,
                    f"duplicate scenario '{scenario.id}' "
                    f"(also in {seen[scenario.id].source.path}); scenario ids must be unique",
                )
            )
        seen[scenario.id] = scenario
        _check_segments(scenario, settings, problems)
        _check_steps(scenario, settings, templates, problems, checked)
        if not scenario.partial:
            plan = Plan.of(scenario, settings, templates)
            for lint in LINTS:
                problems.extend(lint(plan))
    if provider_types is not None:
        from cartflow.engine.scenario.providers_check import check_provider

        for channel, provider in settings.providers.items():
            found: list[Problem] = []
            check_provider(channel, provider, main, found, provider_types)
            problems.extend(
                _at_named_setting(p, ("providers", channel), provider.options(), main)
                for p in found
            )
    problems[:] = list(dict.fromkeys(problems))  # a template shared by steps is checked once


def _at_named_setting(
    problem: Problem, loc: Path_, options: dict[str, Any], source: Source
) -> Problem:
    """Point a provider's complaint at the setting it names, when the YAML has that key."""
    for name in re.findall(r"'([^']+)'", problem.message):
        if name in options:
            line, column = source.where((*loc, name), key=True)
            return dataclasses.replace(problem, line=line, column=column)
    return problem


# -- errors -----------------------------------------------------------------------------
def _check_segments(
    scenario: CompiledScenario, settings: Settings, problems: list[Problem]
) -> None:
    for i, name in enumerate(scenario.model.audience.segments):
        if name not in settings.segments:
            hint = did_you_mean(name, settings.segments) or (
                " (define it under 'segments:' in scenarios.yaml)"
            )
            where = scenario.source.where((*scenario.loc, "audience", "segments", i))
            problems.append(
                Problem(scenario.source.path, *where, f"undefined segment '{name}'{hint}")
            )


def _check_steps(
    scenario: CompiledScenario,
    settings: Settings,
    templates: Any,
    problems: list[Problem],
    checked: dict[tuple[str, tuple[str, ...]], FileCheck],
) -> None:
    path = scenario.source.path
    ids: set[str] = set()
    for i, step in enumerate(scenario.model.steps):
        if step.id in ids:
            problems.append(
                Problem(
                    path,
                    *scenario.source.where(scenario.step_loc(i, "id")),
                    f"duplicate step id '{step.id}'; step ids must be unique in a scenario",
                )
            )
        ids.add(step.id)
        for ref, channels, rest in template_uses(step):
            where = scenario.source.where(scenario.step_loc(i, *rest))
            for name, check in _check_template(
                path,
                where,
                ref,
                channels,
                settings,
                templates,
                problems,
                checked,
                scenario.model.locales,
            ):
                if step.discount is None and not scenario.partial:  # dropped: reported
                    problems.extend(check.without_discount(name, scenario.id, step.id))


def _check_template(
    path: str,
    where: tuple[int, int],
    ref: str,
    channels: tuple[str, ...],
    settings: Settings,
    templates: Any,
    problems: list[Problem],
    checked: dict[tuple[str, tuple[str, ...]], FileCheck],
    own_locales: tuple[str, ...] = (),
) -> Iterator[tuple[str, FileCheck]]:
    """Check the files of ``ref`` in every required locale (each once); yields each
    file's name and check for what depends on the step. A scenario with its own
    ``locales`` needs templates in those only (its first is its default); otherwise in
    ``defaults.locale`` and ``defaults.locales``."""
    defaults = settings.defaults
    if own_locales:
        locales, default, required_by = list(own_locales), own_locales[0], "the scenario's locales"
    else:
        locales = list(dict.fromkeys([defaults.locale, *defaults.locales]))
        default, required_by = defaults.locale, "defaults.locales"
    for locale in locales:
        name = f"{ref}.{locale}.j2"
        if not templates.has(name):
            if locale == default and templates.name_for(ref, None, default):
                continue  # the default locale may be served by a locale-less file
            problems.append(
                Problem(
                    path,
                    *where,
                    f"missing template {settings.templates}/{name} for locale '{locale}' "
                    f"(locales required by {required_by}: {', '.join(locales)})",
                )
            )
            continue
        if (name, channels) not in checked:
            checked[(name, channels)] = _check_file(name, channels, templates)
        problems.extend(checked[(name, channels)].problems)
        yield name, checked[(name, channels)]


@dataclass(frozen=True)
class FileCheck:
    """What checking one template file found: its problems, and where it reads
    ``discount`` outside ``{% if discount %}`` (an error on a step without one)."""

    file_path: str
    problems: list[Problem]
    discount_reads: tuple[tuple[int, int, str], ...] = ()

    def without_discount(self, name: str, scenario: str, step: str) -> Iterator[Problem]:
        for line, column, text in self.discount_reads:
            yield Problem(
                self.file_path,
                line,
                column,
                f"template uses '{text}', but step '{step}' of scenario '{scenario}' has no "
                "'discount:' (it would print nothing); give the step a discount or write "
                "{% if discount %}…{% endif %}",
            )


def _check_file(name: str, channels: tuple[str, ...], templates: Any) -> FileCheck:
    """Problems of the template file ``name`` used for ``channels``."""
    file_path = str(templates.directory / name)
    try:
        source = templates.source(name)
        ast = templates.env.parse(source, name=name)  # parsed once: compiled from it next
        templates.env.get_template(name)  # compiled once, kept for rendering
    except TemplateLimitError as exc:
        problem = Problem(file_path, exc.lineno or 1, exc.column or 1, exc.message or "")
        return FileCheck(file_path, [problem])
    except TemplateSyntaxError as exc:
        problem = Problem(file_path, exc.lineno or 1, 1, f"template syntax: {exc.message}")
        return FileCheck(file_path, [problem])
    except (RecursionError, SyntaxError, MemoryError, ValueError) as exc:  # nesting, digits
        reason = str(exc) if isinstance(exc, ValueError) else "it nests too deeply"
        problem = Problem(file_path, 1, 1, f"template does not compile: {reason}; simplify it")
        return FileCheck(file_path, [problem])
    reads = tuple(
        (read.lineno, *_read_position(source, read)) for read in unguarded_reads(ast, "discount")
    )
    return FileCheck(file_path, list(_file_problems(file_path, source, ast, channels)), reads)


def _read_position(source: str, read: nodes.Getattr | nodes.Getitem) -> tuple[int, str]:
    """Column and text of ``discount.code`` (or ``discount["code"]``) on its line."""
    key = read.attr if isinstance(read, nodes.Getattr) else getattr(read.arg, "value", "")
    line = source.splitlines()[read.lineno - 1] if source else ""
    match = re.search(rf"\bdiscount\s*(\.\s*{re.escape(str(key))}\b|\[)", line)
    return (match.start() + 1 if match else 1), f"discount.{key}"


def _file_problems(
    file_path: str, source: str, ast: nodes.Template, channels: tuple[str, ...]
) -> Iterator[Problem]:
    from cartflow.engine.render import OPTIONAL_BLOCKS, REQUIRED_BLOCKS

    blocks = {node.name for node in ast.find_all(nodes.Block)}
    for channel in channels:
        missing = [b for b in REQUIRED_BLOCKS[channel] if b not in blocks]
        if missing:
            has = ", ".join(REQUIRED_BLOCKS[channel] + OPTIONAL_BLOCKS.get(channel, ()))
            yield Problem(
                file_path,
                1,
                1,
                f"template used for {channel} needs {{% block {missing[0]} %}}"
                f" (a {channel} message has: {has})",
            )
    known = list(TEMPLATE_NAMES)
    for unknown in sorted(set(meta.find_undeclared_variables(ast)) - set(known)):
        hint = did_you_mean(unknown, known) or f" (known: {', '.join(known)})"
        yield Problem(
            file_path,
            *_name_position(source, ast, unknown),
            f"template uses '{unknown}', which the message context does not have{hint}",
        )
    for error in check_paths(ast, TEMPLATE_NAMES, source):
        yield Problem(file_path, error.lineno, error.column, error.message)


def _name_position(source: str, ast: nodes.Template, name: str) -> tuple[int, int]:
    """Line and column of the first use of ``name`` as a variable in a template."""
    line = min((n.lineno for n in ast.find_all(nodes.Name) if n.name == name), default=1)
    text = source.splitlines()[line - 1] if source else ""
    match = re.search(rf"(?<![\w.]){re.escape(name)}\b", text)
    return line, (match.start() + 1 if match else 1)


__all__ = ["LINTS", "FileCheck", "Plan", "check_config"]
