"""Fail closed (engine/condition_failures.py): a condition that cannot be evaluated sends
nothing, excludes, and is on record — never a quiet "false"."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from cartflow.engine import condition_failures
from cartflow.engine.conditions import compile_condition
from cartflow.engine.store import Database

from ..factories import SETTINGS_YAML, T0, Run, decisions, journeys, shopper, write_config

DAY = timedelta(days=1)
TEMPLATES = {
    "test/multi.ru.j2": "{% block title %}Корзина{% endblock %}"
    "{% block body %}{{ cart.item_count }} шт.{% endblock %}"
    "{% block text %}{{ links.cart }}{% endblock %}{% block subject %}Корзина{% endblock %}\n"
}
#: A feature the shop never sent: reading it is an evaluation error (visitor is open).
MISSING = "visitor.vip_level > 2"
PUSH = "steps:\n  - {id: push, after: 30m, channel: push, template: test/multi}\n"

World = Callable[..., Run]


@pytest.fixture
def world(tmp_path: Path, db: Database) -> World:
    def make(scenario: str, segments: str = "") -> Run:
        settings = SETTINGS_YAML.format(templates=tmp_path / "templates") + segments
        return Run.start(write_config(tmp_path, scenario, settings, TEMPLATES), db)

    return make


def test_an_exclusion_that_cannot_be_evaluated_excludes(world: World) -> None:
    # Given an exclusion reading a feature the shop never sent
    run = world(f'scenario: s\naudience: {{exclude: "{MISSING}"}}\n{PUSH}')

    # When a cart is abandoned
    run.play([shopper(T0)], DAY)

    # Then the cart is excluded, nothing is sent, and the reason is on record
    assert journeys(run.db) == [] and run.recorder.calls == []
    assert [d.reason for d in decisions(run.db, "skipped")] == [
        f"not entered: excluded: exclude condition could not be evaluated ({MISSING}): "
        "UndefinedError: 'dict object' has no attribute 'vip_level'"
    ]


def test_a_trigger_that_cannot_be_evaluated_is_recorded_even_when_another_scenario_runs(
    world: World,
) -> None:
    # Given a high-priority scenario whose trigger divides by zero, and a fallback one
    run = world(
        "- scenario: high\n  priority: 5\n"
        '  trigger: {idle: 30m, when: "cart.value / (cart.item_count - 2) > 1"}\n'
        "  steps: [{id: push, after: 30m, channel: push, template: test/multi}]\n"
        "- scenario: low\n"
        "  steps: [{id: push, after: 30m, channel: push, template: test/multi}]\n"
    )

    # When the cart (2 items) is abandoned
    run.play([shopper(T0)], timedelta(hours=2))

    # Then the failure is on record for 'high', and 'low' runs
    failed = [(d.scenario, d.reason) for d in decisions(run.db, "skipped")]
    assert failed == [
        (
            "high",
            "not entered: trigger condition could not be evaluated "
            "(cart.value / (cart.item_count - 2) > 1): ZeroDivisionError: float division by zero",
        )
    ]
    assert [j.scenario for j in journeys(run.db)] == ["low"]


def test_a_segment_that_cannot_be_evaluated_is_not_matched_and_recorded(world: World) -> None:
    # Given a scenario for the 'vip' segment, which reads a feature never sent
    run = world(
        f"scenario: s\naudience: {{segments: [vip]}}\n{PUSH}", f'segments:\n  vip: "{MISSING}"\n'
    )

    # When a cart is abandoned
    run.play([shopper(T0)], DAY)

    # Then the shopper is not in the segment (no journey), and both are on record
    assert journeys(run.db) == [] and run.recorder.calls == []
    reasons = [d.reason for d in decisions(run.db, "skipped")]
    assert reasons[0] == (
        f"segment 'vip' counted as not matching: segment condition could not be evaluated "
        f"({MISSING}): UndefinedError: 'dict object' has no attribute 'vip_level'"
    )
    assert reasons[1] == "not entered: not in audience segments ['vip']"


def test_nothing_is_sent_on_a_step_condition_that_cannot_be_evaluated(world: World) -> None:
    # Given a push whose condition reads a feature never sent
    run = world(
        "scenario: s\nsteps:\n"
        f'  - {{id: push, after: 30m, channel: push, when: "{MISSING}", template: test/multi}}\n'
    )

    # When the cart is abandoned and the step comes due
    with capture_logs() as logs:
        run.play([shopper(T0)], DAY)

    # Then nothing goes out, the skip says why, and the failure is logged once
    assert run.recorder.calls == []
    assert [(d.step_id, d.reason) for d in decisions(run.db, "skipped")] == [
        (
            "push",
            f"step condition could not be evaluated ({MISSING}): "
            "UndefinedError: 'dict object' has no attribute 'vip_level'",
        )
    ]
    failed = [e for e in logs if e["event"] == "condition_failed"]
    assert [(e["scenario"], e["condition"], e["reason"], e["log_level"]) for e in failed] == [
        ("s", "push", "UndefinedError", "warning")
    ]


def test_failures_are_logged_once_per_version_and_counted_every_time() -> None:
    condition = compile_condition(MISSING)
    context = {"visitor": {"sessions": 1}}
    before = condition_failures.FAILURES[("once", "trigger")]
    with capture_logs() as logs:
        for version in ("v1", "v1", "v1", "v2"):
            failed = condition_failures.evaluate(
                condition,
                context,
                kind=condition_failures.ConditionKind.TRIGGER,
                version=version,
                scenario="once",
            )
            assert isinstance(failed, condition_failures.Failed)
    assert [e["config_version"] for e in logs if e["event"] == "condition_failed"] == ["v1", "v2"]
    assert condition_failures.FAILURES[("once", "trigger")] == before + 4
