"""Sandboxed condition expressions (engine/conditions.py): checked when the configuration
loads, evaluated at send time without side effects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from jinja2.exceptions import SecurityError, UndefinedError

from cartflow.engine.conditions import ConditionError, compile_condition
from cartflow.engine.context_schema import number, record

CONTEXT: dict[str, Any] = {
    "cart": {"value": 1500.0, "item_count": 2, "items": [{"sku": "A"}], "currency": "RUB"},
    "visitor": {"sessions": 3, "is_known": True},
    "customer": {"orders_30d": 0, "orders_total": 5},
    "segments": {"vip", "hesitant"},
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("cart.value >= 1000", True),
        ("cart.value >= 2000", False),
        ("visitor.sessions >= 2 and cart.item_count > 1", True),
        ("'vip' in segments", True),
        ("'returning' in segments", False),
        ("customer.orders_30d > 0", False),
        ("cart.currency == 'RUB'", True),
        ("cart['items'] | length == 1", True),
        ("visitor.sessions is odd", True),
        ("visitor.nothing_here", False),  # open: a feature not sent is undefined → False
    ],
)
def test_conditions_evaluate_against_the_context(source: str, expected: bool) -> None:
    assert compile_condition(source).evaluate(CONTEXT) is expected


def test_compiled_condition_knows_its_names() -> None:
    condition = compile_condition("cart.value > 0 and 'vip' in segments")
    assert condition.names == {"cart", "segments"}
    assert condition.source == "cart.value > 0 and 'vip' in segments"


@pytest.mark.parametrize(
    ("source", "message", "column"),
    [
        ("crat.value > 1", "unknown name 'crat' in condition — did you mean 'cart'?", 1),
        ("cart.value > 0 and foo", "unknown name 'foo'", 20),
        ("cart.value | nosuch", "unknown filter 'nosuch'", 14),
        ("cart.value is nosuchtest", "unknown test 'nosuchtest'", 15),
        ("cart.value | lenght > 1", "did you mean 'length'?", 14),
    ],
)
def test_unknown_names_filters_and_tests_fail_at_load_with_a_column(
    source: str, message: str, column: int
) -> None:
    with pytest.raises(ConditionError, match=message) as caught:
        compile_condition(source)
    assert caught.value.column == column


@pytest.mark.parametrize("source", ["", "   "])
def test_empty_condition_is_refused_with_an_example(source: str) -> None:
    with pytest.raises(ConditionError, match="empty condition; write an expression"):
        compile_condition(source)


def test_syntax_error_is_refused() -> None:
    with pytest.raises(ConditionError, match="does not parse"):
        compile_condition("cart.value >")


def test_unknown_names_are_checked_against_the_allowed_table() -> None:
    allowed = {"order": record("the order", total=number("what it cost"))}
    assert compile_condition("order.total > 1", allowed=allowed).names == {"order"}
    with pytest.raises(ConditionError, match="unknown name 'cart'"):
        compile_condition("cart.value > 1", allowed=allowed)


def test_conditions_cannot_mutate_the_context() -> None:
    # a declared list has no 'append' (refused at load) ...
    with pytest.raises(ConditionError, match=r"unknown attribute 'append' of 'cart\.items'"):
        compile_condition("cart['items'].append(2)")
    # ... and the sandbox refuses it where the schema cannot tell (a shop's own feature)
    context = {"visitor": {"sessions": 1, "items": [1]}}
    with pytest.raises((SecurityError, UndefinedError)):
        compile_condition("visitor['items'].append(2)").evaluate(context)
    assert context == {"visitor": {"sessions": 1, "items": [1]}}


def test_conditions_cannot_reach_python_internals() -> None:
    with pytest.raises(ConditionError, match="'__class__' is internal"):
        compile_condition("cart.value.__class__.__mro__")


def test_comparing_an_undefined_value_raises_for_the_caller_to_fail_closed() -> None:
    # engine.condition_failures.evaluate turns this into a recorded failure (fail closed)
    with pytest.raises(UndefinedError):
        compile_condition("visitor.nothing_here > 5").evaluate(CONTEXT)


def test_conditions_cannot_read_the_machine_clock() -> None:
    # the engine's time comes only from its Clock: 'now.now()' is refused at load time ...
    with pytest.raises(ConditionError, match="reads the machine's clock") as refused:
        compile_condition("now.now().year == 2026")
    assert refused.value.column == 4
    # ... and at run time, should a template try it
    from cartflow.engine.sandbox import Sandbox

    template = Sandbox().from_string("{{ now.now() }}")
    with pytest.raises(SecurityError):
        template.render(now=datetime(1999, 1, 1, tzinfo=UTC))
