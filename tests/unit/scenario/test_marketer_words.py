"""What the docs promise is what the loader accepts, in the marketer's words; a scenario
may declare its own locales."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from cartflow.engine.scenario.loader import ConfigError
from cartflow.engine.store import Database

from ..factories import T0, Run, cart_updated, deliveries, write_config

SCENARIO = """\
scenario: test
trigger: {{on: cart.abandoned, idle: 30m}}
{extra}steps:
  - id: push
    after: 30m
    channel: push
    template: abandoned_cart/push
    discount: {{percent: {percent}}}
"""


@pytest.mark.parametrize(("written", "value"), [("7", "7"), ('"7%"', "7"), ("'7.5 %'", "7.5")])
def test_a_discount_percent_may_be_written_as_the_docs_say(
    tmp_path: Path, written: str, value: str
) -> None:
    config = write_config(tmp_path, SCENARIO.format(extra="", percent=written))
    discount = config.scenarios[0].model.steps[0].discount
    assert discount is not None and str(discount.percent) == value


@pytest.mark.parametrize("written", ["0", "150", '"abc"', '"-5%"', "true", '"nan"'])
def test_a_wrong_discount_percent_says_what_is_allowed(tmp_path: Path, written: str) -> None:
    with pytest.raises(ConfigError) as caught:
        write_config(tmp_path, SCENARIO.format(extra="", percent=written))
    (problem,) = [p for p in caught.value.problems if "discount" in p.message]
    assert "discount percent must be more than 0 and at most 100" in problem.message
    assert 'e.g. 7 or "7%"' in problem.message
    assert "Input should" not in problem.message
    assert problem.file.endswith("test.yaml") and problem.line == 8


def test_a_scenario_with_its_own_locales_speaks_them_to_everyone(
    tmp_path: Path, db: Database
) -> None:
    # Given a Ukrainian-only campaign and a shopper whose locale is Russian
    config = write_config(tmp_path, SCENARIO.format(extra="locales: [uk]\n", percent=5))
    run = Run.start(config, db)
    # When her cart is abandoned
    run.play([cart_updated(T0)], until=timedelta(hours=1))
    # Then the push is in the scenario's default locale, Ukrainian
    (push,) = deliveries(db)
    assert "дещо забули" in push.rendered["title"]


PLAIN = """\
scenario: test
trigger: {{on: cart.abandoned, idle: 30m}}
{extra}
steps:
  - {{id: push, after: 30m, channel: push, template: abandoned_cart/push}}
"""


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("priority: high", "priority: must be a whole number, e.g. 3; got 'high'"),
        ("enabled: perhaps", "enabled: must be true or false; got 'perhaps'"),
        ("steps_extra: 1", "unknown key 'steps_extra'"),
        ("audience: [vip]", "audience: must be a mapping of keys to values"),
    ],
)
def test_pydantic_wording_is_translated(tmp_path: Path, extra: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        write_config(tmp_path, PLAIN.format(extra=extra))
    messages = [p.message for p in caught.value.problems]
    assert any(expected in m for m in messages), messages
    assert not any("Input should" in m for m in messages), messages


def test_a_broken_step_does_not_also_say_steps_is_empty(tmp_path: Path) -> None:
    broken = PLAIN.format(extra="").replace("after: 30m", "after: soon")
    with pytest.raises(ConfigError) as caught:
        write_config(tmp_path, broken)
    messages = [p.message for p in caught.value.problems]
    assert len(messages) == 1 and "cannot read duration 'soon'" in messages[0], messages


UK_ONLY = """\
scenario: test
trigger: {{on: cart.abandoned, idle: 30m}}
{extra}steps:
  - {{id: push, after: 30m, channel: push, template: promo/push}}
"""
UK_PUSH = {
    "promo/push.uk.j2": "{% block title %}Знижка{% endblock %}{% block body %}Кошик{% endblock %}"
}


def test_a_ukrainian_only_campaign_needs_only_ukrainian_templates(tmp_path: Path) -> None:
    config = write_config(tmp_path, UK_ONLY.format(extra="locales: [uk]\n"), templates=UK_PUSH)
    assert config.scenarios[0].model.locales == ("uk",)


def test_without_its_own_locales_the_default_locale_is_required(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        write_config(tmp_path, UK_ONLY.format(extra=""), templates=UK_PUSH)
    assert any(
        "missing template" in p.message and "push.ru.j2" in p.message for p in caught.value.problems
    )
