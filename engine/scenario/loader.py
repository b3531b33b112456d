"""Load ``scenarios.yaml`` + includes + templates into a :class:`Config`, or report
every problem at once as ``file:line:column: message`` with a hint.

Nothing is half-applied: :func:`load_config` either returns a complete, compiled
configuration or raises :class:`ConfigError` listing all problems.

Nothing in a file can take the loader down: a file is read only up to
:data:`MAX_YAML_BYTES`; YAML tags other than plain YAML's own (``!!python/object``...)
are refused and never constructed; aliases that multiply (a "billion laughs") are refused
by :data:`MAX_ALIAS_EXPANSION` before anything is built. A value substituted from the
environment (``${NAME}``) is never printed: problems say ``<value from ${NAME}>``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
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
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.composer import Composer, MaxDepthExceededError
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

from engine.conditions import Condition, ConditionError, compile_condition
from engine.context_schema import SEGMENT_NAMES
from engine.errors import ConfigError as ConfigError  # re-exported (defined here before)
from engine.errors import Problem as Problem  # re-exported (defined here before)
from engine.errors import did_you_mean
from engine.scenario.model import CHANNEL_NAMES, Scenario, Settings, Step
from engine.timing import DEFAULT_QUIET_HOURS, QUIET_CHANNELS, DailySpan, SendRules

Path_ = tuple[str | int, ...]
_M = TypeVar("_M", bound=BaseModel)
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

#: Largest YAML file read, in bytes (a whole configuration is usually a few KB).
MAX_YAML_BYTES = 1_000_000
#: Most values (keys, texts, numbers, lists, mappings) in all the YAML files of one
#: configuration, as written: the shipped example has about 200; reading YAML costs about
#: 0.1 ms a value, checking what it says more.
MAX_YAML_NODES = 5_000
#: Deepest nesting of lists and mappings in a YAML file (a configuration needs about 6).
MAX_YAML_DEPTH = 32
#: How much aliases (``*name``) may add to one YAML file once expanded, counting every
#: value and every character of text beyond what is written: reusing a block is fine,
#: nested aliases that multiply ("billion laughs") are refused before anything is built.
MAX_ALIAS_EXPANSION = 10_000
#: The only YAML tags a file may hold: those of plain values, which YAML gives by itself.
YAML_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}"
    for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp", "merge")
)


@dataclass
class Source:
    """A YAML file with the position of every key and value."""

    path: str
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    #: Values substituted from the environment (value → variable), never to be printed,
    #: and the variables used at each place.
    secrets: dict[str, str] = field(default_factory=dict)
    from_env: dict[Path_, list[str]] = field(default_factory=dict)

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

    The engine's own night (21:00-09:00 for push, SMS and messengers, architecture §5) is always
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


@dataclass
class _Reading:
    """What is left to read of one configuration: :data:`MAX_YAML_NODES` in all."""

    nodes_left: int = MAX_YAML_NODES


def _read_yaml(
    path: Path, display: str, problems: list[Problem], reading: _Reading | None = None
) -> tuple[Any, Source] | None:
    source = Source(display)
    if reading is not None and reading.nodes_left < 0:
        return None  # MAX_YAML_NODES was passed (and reported) in an earlier file
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            problems.append(
                Problem(
                    display,
                    1,
                    1,
                    f"file of {size:,} bytes; the limit is {MAX_YAML_BYTES:,} (MAX_YAML_BYTES): "
                    "split it into several included files",
                )
            )
            return None
        with path.open("rb") as handle:
            raw = handle.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        problems.append(Problem(display, 1, 1, f"cannot read file: {exc.strerror}"))
        return None
    try:
        text = raw[:MAX_YAML_BYTES].decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        problems.append(Problem(display, line, 1, "not UTF-8 text; save the file as UTF-8"))
        return None
    yaml = YAML(typ="rt")
    yaml.Composer = _CountingComposer
    yaml.Constructor = _CheckedConstructor
    yaml.max_depth = MAX_YAML_DEPTH
    yaml.cartflow_reading = reading or _Reading()  # type: ignore[attr-defined]  # read by _CountingComposer
    yaml.preserve_quotes = True  # so positions can point inside quotes (see _content_column)
    try:
        document = yaml.load(text)
    except _Refused as exc:
        problems.append(Problem(display, exc.line, exc.column, exc.message))
        return None
    except MaxDepthExceededError as exc:
        mark = exc.problem_mark
        problems.append(
            Problem(
                display,
                mark.line + 1 if mark else 1,
                mark.column + 1 if mark else 1,
                f"lists and mappings nest more than {MAX_YAML_DEPTH} deep (MAX_YAML_DEPTH); "
                "flatten them",
            )
        )
        return None
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
    except RecursionError:
        problems.append(Problem(display, 1, 1, "YAML nests too deeply; flatten it"))
        return None
    except Exception as exc:  # ruamel raises a few unmarked errors (duplicate keys, ...)
        problems.append(Problem(display, 1, 1, f"YAML: {exc}".splitlines()[0]))
        return None
    _record_positions(document, (), source)
    plain = _plain(document, (), source, problems)
    return plain, source


class _Refused(Exception):
    """A YAML document refused before construction, at a 1-based position."""

    def __init__(self, message: str, at: Any) -> None:
        super().__init__(message)
        mark = getattr(at, "start_mark", at)
        self.message = message
        self.line = mark.line + 1
        self.column = mark.column + 1


class _CountingComposer(Composer):
    """Stops reading past :data:`MAX_YAML_NODES` values, before they are all parsed."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if not self.parser.check_event(AliasEvent):
            reading: _Reading = self.loader.cartflow_reading
            reading.nodes_left -= 1
            if reading.nodes_left < 0:
                raise _Refused(
                    f"the configuration holds more than {MAX_YAML_NODES:,} values "
                    "(MAX_YAML_NODES); split scenarios that share steps, or remove unused ones",
                    self.parser.peek_event(),
                )
        return super().compose_node(parent, index)


