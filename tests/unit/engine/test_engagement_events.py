"""Push opens and clicks the shop's site or app reports as native events
(``message.opened`` / ``message.clicked`` naming the delivery): the delivery gets the
event once, and escalation ``unless: opened|clicked`` sees it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from cartflow.engine.clock import SimulatedClock
from cartflow.engine.configs import ConfigHolder
from cartflow.engine.errors import EventError
from cartflow.engine.events import parse_events
from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Database
from cartflow.engine.store.models import DeliveryEventRow

from ..factories import (
    T0,
    ClockedRecorder,
    build_engine,
    cart_updated,
    decisions,
    event,
    write_config,
)

MINUTE = timedelta(minutes=1)
TEMPLATES = {
    "t/push.ru.j2": "{% block title %}Корзина{% endblock %}{% block body %}ждёт{% endblock %}",
    "t/sms.ru.j2": "{% block text %}Корзина ждёт{% endblock %}",
}


def scenario(unless: str) -> str:
    return f"""\
scenario: escalates
trigger: {{on: cart.abandoned, idle: 30m}}
steps:
  - {{id: push, after: 30m, channel: push, template: t/push}}
  - {{id: sms, after_previous: 30m, channel: sms, window: "00:00-23:59",
     escalate: {{unless: {unless}, within: 30m}}, template: t/sms}}
"""


def shop(
    unless: str, tmp_path: Path, db: Database, clock: SimulatedClock, recorder: ClockedRecorder
) -> Simulation:
    config = write_config(tmp_path / "config", scenario(unless), templates=TEMPLATES)
    sim = Simulation(build_engine(db, clock, ConfigHolder(config), recorder), clock)
    sim.feed([cart_updated(T0)])
    sim.run_until(T0 + 31 * MINUTE)  # the push went out at T0 + 30 min
    return sim


def statuses(db: Database, delivery_id: str) -> list[str]:
    with db.reading() as session:
        query = select(DeliveryEventRow.status).where(DeliveryEventRow.delivery_id == delivery_id)
        return list(session.scalars(query))


@pytest.mark.parametrize(
    ("unless", "reported", "sms_sent"),
    [
        ("opened", "message.opened", False),
        ("clicked", "message.clicked", False),
        ("clicked", "message.opened", True),  # opened is not clicked
        ("opened", None, True),
    ],
)
def test_push_then_sms_only_when_the_app_reported_no_open(
    tmp_path: Path,
    db: Database,
    clock: SimulatedClock,
    recorder: ClockedRecorder,
    unless: str,
    reported: str | None,
    sms_sent: bool,
) -> None:
    # Given a push went out
    sim = shop(unless, tmp_path, db, clock, recorder)
    (push,) = recorder.sent

    # When the shop's app reports the shopper opened it (or nothing) 10 minutes later
    if reported is not None:
        at = T0 + 40 * MINUTE
        sim.feed([event(reported, at, delivery_id=push.delivery_id)])

    # Then the SMS goes only when no such report came
    sim.run_until(T0 + 4 * timedelta(hours=1))
    assert [m.channel for m in recorder.sent] == (["push", "sms"] if sms_sent else ["push"])
    if reported is not None:
        assert statuses(db, push.delivery_id).count(reported.split(".")[1]) == 1
    if not sms_sent:
        (skipped,) = [d for d in decisions(db, "skipped") if d.step_id == "sms"]
        assert skipped.reason == f"previous message was {unless}; no need to escalate"


def test_the_same_open_twice_is_one_and_another_shoppers_changes_nothing(
    tmp_path: Path, db: Database, clock: SimulatedClock, recorder: ClockedRecorder
) -> None:
    sim = shop("opened", tmp_path, db, clock, recorder)
    (push,) = recorder.sent
    at = T0 + 35 * MINUTE
    stranger = {"anonymous_id": "anon_9", "customer_id": "cust_9"}
    sim.feed([event("message.opened", at, delivery_id=push.delivery_id, **stranger)])
    sim.feed([event("message.opened", at, delivery_id="no-such-delivery")])
    assert statuses(db, push.delivery_id).count("opened") == 0

    sim.feed([event("message.opened", at, delivery_id=push.delivery_id)] * 2)
    sim.feed([event("message.opened", at + MINUTE, delivery_id=push.delivery_id)])
    assert statuses(db, push.delivery_id).count("opened") == 1


@pytest.mark.parametrize("kind", ["message.opened", "message.clicked"])
def test_an_engagement_event_without_its_delivery_is_refused_with_the_field(kind: str) -> None:
    body = {"id": "e1", "type": kind, "customer_id": "c1"}
    with pytest.raises(EventError) as refused:
        parse_events(body)
    (problem,) = refused.value.errors
    assert "needs 'delivery_id'" in problem["msg"]
