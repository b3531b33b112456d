"""What is refused before a condition or a template compiles: what is too big as written
and names starting with ``_``.

Jinja folds constant expressions while it compiles (``{{ 'a' * 10**9 }}`` would be
computed right there), so :func:`check_limits` walks the parsed tree first and evaluates
its constant parts with the run-time checks (:mod:`cartflow.engine.limits`,
:mod:`cartflow.engine.expanding`), never beyond the limits. What depends on the data is left to
run time.

Errors::

    jinja2.exceptions.TemplateSyntaxError, engine.errors.CartflowError
     └── TemplateLimitError      refused before compiling, with line and column
"""

from __future__ import annotations

import re
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from cartflow.engine.errors import CartflowError
from cartflow.engine.expanding import FILTER_CHECKS, METHOD_CHECKS, UNKNOWN
from cartflow.engine.limits import (
    LimitError,
    Limits,
    bounded_binop,
    bounded_range,
    check_format_spec,
    too_long,
)

#: Deepest nesting of a parsed condition or template: an expression in a loop in a block
#: is about 10 deep, and Jinja's compiler slows down with the cube of the depth
#: (``cart.a.a.a…`` 300 times takes seconds).
MAX_NESTING = 24


class TemplateLimitError(CartflowError, TemplateSyntaxError):
    """Refused before compiling; ``column`` (1-based) is where ``needle`` is on the line."""

    def __init__(
        self,
        message: str,
        lineno: int,
        needle: str | None = None,
        name: str | None = None,
        filename: str | None = None,
    ) -> None:
        super().__init__(message, lineno, name, filename)
        self.needle = needle
        self.column: int | None = None

    def locate(self, source: str) -> TemplateLimitError:
        """Set ``column`` from the line of ``source`` that holds the refused text."""
        lines = source.splitlines()
        line = lines[self.lineno - 1] if 0 < self.lineno <= len(lines) else ""
        self.column = column_of(line, self.needle)
        return self


def column_of(text: str, needle: str | None) -> int | None:
    """1-based column of ``needle`` in ``text`` (an operator is matched as a whole)."""
    if not needle:
        return None
    pattern = re.escape(needle)
    if needle in {"*", "**", "%", "+"}:
        pattern = rf"(?<![*]){pattern}(?![*])"
    match = re.search(pattern, text)
    return match.start() + 1 if match else None


def check_limits(tree: nodes.Node, limits: Limits) -> None:
    """Refuse what is too big as written, and names starting with ``_``.

    Raises :class:`TemplateLimitError` with the line and the text to point at (see
    :meth:`TemplateLimitError.locate`). Constant parts are evaluated with the same checks
    as at run time (never beyond the limits); the rest is left to run time.
    """
    _check_nesting(tree)
    private = next((n for n in tree.find_all(_NAMED) if _private(n)), None)
    while private is not None:  # the first in the text: the innermost of a chain
        inner = next((n for n in private.find_all(_NAMED) if _private(n)), None)
        if inner is None:
            name = _private(private)
            shown = f"|{name}" if isinstance(private, nodes.Filter) else f"'{name}'"
            raise TemplateLimitError(
                f"{shown} is internal (names starting with '_' belong to Python, not to "
                "your data); use the documented names only",
                private.lineno,
                name,
            )
        private = inner
    _Folder(limits).fold(tree)


def _check_nesting(tree: nodes.Node) -> None:
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            raise TemplateLimitError(
                f"nests more than {MAX_NESTING} deep (MAX_NESTING): too many operators, "
                "filters, attributes or tags inside one another; split it",
                node.lineno,
            )
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())


_NAMED = (nodes.Getattr, nodes.Getitem, nodes.Filter)


def _private(node: nodes.Node) -> str | None:
    """The name ``node`` reads, if it starts with ``_``."""
    name: Any = None
    if isinstance(node, nodes.Getattr):
        name = node.attr
    elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        name = node.arg.value
    elif isinstance(node, nodes.Filter):
        name = node.name
    return name if isinstance(name, str) and name.startswith("_") else None


