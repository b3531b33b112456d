"""The checkout trigger in the scenario language: ``on: checkout.abandoned`` with
``steps``, refused with file:line:column where it is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from .sample_config import problems, write_config

X = "scenarios/x.yaml"
TRIGGER = 'trigger: {idle: 30m, when: "cart.value > 0"}'


def test_a_checkout_trigger_with_steps_loads(tmp_path: Path) -> None:
    edit = (TRIGGER, "trigger: {on: checkout.abandoned, idle: 20m, steps: [payment]}")
    assert [p for p in problems(write_config(tmp_path, {X: edit})) if p.severity == "error"] == []


@pytest.mark.parametrize(
    ("trigger", "column", "words"),
    [
        ("trigger: {on: cart.abandonned, idle: 30m}", 15, ["cart.abandoned", "checkout.abandoned"]),
        ("trigger: {on: cart.abandoned, idle: 30m, steps: [payment]}", 49, ["steps only go with"]),
        ("trigger: {idle: 30m, steps: [payment]}", 29, ["steps only go with"]),
    ],
    ids=["unknown-on-lists-valid", "steps-with-cart-trigger", "steps-without-on"],
)
def test_trigger_mistakes_are_refused_at_their_position(
    tmp_path: Path, trigger: str, column: int, words: list[str]
) -> None:
    found = [p for p in problems(write_config(tmp_path, {X: (TRIGGER, trigger)}))]
    errors = [p for p in found if p.severity == "error"]
    assert len(errors) == 1, found
    error = errors[0]
    assert (error.file, error.line) == (X, 3)
    assert error.column == column, error
    for word in words:
        assert word in error.message
