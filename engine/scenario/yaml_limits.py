"""How far reading a YAML file may go: the limits a configuration's files are held to
(docs/scenarios.md, "Limits"), and the ruamel reader that keeps to them
(:func:`bounded_yaml`).

Nothing in a file can take the loader down: values are counted as they are composed and
reading stops past :data:`MAX_YAML_NODES`; nesting stops at :data:`MAX_YAML_DEPTH`; the
composed document is checked before anything is built from it, so a tag other than plain
YAML's own (``!!python/object``...) is never constructed and aliases that multiply (a
"billion laughs") are refused by :data:`MAX_ALIAS_EXPANSION` before they are expanded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

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
class Reading:
    """What is left to read of one configuration: :data:`MAX_YAML_NODES` in all."""

    nodes_left: int = MAX_YAML_NODES


class Refused(Exception):
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
                raise Refused(
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
            raise Refused("this alias refers to a value that contains it; write it out", node)
        entered.add(key)
        tag = str(getattr(node.tag, "value", node.tag))
        if tag not in YAML_TAGS:
            shown = tag.replace("tag:yaml.org,2002:", "!!")
            raise Refused(
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
    raise Refused(
        f"aliases expand this to {expanded[id(node)]:,} values and characters; aliases may add "
        f"at most {MAX_ALIAS_EXPANSION:,} to a file (MAX_ALIAS_EXPANSION): write the values "
        "out, or nest fewer aliases",
        node,
    )


def bounded_yaml(reading: Reading) -> YAML:
    """A round-trip YAML reader held to these limits, counting values against ``reading``."""
    yaml = YAML(typ="rt")
    yaml.Composer = _CountingComposer
    yaml.Constructor = _CheckedConstructor
    yaml.max_depth = MAX_YAML_DEPTH
    yaml.cartflow_reading = reading  # type: ignore[attr-defined]  # read by _CountingComposer
    return yaml