class _Folder:
    """Evaluates constant sub-expressions with the run-time checks, each node once."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.values: dict[int, Any] = {}

    def fold(self, node: nodes.Node) -> Any:
        for child in node.iter_child_nodes():
            self.fold(child)
        try:
            value = self._value(node)
        except LimitError as exc:
            fix = ": use smaller numbers" if "the limit is" in str(exc) else ""
            raise TemplateLimitError(
                f"{exc}{fix} (see 'Limits' in docs/scenarios.md)", node.lineno, _needle(node)
            ) from None
        self.values[id(node)] = value
        return value

    def _of(self, node: nodes.Node | None) -> Any:
        return UNKNOWN if node is None else self.values.get(id(node), UNKNOWN)

    def _value(self, node: nodes.Node) -> Any:
        if isinstance(node, nodes.Const):
            return node.value
        if isinstance(node, nodes.Keyword):
            return self._of(node.value)
        if isinstance(node, nodes.List | nodes.Tuple) and getattr(node, "ctx", "load") == "load":
            items = [self._of(item) for item in node.items]
            return UNKNOWN if any(i is UNKNOWN for i in items) else items
        if (
            isinstance(node, nodes.BinExpr)
            and node.operator in SandboxedEnvironment.default_binop_table
        ):
            left, right = self._of(node.left), self._of(node.right)
            if left is UNKNOWN or right is UNKNOWN:
                return UNKNOWN
            bounded_binop(node.operator, left, right, self.limits)
            try:
                return SandboxedEnvironment.default_binop_table[node.operator](left, right)
            except Exception:
                return UNKNOWN  # a type or division error: run time says so
        if isinstance(node, nodes.Neg) and isinstance(self._of(node.node), int | float):
            return -self._of(node.node)
        if isinstance(node, nodes.Concat):
            parts = [self._of(part) for part in node.nodes]
            if any(p is UNKNOWN for p in parts):
                return UNKNOWN
            size = sum(len(str(p)) for p in parts)
            if size > self.limits.max_length:
                raise too_long("'~'", size, self.limits)
            return "".join(str(p) for p in parts)
        if isinstance(node, nodes.Call):
            return self._call(node)
        if isinstance(node, nodes.Filter) and node.name in FILTER_CHECKS:
            args, kwargs = self._arguments(node)
            FILTER_CHECKS[node.name][0](self.limits, self._of(node.node), args, kwargs)
        return UNKNOWN

    def _arguments(self, node: nodes.Call | nodes.Filter) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return tuple(self._of(a) for a in node.args), {str(k.key): self._of(k) for k in node.kwargs}

    def _call(self, node: nodes.Call) -> Any:
        args, kwargs = self._arguments(node)
        target = node.node
        if isinstance(target, nodes.Name) and target.name == "range":
            if all(isinstance(a, int) for a in args) and not kwargs and 1 <= len(args) <= 3:
                return bounded_range(self.limits, *args)
        elif isinstance(target, nodes.Getattr):
            receiver = self._of(target.node)
            if not isinstance(receiver, str):
                return UNKNOWN
            if target.attr in METHOD_CHECKS:
                METHOD_CHECKS[target.attr](self.limits, receiver, args, kwargs)
            elif target.attr in ("format", "format_map"):
                check_format_spec(receiver, self.limits)
        return UNKNOWN


def _needle(node: nodes.Node) -> str | None:
    """The text :func:`column_of` looks for to point at ``node``."""
    if isinstance(node, nodes.BinExpr):
        return node.operator
    if isinstance(node, nodes.Call):
        target = node.node
        if isinstance(target, nodes.Name):
            return target.name
        if isinstance(target, nodes.Getattr):
            return "." + target.attr
    if isinstance(node, nodes.Filter):
        return node.name
    if isinstance(node, nodes.Concat):
        return "~"
    return None