class _CheckedConstructor(RoundTripConstructor):
    """Checks the composed document (:func:`_check_document`) before building anything
    from it, so no tag is ever constructed and no alias bomb is ever expanded."""

    def construct_document(self, node: Any) -> Any:
        _check_document(node)
        return super().construct_document(node)


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def _check_document(root: Node) -> None:
    """Refuse tags outside :data:`YAML_TAGS`, recursive aliases, and aliases that expand
    the document by more than :data:`MAX_ALIAS_EXPANSION`. Each node is visited once:
    the expanded size of a shared node is computed once and counted at every use."""
    expanded: dict[int, int] = {}
    written = 0
    entered: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        own = 1 + (len(node.value) if isinstance(node, ScalarNode) else 0)
        if done:
            expanded[key] = own + sum(expanded[id(child)] for child in _children(node))
            continue
        if key in expanded:
            continue
        if key in entered:
            raise _Refused("this alias refers to a value that contains it; write it out", node)
        entered.add(key)
        tag = str(getattr(node.tag, "value", node.tag))
        if tag not in YAML_TAGS:
            shown = tag.replace("tag:yaml.org,2002:", "!!")
            raise _Refused(
                f"YAML tag '{shown}' is not allowed: a configuration holds plain values (text, "
                "numbers, true/false, lists, mappings); remove the tag",
                node,
            )
        written += own
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(_children(node)))
    if expanded[id(root)] - written <= MAX_ALIAS_EXPANSION:
        return
    node = root
    while True:  # point at the smallest value that is too big
        bigger = [c for c in _children(node) if expanded[id(c)] > MAX_ALIAS_EXPANSION]
        if not bigger:
            break
        node = bigger[0]
    raise _Refused(
        f"aliases expand this to {expanded[id(node)]:,} values and characters; aliases may add "
        f"at most {MAX_ALIAS_EXPANSION:,} to a file (MAX_ALIAS_EXPANSION): write the values "
        "out, or nest fewer aliases",
        node,
    )


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
    if isinstance(node, TaggedScalar):  # an explicit plain tag: '!!str 3'
        node = str(node.value)
    if isinstance(node, str):

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            value = os.environ.get(name)
            if value is not None:
                source.from_env.setdefault(loc, []).append(name)
                if value:
                    source.secrets[value] = name
            else:
                value = match.group(2)
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
    errors = exc.errors()
    located = [_data_loc(e["loc"]) for e in errors]
    for err, data_loc in zip(errors, located, strict=True):
        full = (*prefix, *data_loc)
        if err["type"] == "too_short" and any(
            other[: len(data_loc)] == data_loc and len(other) > len(data_loc) for other in located
        ):
            continue  # "steps: should have at least 1 item" only echoes a broken step
        msg = _in_marketer_words(err) or str(err["msg"]).removeprefix("Value error, ").removeprefix(
            "Assertion failed, "
        )
        if err["type"] == "extra_forbidden":
            key = str(data_loc[-1])
            known = _fields_at(model, data_loc[:-1])
            hint = did_you_mean(key, known) or f" (known keys: {', '.join(known)})"
            line, col = source.where(full, key=True)
            yield Problem(source.path, line, col, f"unknown key '{key}'{hint}")
            continue
        if err["type"] == "literal_error":
            expected = err.get("ctx", {}).get("expected", "")
            options = re.findall(r"'([^']*)'", expected)
            name = next((str(p) for p in reversed(data_loc) if isinstance(p, str)), "value")
            hint = did_you_mean(str(err.get("input")), options) or f" (expected {expected})"
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


