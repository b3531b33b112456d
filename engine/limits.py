"""What one evaluation of a condition, or one rendering of a message, may cost — and the
checks that keep an operator from building something huge *before* it computes it.

``9**(9**9)`` or ``'a'*10**9`` is a single big-integer or string operation: it holds the
GIL, so no timer can stop it once it has started. :func:`bounded_binop` estimates the
size of a result from its operands and refuses it first; :func:`evaluation` gives each
evaluation a :class:`Budget` of steps, output, built values and seconds, charged by the
sandbox (:mod:`cartflow.engine.sandbox`) as it runs.

Errors::

    jinja2.exceptions.SecurityError
     └── LimitError              a limit reached while evaluating (the caller records why)
"""

from __future__ import annotations

import math
import re
import string
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from jinja2.exceptions import SecurityError

from cartflow.engine.errors import CartflowError


@dataclass(frozen=True)
class Limits:
    """What one evaluation of a condition, or one rendering of a message, may cost."""

    #: Longest text, or most items, an operator, filter or method may build.
    max_length: int = 100_000
    #: Most decimal digits of a number an operator may build.
    max_digits: int = 1_000
    #: Most numbers ``range()`` may give.
    max_range: int = 10_000
    #: Most steps (attribute reads, calls, operators, loop turns) of one evaluation.
    max_steps: int = 100_000
    #: Most characters one evaluation may output (a whole message, every block).
    max_output: int = 1_000_000
    #: Most characters and items the operators, filters and methods that can build big
    #: values (``* + ~ %``, ``center``, ``replace``, ``join``...) may build, all together.
    max_built: int = 4_000_000
    #: Longest one evaluation may run, in seconds (checked at every step).
    max_seconds: float = 2.0


#: Limits of one evaluation of a condition (a trigger, an exclusion, a segment, a step).
CONDITION_LIMITS = Limits(max_steps=10_000, max_output=100_000, max_built=400_000, max_seconds=0.5)
#: Limits of rendering one message from a template (all of its blocks).
TEMPLATE_LIMITS = Limits()


class LimitError(CartflowError, SecurityError):
    """An evaluation reached one of its :class:`Limits`."""


# -- the budget of one evaluation ---------------------------------------------------------
@dataclass
class Budget:
    """Steps, output and time left to one evaluation."""

    limits: Limits
    steps: int = 0
    output: int = 0
    built: int = 0
    deadline: float = field(default=0.0)

    def step(self) -> None:
        self.steps += 1
        if self.steps > self.limits.max_steps:
            raise LimitError(
                f"took more than {self.limits.max_steps:,} steps (loops, calls and "
                "operators); simplify it"
            )
        if time.monotonic() > self.deadline:
            raise LimitError(f"took longer than {self.limits.max_seconds:g} s; simplify it")

    def emit(self, size: int) -> None:
        self.output += size
        if self.output > self.limits.max_output:
            raise LimitError(f"would output more than {self.limits.max_output:,} characters")

    def build(self, size: int) -> None:
        self.built += size
        if self.built > self.limits.max_built:
            raise LimitError(
                f"would build more than {self.limits.max_built:,} characters and items in all"
            )


_budget: ContextVar[Budget | None] = ContextVar("cartflow_budget", default=None)


def current_budget() -> Budget | None:
    """The :class:`Budget` of the evaluation running in this thread, if any."""
    return _budget.get()


@contextmanager
def evaluation(limits: Limits) -> Iterator[Budget]:
    """Run one evaluation (a condition, a message) on a fresh :class:`Budget`."""
    budget = Budget(limits, deadline=time.monotonic() + limits.max_seconds)
    token = _budget.set(budget)
    try:
        yield budget
    finally:
        _budget.reset(token)


def charge_step() -> None:
    """One step of the current evaluation (none outside :func:`evaluation`)."""
    budget = current_budget()
    if budget is not None:
        budget.step()


def charge_built(value: Any) -> Any:
    """Charge what an operator, filter or method built to the current evaluation; returns
    ``value``."""
    budget = current_budget()
    if budget is not None:
        budget.build(size_of(value))
    return value


# -- sizes --------------------------------------------------------------------------------
#: How deep :func:`size_of` looks into nested lists and mappings ...
MAX_SIZED_DEPTH = 32
#: ... and what anything nested deeper counts as: more than any limit allows (a value
#: that deep is a hostile construction, and printing it could take unbounded time).
TOO_DEEP = 10**15


