"""Reading one YAML file of a configuration: plain values, with the position of every
key and value (:class:`Source`), and every reading problem as a :class:`Problem`.

Nothing in a file can take the loader down: a file is read only up to
:data:`MAX_YAML_BYTES`, and the reader keeps to the limits of
:mod:`cartflow.engine.scenario.yaml_limits` (values, nesting, tags, aliases), each passed
limit a problem at its position. A value substituted from the environment (``${NAME}``)
is never printed: :func:`redact` makes problems say ``<value from ${NAME}>``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.composer import MaxDepthExceededError
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

from cartflow.engine.errors import Problem

# An ``X as X`` import re-exports a name defined here before (still imported from here).
from cartflow.engine.scenario.yaml_limits import MAX_ALIAS_EXPANSION as MAX_ALIAS_EXPANSION
from cartflow.engine.scenario.yaml_limits import MAX_YAML_BYTES as MAX_YAML_BYTES
from cartflow.engine.scenario.yaml_limits import MAX_YAML_DEPTH as MAX_YAML_DEPTH
from cartflow.engine.scenario.yaml_limits import MAX_YAML_NODES as MAX_YAML_NODES
from cartflow.engine.scenario.yaml_limits import YAML_TAGS as YAML_TAGS
from cartflow.engine.scenario.yaml_limits import Reading as Reading
from cartflow.engine.scenario.yaml_limits import Refused, bounded_yaml

#: A place in a YAML document: the keys and list indexes leading to it.
Path_ = tuple[str | int, ...]
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


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
    yaml = bounded_yaml(reading or Reading())
    yaml.preserve_quotes = True  # so positions can point inside quotes (see _content_column)
    try:
        document = yaml.load(text)
    except Refused as exc:
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