def _in_marketer_words(err: Any) -> str | None:
    """pydantic's wording ("Input should be less than or equal to 100") in words a
    marketer reads, with an example; None to keep pydantic's own."""
    kind, ctx = err["type"], err.get("ctx") or {}
    bounds = {
        "greater_than": "more than {gt}",
        "greater_than_equal": "at least {ge}",
        "less_than": "less than {lt}",
        "less_than_equal": "at most {le}",
    }
    if kind in bounds:
        return f"must be {bounds[kind].format(**ctx)}; got {err.get('input')!r}"
    words = {
        "int_parsing": "must be a whole number, e.g. 3",
        "int_type": "must be a whole number, e.g. 3",
        "int_from_float": "must be a whole number, e.g. 3",
        "float_parsing": "must be a number, e.g. 2.5",
        "float_type": "must be a number, e.g. 2.5",
        "decimal_parsing": "must be a number, e.g. 2.5",
        "decimal_type": "must be a number, e.g. 2.5",
        "bool_parsing": "must be true or false",
        "bool_type": "must be true or false",
        "string_type": "must be text; put it in quotes",
        "list_type": "must be a list, e.g. [a, b]",
        "tuple_type": "must be a list, e.g. [a, b]",
        "dict_type": "must be a mapping of keys to values",
        "model_type": "must be a mapping of keys to values",
        "model_attributes_type": "must be a mapping of keys to values",
    }
    if kind in words:
        return f"{words[kind]}; got {err.get('input')!r}"
    if kind == "too_short":
        least = ctx.get("min_length", 1)
        return f"needs at least {least} item{'s' if least != 1 else ''}"
    if kind == "string_pattern_mismatch":
        return (
            f"{err.get('input')!r} does not fit: use lowercase letters, digits and '_' "
            f"(pattern {ctx.get('pattern')})"
            if "a-z0-9_" in str(ctx.get("pattern"))
            else f"{err.get('input')!r} does not match the expected form {ctx.get('pattern')}"
        )
    return None


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
    reading = _Reading()
    read = _read_yaml(main, str(path), problems, reading)
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
            loaded = _read_yaml(Path(match), display, problems, reading)
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
            problems.extend(_pydantic_problems(exc, Scenario, source, loc))
            partial = _salvage(Scenario, raw, track="steps")
            if partial is not None:
                scenarios.append(_compile_scenario(partial[0], source, loc, problems, partial[1]))
            continue
        scenarios.append(_compile_scenario(model, source, loc, problems))

    segments: dict[str, Condition] = {}
    for name, expr in (settings.segments or {}).items():
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


def redact(problems: list[Problem], sources: list[Source]) -> list[Problem]:
    """``problems`` without any value that came from the environment: each one becomes
    ``<value from ${NAME}>``; a problem where such a value is used says so, and shows no
    quoted part of it either (a condition's parser may quote a piece of a token)."""
    secrets: dict[str, str] = {}
    used: dict[tuple[str, int], list[str]] = {}
    for source in sources:
        secrets.update(source.secrets)
        for loc, names in source.from_env.items():
            used.setdefault((source.path, source.where(loc)[0]), []).extend(names)
    if not used:
        return problems
    ordered = sorted(secrets.items(), key=lambda item: -len(item[0]))
    out = []
    for problem in problems:
        message = problem.message
        for value, name in ordered:
            message = _hide(message, value, name)
        names = used.get((problem.file, problem.line), [])
        if names:
            here = [(value, name) for value, name in ordered if name in names]
            message = _QUOTED.sub(functools.partial(_hide_part, secrets=here), message)
            if not any(f"${{{name}}}" in message for name in names):
                message += f" (the value comes from ${{{names[0]}}}, not shown)"
        out.append(dataclasses.replace(problem, message=message))
    return out


_QUOTED = re.compile(r"'([^']{3,})'|\"([^\"]{3,})\"")


def _hide(message: str, value: str, name: str) -> str:
    shown = f"<value from ${{{name}}}>"
    for quoted in (repr(value), f"'{value}'", f'"{value}"'):
        message = message.replace(quoted, shown)
    return re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", lambda _: shown, message)


def _hide_part(match: re.Match[str], secrets: list[tuple[str, str]]) -> str:
    text = match.group(1) or match.group(2)
    for value, name in secrets:
        if text in value:
            return f"<part of the value from ${{{name}}}>"
    return match.group(0)


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
