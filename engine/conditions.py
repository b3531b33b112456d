"""Sandboxed Jinja expressions for triggers, audiences, exclusions and step conditions.

An expression is compiled once, when the configuration loads; an unknown name or filter
is a load-time error, not a surprise at 3 a.m., and so is an unknown attribute
(``cart.valeu``, checked against :mod:`cartflow.engine.context_schema`). Expressions see only the
names of :data:`~cartflow.engine.context_schema.CONDITION_NAMES`, read-only, inside
:class:`cartflow.engine.sandbox.Sandbox`: what is too big as written (``9**(9**9)``,
``range(10**9)``) or reaches for Python internals (``cart.__class__``) is refused here,
and each evaluation runs within :data:`~cartflow.engine.sandbox.CONDITION_LIMITS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.environment import TemplateExpression
from jinja2.exceptions import TemplateAssertionError
from jinja2.parser import Parser

from cartflow.engine.context_schema import CONDITION_NAMES, Type
from cartflow.engine.errors import (
    ConditionError as ConditionError,  # re-exported (defined here before)
)
from cartflow.engine.errors import did_you_mean
from cartflow.engine.paths import check_paths
from cartflow.engine.sandbox import (
    CLOCK_READERS,
    CONDITION_LIMITS,
    Sandbox,
    TemplateLimitError,
    check_limits,
    column_of,
    evaluation,
)

#: Longest condition, in characters: longer logic belongs in named segments.
MAX_CONDITION_LENGTH = 2_000

#: The names a condition may use, and what they hold (the context schema's).
NAMES: Mapping[str, str] = {name: t.description for name, t in CONDITION_NAMES.items()}


_env = Sandbox(autoescape=False, limits=CONDITION_LIMITS)


@dataclass(frozen=True)
class Condition:
    """A compiled expression. ``evaluate`` returns a bool or raises; the caller fails
    closed (:func:`cartflow.engine.condition_failures.evaluate`)."""

    source: str
    names: frozenset[str]
    _compiled: Any

    def evaluate(self, context: Mapping[str, Any]) -> bool:
        """Raises :class:`~cartflow.engine.sandbox.LimitError` past :data:`CONDITION_LIMITS`."""
        with evaluation(CONDITION_LIMITS):
            return bool(self._compiled(**context))


def compile_condition(source: str, *, allowed: Mapping[str, Type] = CONDITION_NAMES) -> Condition:
    """Compile ``source`` or raise :class:`ConditionError` with what, where and a hint."""
    text = str(source).strip()
    if not text:
        raise ConditionError("empty condition; write an expression such as 'cart.value >= 1000'")
    if len(text) > MAX_CONDITION_LENGTH:
        raise ConditionError(
            f"condition of {len(text):,} characters; the limit is {MAX_CONDITION_LENGTH:,} "
            "(name its parts as segments and combine them)"
        )
    try:
        return _compile(text, allowed)
    except ConditionError:
        raise
    except (RecursionError, SyntaxError, MemoryError):  # Python's own nesting limits
        raise ConditionError(
            "condition nests too deeply (too many operators or brackets in a row); "
            "name its parts as segments and combine them"
        ) from None
    except ValueError as exc:  # a number of more than 4300 digits
        raise ConditionError(f"condition does not parse: {exc}") from None


def _compile(text: str, allowed: Mapping[str, Type]) -> Condition:
    try:
        ast = _parse(text)
    except TemplateSyntaxError as exc:
        raise ConditionError(f"condition does not parse: {exc.message}") from None
    for getattr_node in ast.find_all(nodes.Getattr):
        if getattr_node.attr in CLOCK_READERS:
            raise ConditionError(
                f"'.{getattr_node.attr}' reads the machine's clock; use 'now' itself (the "
                "recipient's local time on the engine's clock)",
                column=_find(text, "." + getattr_node.attr),
            )
    try:
        check_limits(ast, CONDITION_LIMITS)
    except TemplateLimitError as exc:
        raise ConditionError(exc.message or str(exc), column=column_of(text, exc.needle)) from None
    for node in ast.find_all((nodes.Filter, nodes.Test)):
        table = _env.filters if isinstance(node, nodes.Filter) else _env.tests
        if node.name not in table:
            kind = "filter" if isinstance(node, nodes.Filter) else "test"
            public = [name for name in table if not name.startswith("_")]
            hint = did_you_mean(node.name, public)
            raise ConditionError(
                f"unknown {kind} '{node.name}'{hint}", column=_find(text, node.name)
            )
    names = frozenset(meta.find_undeclared_variables(ast))
    for name in sorted(names):
        if name not in allowed:
            hint = did_you_mean(name, allowed)
            raise ConditionError(
                f"unknown name '{name}' in condition{hint} (known: {', '.join(allowed)})",
                column=_find(text, name),
            )
    unknown = check_paths(ast, allowed, text)
    if unknown:
        raise ConditionError(unknown[0].message, column=unknown[0].column)
    try:
        template = _env.from_string(_env.guard(ast))
    except (TemplateSyntaxError, TemplateAssertionError) as exc:
        raise ConditionError(f"condition does not compile: {exc.message}") from None
    return Condition(
        source=text, names=names, _compiled=TemplateExpression(template, undefined_to_none=True)
    )


def _parse(text: str) -> nodes.Template:
    """``text`` as ``result = (text)``, the way :meth:`jinja2.Environment.compile_expression`
    builds it, so the tree can be checked and guarded before it compiles."""
    parser = Parser(_env, text, state="variable")
    expression = parser.parse_expression()
    if not parser.stream.eos:
        raise TemplateSyntaxError(
            f"unexpected {parser.stream.current.value!r} after the expression",
            parser.stream.current.lineno,
        )
    tree = nodes.Template(
        [nodes.Assign(nodes.Name("result", "store"), expression, lineno=1)], lineno=1
    )
    tree.set_environment(_env)
    return tree


def _find(text: str, word: str) -> int | None:
    index = text.find(word)
    return index + 1 if index >= 0 else None
