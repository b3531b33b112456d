"""Reading one YAML file of a configuration: plain values, with the position of every
key and value (:class:`Source`), and every reading problem as a :class:`Problem`.

Nothing in a file can take the loader down: a file is read only up to
:data:`MAX_YAML_BYTES`; YAML tags other than plain YAML's own (``!!python/object``...)
are refused and never constructed; aliases that multiply (a "billion laughs") are refused
by :data:`MAX_ALIAS_EXPANSION` before anything is built. A value substituted from the
environment (``${NAME}``) is never printed: :func:`redact` makes problems say
``<value from ${NAME}>``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.composer import Composer, MaxDepthExceededError
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

from cartflow.engine.errors import Problem

#: A place in a YAML document: the keys and list indexes leading to it.
Path_ = tuple[str | int, ...]
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
class Reading:
    """What is left to read of one configuration: :data:`MAX_YAML_NODES` in all."""

    nodes_left: int = MAX_YAML_NODES


def read_yaml(
    path: Path, display: str, problems: list[Problem], reading: Reading | None = None
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
    yaml.cartflow_reading = reading or Reading()  # type: ignore[attr-defined]  # read by _CountingComposer
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
            reading: Reading = self.loader.cartflow_reading
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
