"""Load ``scenarios.yaml`` + includes + templates into a :class:`Config`, or report
every problem at once as ``file:line:column: message`` with a hint.

Nothing is half-applied: :func:`load_config` either returns a complete, compiled
configuration or raises :class:`ConfigError` listing all problems.
"""

from __future__ import annotations

import copy
import difflib
import glob
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

from engine.conditions import Condition, ConditionError, compile_condition
from engine.scenario.model import CHANNEL_NAMES, Scenario, Settings, Step
from engine.timing import DEFAULT_QUIET_HOURS, QUIET_CHANNELS, DailySpan, SendRules

Path_ = tuple[str | int, ...]
_M = TypeVar("_M", bound=BaseModel)
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True, order=True)
class Problem:
    """One finding: an ``error`` refuses the configuration, a ``warning`` does not."""

    file: str
    line: int
    column: int
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        tag = "" if self.severity == "error" else "warning: "
        return f"{self.file}:{self.line}:{self.column}: {tag}{self.message}"


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` has every error (and warning) found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        errors = [p for p in self.problems if p.severity == "error"]
        super().__init__(
            f"{len(errors)} problem(s) in the configuration:\n" + "\n".join(map(str, errors))
        )


@dataclass
class Source:
    """A YAML file with the position of every key and value."""

    path: str
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def where(self, loc: Path_, *, key: bool = False) -> tuple[int, int]:
        """Best position for ``loc``: the exact node, else its nearest ancestor."""
        table = self.key_positions if key else self.positions
        probe = tuple(loc)
        while probe:
            if probe in table:
                return table[probe]
            if probe in self.positions:
                return self.positions[probe]
            probe = probe[:-1]
        return self.positions.get((), (1, 1))


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


def send_rules(settings: Settings, scenario: Scenario, step: Step, channel: str) -> SendRules:
    """Windows of the step; quiet hours of the engine ∪ defaults ∪ scenario ∪ step.

    The engine's own night (21:00-09:00 for push, SMS and messengers, DESIGN §5) is always
    there: configuration can make nights longer or cover more channels, never shorter.
    """
    defaults = settings.defaults
    quiet: list[DailySpan] = []
    if channel in QUIET_CHANNELS:
        quiet.append(DailySpan.parse(DEFAULT_QUIET_HOURS, wrap=True))
    if channel in defaults.quiet_channels or channel in QUIET_CHANNELS:
        quiet += [DailySpan.parse(q, wrap=True) for q in defaults.quiet_hours]
    for extra in (scenario.quiet_hours, step.quiet_hours):
        quiet += [DailySpan.parse(q, wrap=True) for q in extra or ()]
    windows = tuple(DailySpan.parse(w, wrap=False) for w in step.window or ())
    return SendRules(windows=windows, quiet=tuple(quiet))


def _read_yaml(path: Path, display: str, problems: list[Problem]) -> tuple[Any, Source] | None:
    source = Source(display)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problems.append(Problem(display, 1, 1, f"cannot read file: {exc.strerror}"))
        return None
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True  # so positions can point inside quotes (see _content_column)
    try:
        document = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problems.append(
            Problem(
                display,
                line,
                col,
                f"YAML syntax: {exc.problem or exc.context}; check indentation and quoting",
            )
        )
        return None
    except Exception as exc:  # ruamel raises a few unmarked errors (duplicate keys, ...)
        problems.append(Problem(display, 1, 1, f"YAML: {exc}".splitlines()[0]))
        return None
    _record_positions(document, (), source)
    plain = _plain(document, (), source, problems)
    return plain, source


def _record_positions(node: Any, loc: Path_, source: Source) -> None:
    if not loc and isinstance(node, CommentedMap | CommentedSeq):
        source.positions[()] = (node.lc.line + 1, node.lc.col + 1)
    if isinstance(node, CommentedMap):
        for key in node:
            k_line, k_col, v_line, v_col = node.lc.data[key]
            source.key_positions[(*loc, str(key))] = (k_line + 1, k_col + 1)
            source.positions[(*loc, str(key))] = (v_line + 1, _content_column(node[key], v_col))
            _record_positions(node[key], (*loc, str(key)), source)
    elif isinstance(node, CommentedSeq):
        for index, item in enumerate(node):
            line, col = node.lc.data[index]
            source.positions[(*loc, index)] = (line + 1, _content_column(item, col))
            _record_positions(item, (*loc, index), source)


def _content_column(value: Any, column: int) -> int:
    """1-based column where a scalar's text starts: past the opening quote, so a column
    inside a quoted condition lands on the right character."""
    quoted = isinstance(value, SingleQuotedScalarString | DoubleQuotedScalarString)
    return column + 1 + quoted


def _plain(node: Any, loc: Path_, source: Source, problems: list[Problem]) -> Any:
    """ruamel nodes → plain Python, with ``${ENV}`` substituted in strings."""
    if isinstance(node, CommentedMap):
        return {str(k): _plain(v, (*loc, str(k)), source, problems) for k, v in node.items()}
    if isinstance(node, CommentedSeq):
        return [_plain(v, (*loc, i), source, problems) for i, v in enumerate(node)]
    if isinstance(node, str):

        def substitute(match: re.Match[str]) -> str:
            value = os.environ.get(match.group(1), match.group(2))
            if value is None:
                line, col = source.where(loc)
                problems.append(
                    Problem(
                        source.path,
                        line,
                        col,
                        f"environment variable {match.group(1)} is not set; export it "
                        f"or give a default: ${{{match.group(1)}:-value}}",
                    )
                )
                return match.group(0)  # kept as written: no "needs setting" follow-on
            return value

        return _ENV.sub(substitute, str(node))
    return node


def _pydantic_problems(
    exc: ValidationError, model: type[BaseModel], source: Source, prefix: Path_ = ()
) -> Iterator[Problem]:
    for err in exc.errors():
        data_loc = _data_loc(err["loc"])
        full = (*prefix, *data_loc)
        msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if err["type"] == "extra_forbidden":
            key = str(data_loc[-1])
            known = _fields_at(model, data_loc[:-1])
            close = difflib.get_close_matches(key, known, n=1)
            hint = (
                f" — did you mean '{close[0]}'?" if close else f" (known keys: {', '.join(known)})"
            )
            line, col = source.where(full, key=True)
            yield Problem(source.path, line, col, f"unknown key '{key}'{hint}")
            continue
        if err["type"] == "literal_error":
            expected = err.get("ctx", {}).get("expected", "")
            options = re.findall(r"'([^']*)'", expected)
            close = difflib.get_close_matches(str(err.get("input")), options, n=1)
            name = next((str(p) for p in reversed(data_loc) if isinstance(p, str)), "value")
            hint = f" — did you mean '{close[0]}'?" if close else f" (expected {expected})"
            channels = bool(options) and set(options) <= set(CHANNEL_NAMES)
            noun = "channel" if channels else _NOUNS.get(name, name)
            line, col = source.where(full)
            yield Problem(source.path, line, col, f"unknown {noun} {err.get('input')!r}{hint}")
            continue
        if err["type"] == "missing":
            line, col = source.where(full[:-1])
            yield Problem(source.path, line, col, f"missing required key '{data_loc[-1]}'")
            continue
        line, col = source.where(full)
        where = ".".join(str(p) for p in data_loc)
        yield Problem(source.path, line, col, f"{where}: {msg}" if where else msg)


#: How a literal error names the value it rejects, by field.
_NOUNS = {"exit_on": "exit event", "on": "trigger event", "unless": "engagement"}


def _data_loc(loc: tuple[str | int, ...]) -> Path_:
    """The data path of a pydantic error, without the segments unions and validators add
    (``function-after[...]``, ``[key]``, ``literal[...]``)."""
    return tuple(
        part
        for part in loc
        if isinstance(part, int) or not ("[" in part or part.startswith("function"))
    )


def _salvage(
    model: type[_M], document: dict[str, Any], track: str | None = None
) -> tuple[_M, tuple[int, ...]] | None:
    """The valid part of a ``document`` whose errors are already reported, so the checks
    that follow still see the rest: a typo in one step must not hide a broken template in
    another, nor a bad time zone turn every segment "undefined". Drops the node of each
    error (the containing mapping or list item for a missing key) until the rest validates;
    returns it with the original indexes of the items kept in the list ``track``, or None
    when nothing useful is left."""
    document = copy.deepcopy(document)
    tracked = document.get(track) if track else None
    kept = list(range(len(tracked))) if isinstance(tracked, list) else []
    for _ in range(100):
        try:
            return model.model_validate(document), tuple(kept)
        except ValidationError as exc:
            error = exc.errors()[0]
        loc = _data_loc(error["loc"])
        if error["type"] == "missing":
            loc = loc[:-1]
        if len(loc) < 1 + (loc[:1] == (track,)):
            return None  # the document (or the tracked list itself) is what failed
        try:
            parent: Any = document
            for part in loc[:-1]:
                parent = parent[part]
            del parent[loc[-1]]
        except (KeyError, IndexError, TypeError):
            return None
        if loc[:1] == (track,) and len(loc) == 2 and isinstance(loc[1], int):
            del kept[loc[1]]
    return None


def _fields_at(model: type[BaseModel], loc: Path_) -> list[str]:
    """Field names of the model found at ``loc`` (walking nested models and lists)."""
    import typing

    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        info = current.model_fields.get(str(part))
        if info is None:
            return []
        current = _inner_model(info.annotation, typing)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _inner_model(annotation: Any, typing: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg, typing)
        if found is not None:
            return found
    return None


def load_config(
    path: str | os.PathLike[str] = "scenarios.yaml",
    *,
    provider_types: Any = None,
    templates_dir: str | os.PathLike[str] | None = None,
) -> Config:
    """Load and compile the configuration rooted at ``path`` or raise :class:`ConfigError`.

    ``templates_dir`` overrides the ``templates:`` setting (used for stored snapshots).
    """
    from engine.render import TemplateSet  # render imports the model; keep import order simple
    from engine.scenario.checks import check_config

    main = Path(path)
    root = main.parent if main.parent != Path("") else Path(".")
    problems: list[Problem] = []
    read = _read_yaml(main, str(path), problems)
    if read is None:
        raise ConfigError(problems)
    document, main_source = read
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError([Problem(str(path), 1, 1, "expected a mapping of settings at the top")])
    inline = document.pop("scenarios", None) or []
    try:
        settings = Settings.model_validate(document)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, Settings, main_source))
        salvaged = _salvage(Settings, document)
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
            loaded = _read_yaml(Path(match), display, problems)
            if loaded is None:
                continue
            doc, source = loaded
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
            problems.extend(_pydantic_problems(exc, Scenario, source, loc))
            partial = _salvage(Scenario, raw, track="steps")
            if partial is not None:
                scenarios.append(_compile_scenario(partial[0], source, loc, problems, partial[1]))
            continue
        scenarios.append(_compile_scenario(model, source, loc, problems))

    segments: dict[str, Condition] = {}
    for name, expr in (settings.segments or {}).items():
        try:
            segments[name] = compile_condition(expr)
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
