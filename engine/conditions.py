"""Sandboxed Jinja expressions for triggers, audiences, exclusions and step conditions.

An expression is compiled once, when the configuration loads; an unknown name or filter
is a load-time error, not a surprise at 3 a.m. Expressions see only the names in
:data:`NAMES`, read-only, inside :class:`jinja2.sandbox.ImmutableSandboxedEnvironment`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.exceptions import TemplateAssertionError
from jinja2.sandbox import ImmutableSandboxedEnvironment

#: The names a condition may use, and what they hold (documented in docs/scenarios.md).
NAMES: Mapping[str, str] = {
    "cart": "the cart: id, value, currency, item_count, items, url, created_at",
    "visitor": "behaviour: sessions, page_views, product_views, last_seen_at, is_known",
    "customer": "the known customer: id, orders_30d, orders_total, first_name, locale",
    "session": "the current session: id, started_at, page_views",
    "journey": "the journey: scenario, step, group, started_at, sent (messages so far)",
    "now": "the recipient's local time (a datetime)",
    "segments": "the names of the segments the visitor is in (a set)",
}


class ConditionError(ValueError):
    """A condition that cannot be compiled; ``column`` is 1-based within the expression."""

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message)
        self.column = column


#: Attributes that would read the machine's clock behind the engine's back.
CLOCK_READERS = frozenset(
    {"now", "utcnow", "today", "fromtimestamp", "utcfromtimestamp", "timestamp", "time"}
)


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, plus: no reading the wall clock (``now.now()``) — the
    engine's time comes only from its Clock, so simulate and production agree."""

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if attr in CLOCK_READERS:
            return False
        return bool(super().is_safe_attribute(obj, attr, value))


_env = Sandbox(autoescape=False)


@dataclass(frozen=True)
class Condition:
    """A compiled expression. ``evaluate`` returns a bool; errors count as False and are
    reported by the caller's decision log."""

    source: str
    names: frozenset[str]
    _compiled: Any

    def evaluate(self, context: Mapping[str, Any]) -> bool:
        return bool(self._compiled(**context))


def compile_condition(source: str, *, allowed: Mapping[str, str] = NAMES) -> Condition:
    text = str(source).strip()
    if not text:
        raise ConditionError("empty condition; write an expression such as 'cart.value >= 1000'")
    try:
        ast = _env.parse("{{ (" + text + ") }}")
    except TemplateSyntaxError as exc:
        raise ConditionError(f"condition does not parse: {exc.message}") from None
    for getattr_node in ast.find_all(nodes.Getattr):
        if getattr_node.attr in CLOCK_READERS:
            raise ConditionError(
                f"'.{getattr_node.attr}' reads the machine's clock; use 'now' itself (the "
                "recipient's local time on the engine's clock)",
                column=_find(text, "." + getattr_node.attr),
            )
    for node in ast.find_all((nodes.Filter, nodes.Test)):
        table = _env.filters if isinstance(node, nodes.Filter) else _env.tests
        if node.name not in table:
            kind = "filter" if isinstance(node, nodes.Filter) else "test"
            close = difflib.get_close_matches(node.name, list(table), n=1)
            hint = f" — did you mean '{close[0]}'?" if close else ""
            raise ConditionError(
                f"unknown {kind} '{node.name}'{hint}", column=_find(text, node.name)
            )
    names = frozenset(meta.find_undeclared_variables(ast))
    for name in sorted(names):
        if name not in allowed:
            close = difflib.get_close_matches(name, list(allowed), n=1)
            hint = f" — did you mean '{close[0]}'?" if close else ""
            raise ConditionError(
                f"unknown name '{name}' in condition{hint} (known: {', '.join(allowed)})",
                column=_find(text, name),
            )
    try:
        compiled = _env.compile_expression(text, undefined_to_none=True)
    except (TemplateSyntaxError, TemplateAssertionError) as exc:
        raise ConditionError(f"condition does not compile: {exc.message}") from None
    return Condition(source=text, names=names, _compiled=compiled)


def _find(text: str, word: str) -> int | None:
    index = text.find(word)
    return index + 1 if index >= 0 else None
