"""The sandbox conditions and templates run in: nothing in a configuration can take the
engine down.

Jinja's :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` stops a template from
reaching Python internals or changing data, but not from costing a minute of CPU or a
gigabyte of memory. :class:`Sandbox` adds:

* before compiling, :func:`~cartflow.engine.prechecks.check_limits`: what is too big as written,
  and names starting with ``_``, are refused with the line and column;
* the operators that can build something big (``* ** % +``) are intercepted — which also
  keeps Jinja from folding them while it compiles — and checked before they compute
  (:func:`~cartflow.engine.limits.bounded_binop`); so are ``range()``, ``~``, literals, and the
  ``str`` methods and filters of :mod:`cartflow.engine.expanding`;
* :meth:`Sandbox.guard` rewrites the tree so that every loop turn and every piece of
  output is charged to the evaluation's :class:`~cartflow.engine.limits.Budget`.

The limits are :data:`~cartflow.engine.limits.CONDITION_LIMITS` and
:data:`~cartflow.engine.limits.TEMPLATE_LIMITS` (docs/scenarios.md, "Limits").
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

from jinja2 import nodes, pass_context, pass_eval_context
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from cartflow.engine.expanding import FILTER_CHECKS, METHOD_CHECKS, Check
from cartflow.engine.limits import (
    CONDITION_LIMITS,
    INTERCEPTED_BINOPS,
    SEQUENCES,
    TEMPLATE_LIMITS,
    Budget,
    LimitError,
    Limits,
    bounded_binop,
    bounded_range,
    charge_built,
    charge_step,
    check_format_spec,
    current_budget,
    evaluation,
    size_of,
    too_long,
)
from cartflow.engine.prechecks import TemplateLimitError, check_limits, column_of

#: Attributes that would read the machine's clock behind the engine's back.
CLOCK_READERS = frozenset(
    {"now", "utcnow", "today", "fromtimestamp", "utcfromtimestamp", "timestamp", "time"}
)


# Internal filters the guard rewrites templates with (not for marketers: names start
# with '_', which check_limits() refuses in what people write).
_LOOP, _EMIT, _CONCAT, _SIZED = "_cf_loop", "_cf_emit", "_cf_concat", "_cf_sized"


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox within ``limits``, and no reading the wall clock
    (``now.now()``): the engine's time comes only from its Clock, so simulate and
    production agree. ``lipsum`` is gone; ``range`` is bounded."""

    intercepted_binops = INTERCEPTED_BINOPS

    def __init__(self, *args: Any, limits: Limits = TEMPLATE_LIMITS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.globals.pop("lipsum", None)
        self.globals["range"] = functools.partial(bounded_range, limits)
        for name, (check, original) in FILTER_CHECKS.items():
            self.filters[name] = _checked_filter(limits, check, original)
        self.filters.update({_LOOP: _loop, _EMIT: _emit, _CONCAT: _concat, _SIZED: _sized(limits)})

    # -- compile time
    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        try:
            self.check(tree, name)
        except TemplateLimitError as exc:
            exc.name, exc.filename = name, filename
            raise exc.locate(source) from None
        self.guard(tree)
        return tree

    def check(self, tree: nodes.Template, name: str | None = None) -> None:
        """Refuse ``tree`` (of template ``name``) before it compiles
        (:func:`~cartflow.engine.prechecks.check_limits`)."""
        check_limits(tree, self.limits)

    def guard(self, tree: nodes.Template) -> nodes.Template:
        """Rewrite ``tree`` so that every loop turn and every piece of output is charged to
        the evaluation's :class:`Budget`, and ``~`` and literals are size-checked."""
        _Guard().visit(tree)
        return tree

    # -- run time
    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if attr in CLOCK_READERS:
            return False
        return bool(super().is_safe_attribute(obj, attr, value))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        charge_step()
        bounded_binop(operator, left, right, self.limits)
        result = super().call_binop(context, operator, left, right)
        return charge_built(result) if isinstance(result, SEQUENCES) else result

    def getattr(self, obj: Any, attribute: str) -> Any:
        """A record's own data comes before a mapping's methods: ``cart.items`` is the
        cart's items (as :mod:`cartflow.engine.context_schema` declares), not ``dict.items``."""
        charge_step()
        if isinstance(obj, dict) and attribute in obj and not attribute.startswith("_"):
            return obj[attribute]
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        charge_step()
        return super().getitem(obj, argument)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        charge_step()
        receiver = getattr(__obj, "__self__", None)
        name = str(getattr(__obj, "__name__", ""))
        if isinstance(receiver, str | bytes) and name in METHOD_CHECKS:  # Markup's too
            if name == "join" and args:
                args = (list(args[0]), *args[1:])  # checked, then joined: read it once
            METHOD_CHECKS[name](__self.limits, receiver, args, kwargs)
            return charge_built(super().call(__context, __obj, *args, **kwargs))
        result = super().call(__context, __obj, *args, **kwargs)
        containers = (list, tuple, dict, set, frozenset)
        if isinstance(result, containers) and size_of(result) > __self.limits.max_length:
            raise too_long(f"{name or 'a call'}()", size_of(result), __self.limits)  # fromkeys
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template, limits, inner = str(value.__self__), self.limits, wrapped

        def bounded(*args: Any, **kwargs: Any) -> str:
            check_format_spec(template, limits)
            return inner(*args, **kwargs)

        return functools.update_wrapper(bounded, wrapped)


def _checked_filter(
    limits: Limits, check: Check, original: Callable[..., Any]
) -> Callable[..., Any]:
    skip = 1 if getattr(original, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(original)
    def checked(*args: Any, **kwargs: Any) -> Any:
        head, value, rest = args[:skip], args[skip], args[skip + 1 :]
        value = check(limits, value, rest, kwargs)
        return charge_built(original(*head, value, *rest, **kwargs))

    return checked


@pass_context
def _loop(context: Context, iterable: Any) -> Iterator[Any]:
    budget = current_budget()
    for item in iterable:
        if budget is not None:
            budget.step()
        yield item


@pass_context
def _emit(context: Context, value: Any) -> Any:
    budget = current_budget()
    if budget is not None:
        budget.step()
        if not isinstance(value, str):
            # measure before printing: str() of a huge nested value is one call that no
            # budget can interrupt
            limits = getattr(context.environment, "limits", TEMPLATE_LIMITS)
            if size_of(value) > limits.max_length:
                raise too_long("a printed value", size_of(value), limits)
        budget.emit(len(value) if isinstance(value, str) else len(str(value)))
    return value


@pass_eval_context
def _concat(eval_ctx: EvalContext, parts: list[Any]) -> str:
    limits = getattr(eval_ctx.environment, "limits", TEMPLATE_LIMITS)
    size = sum(len(p) if isinstance(p, str) else len(str(p)) for p in parts)
    if size > limits.max_length:
        raise too_long("'~'", size, limits)
    joined: str = markup_join(parts) if eval_ctx.autoescape else str_join(parts)
    charge_built(joined)
    return joined


def _sized(limits: Limits) -> Callable[[Any], Any]:
    def sized(value: Any) -> Any:
        if size_of(value) > limits.max_length:
            raise too_long("a list or mapping", size_of(value), limits)
        return value

    return sized


class _Guard(NodeTransformer):
    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _filter(node.iter, _LOOP)  # type: ignore[arg-type]  # always an Expr
        return node

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [_filter(child, _EMIT) for child in node.nodes]
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _filter(nodes.List(list(node.nodes), lineno=node.lineno), _CONCAT)

    def _literal(self, node: nodes.Expr) -> nodes.Node:
        self.generic_visit(node)
        if getattr(node, "ctx", "load") != "load":
            return node
        return _filter(node, _SIZED)

    visit_List = visit_Tuple = visit_Dict = _literal


def _filter(node: nodes.Expr, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


__all__ = [
    "CLOCK_READERS",
    "CONDITION_LIMITS",
    "TEMPLATE_LIMITS",
    "Budget",
    "LimitError",
    "Limits",
    "Sandbox",
    "TemplateLimitError",
    "check_limits",
    "column_of",
    "evaluation",
]
