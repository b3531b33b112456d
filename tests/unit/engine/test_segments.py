"""Built-in segments behave as docs/scenarios.md documents them, and scenarios.yaml can
override them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cartflow.engine.condition_failures import ConditionKind, evaluate
from cartflow.engine.conditions import compile_condition
from cartflow.engine.context_schema import SEGMENT_NAMES
from cartflow.engine.scenario.loader import Config
from cartflow.engine.segments import BUILTIN_SEGMENTS

DOCS = Path(__file__).resolve().parents[3] / "docs" / "scenarios.md"

BASE_VISITOR = {
    "sessions": 1,
    "sessions_7d": 1,
    "product_views_7d": 0,
    "product_views_session": 0,
    "checkout_reached": False,
    "cart_adds_7d": 0,
    "cart_removals_7d": 0,
    "cart_returns_7d": 0,
    "top_category_share": 0.0,
}
BASE_CUSTOMER = {"orders_total": 0, "lifetime_value": 0.0, "discount_share": 0.0}

# (segment, visitor/customer changes just in, just out)
CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "purposeful",
        {"cart_adds_7d": 1, "product_views_session": 3},
        {"cart_adds_7d": 1, "product_views_session": 4},
    ),
    ("purposeful", {"cart_adds_7d": 1}, {"cart_adds_7d": 0}),
    ("purposeful", {"cart_adds_7d": 2}, {"cart_adds_7d": 2, "cart_removals_7d": 1}),
    ("purposeful", {"cart_adds_7d": 1, "sessions_7d": 1}, {"cart_adds_7d": 1, "sessions_7d": 2}),
    ("explorer", {"product_views_7d": 10}, {"product_views_7d": 9}),
    (
        "explorer",
        {"product_views_7d": 12},
        {"product_views_7d": 12, "checkout_reached": True},
    ),
    ("hesitant", {"cart_returns_7d": 2}, {"cart_returns_7d": 1}),
    ("hesitant", {"cart_removals_7d": 2}, {"cart_removals_7d": 1}),
    (
        "hesitant",
        {"sessions_7d": 2, "product_views_7d": 3, "top_category_share": 0.6},
        {"sessions_7d": 2, "product_views_7d": 3, "top_category_share": 0.59},
    ),
    (
        "hesitant",
        {"sessions_7d": 2, "product_views_7d": 3, "top_category_share": 1.0},
        {"sessions_7d": 1, "product_views_7d": 3, "top_category_share": 1.0},
    ),
    ("first_time", {"sessions": 1}, {"sessions": 2}),
    ("first_time", {}, {"orders_total": 1}),
    ("returning", {"orders_total": 1}, {"orders_total": 0}),
    ("vip", {"orders_total": 5}, {"orders_total": 4}),
    ("vip", {"lifetime_value": 50000.0}, {"lifetime_value": 49999.0}),
    (
        "discount_hunter",
        {"orders_total": 2, "discount_share": 0.5},
        {"orders_total": 2, "discount_share": 0.49},
    ),
    (
        "discount_hunter",
        {"orders_total": 2, "discount_share": 1.0},
        {"orders_total": 1, "discount_share": 1.0},
    ),
]


def _holds(name: str, changes: dict[str, Any]) -> bool:
    visitor = {**BASE_VISITOR, **{k: v for k, v in changes.items() if k in BASE_VISITOR}}
    customer = {**BASE_CUSTOMER, **{k: v for k, v in changes.items() if k in BASE_CUSTOMER}}
    condition = compile_condition(BUILTIN_SEGMENTS[name], allowed=SEGMENT_NAMES)
    held = evaluate(
        condition,
        {"visitor": visitor, "customer": customer},
        kind=ConditionKind.SEGMENT,
        which=name,
        version="test",
    )
    assert isinstance(held, bool), held
    return held


@pytest.mark.parametrize(("name", "inside", "outside"), CASES)
def test_a_built_in_segment_holds_just_inside_and_not_just_outside(
    name: str, inside: dict[str, Any], outside: dict[str, Any]
) -> None:
    assert _holds(name, inside)
    assert not _holds(name, outside)


def test_every_built_in_segment_is_documented_with_its_condition() -> None:
    text = DOCS.read_text(encoding="utf-8")
    section = text[text.index("## Built-in segments") :]
    for name, condition in BUILTIN_SEGMENTS.items():
        assert f"`{name}`" in section and condition in section


def test_scenarios_yaml_overrides_a_built_in_segment_of_the_same_name(
    shipped_config: Config,
) -> None:
    # The shipped scenarios.yaml defines its own vip; the other built-ins are there as-is
    assert set(BUILTIN_SEGMENTS) <= set(shipped_config.settings.segments)
    assert shipped_config.settings.segments["vip"] != BUILTIN_SEGMENTS["vip"]
    assert "cart.value" in shipped_config.settings.segments["vip"]
    assert shipped_config.settings.segments["hesitant"] == BUILTIN_SEGMENTS["hesitant"]