def size_of(value: Any, _memo: dict[int, int] | None = None, _depth: int = 0) -> int:
    """Characters of text plus items of anything else, through lists and mappings (shared
    items count every time they appear, as they would when printed)."""
    if isinstance(value, str | bytes):
        return len(value)
    if not isinstance(value, list | tuple | set | frozenset | dict):
        return 1
    if _depth > MAX_SIZED_DEPTH:
        return TOO_DEEP  # nested past what we measure: counted as over every limit
    memo = {} if _memo is None else _memo
    known = memo.get(id(value))
    if known is not None:
        return known
    items: Iterable[Any] = (
        (x for pair in value.items() for x in pair) if isinstance(value, dict) else value
    )
    total = sum(max(1, size_of(item, memo, _depth + 1)) for item in items)
    memo[id(value)] = total
    return total


def _digits(number: int) -> float:
    return abs(number).bit_length() * math.log10(2) + 1


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 30 else f"{text[:12]}…({len(text)} characters)"


def too_long(what: str, size: float, limits: Limits) -> LimitError:
    return LimitError(
        f"{what} would build {size:,.0f} characters or items; the limit is {limits.max_length:,}"
    )


#: The operators the sandbox intercepts: the ones that can build something big.
INTERCEPTED_BINOPS = frozenset({"*", "**", "%", "+"})
#: What ``*`` repeats and ``+`` joins.
SEQUENCES = (str, bytes, list, tuple)


def bounded_binop(operator: str, left: Any, right: Any, limits: Limits) -> None:
    """Refuse ``left <operator> right`` if its result would pass ``limits``."""
    ints = isinstance(left, int) and isinstance(right, int)
    if operator == "**" and ints and right > 0 and abs(left) > 1:
        digits = right * math.log10(abs(left))
        if digits > limits.max_digits:
            raise LimitError(
                f"{_short(left)} ** {_short(right)} would be a number of {digits:,.0f} "
                f"digits; the limit is {limits.max_digits:,}"
            )
    elif operator == "*" and ints:
        digits = _digits(left) + _digits(right)
        if digits > limits.max_digits + 1:
            raise LimitError(
                f"'*' would build a number of {digits:,.0f} digits; the limit is "
                f"{limits.max_digits:,}"
            )
    elif operator == "*":
        for sequence, times in ((left, right), (right, left)):
            if not isinstance(sequence, SEQUENCES) or not isinstance(times, int) or times <= 0:
                continue
            if size_of(sequence) * times > limits.max_length:
                raise too_long(f"{_short(sequence)} * {times}", size_of(sequence) * times, limits)
    elif operator == "+" and isinstance(left, SEQUENCES) and isinstance(right, SEQUENCES):
        total = size_of(left) + size_of(right)
        if total > limits.max_length:
            raise too_long("'+'", total, limits)
    elif operator == "%" and isinstance(left, str):
        check_printf(left, limits)


_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def check_printf(template: str, limits: Limits) -> None:
    """Refuse ``%``-formatting whose width or precision could pass ``limits``."""
    for match in _PRINTF.finditer(template):
        for number in match.groups():
            if number == "*":
                raise LimitError("'%*d' takes its width from the data; write the width")
            if number and int(number) > limits.max_length:
                raise too_long(f"'%{number}'", int(number), limits)


def check_format_spec(template: str, limits: Limits) -> None:
    """Refuse ``str.format`` fields whose width or precision could pass ``limits``."""
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError:
        return  # str.format itself reports the mistake
    for _, _, spec, _ in fields:
        if not spec:
            continue
        if "{" in spec:
            raise LimitError("a format width taken from the data; write the width")
        for number in re.findall(r"\d+", spec):
            if int(number) > limits.max_length:
                raise too_long(f"'{{:{spec}}}'", int(number), limits)


def bounded_range(limits: Limits, *args: int) -> range:
    numbers = range(*args)
    try:
        count = len(numbers)
    except OverflowError:
        count = limits.max_range + 1
    if count > limits.max_range:
        raise LimitError(
            f"range() of {count:,} numbers; the limit is {limits.max_range:,}"
            if count <= 10**12
            else f"range() of more than {limits.max_range:,} numbers"
        )
    return numbers
