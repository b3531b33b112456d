"""Properties of the whole engine over random shopper behaviour (hypothesis).

One shopper in Moscow, three days of random cart updates, emptied carts, page views and
orders, against the shipped configuration. Whatever she does, the promises of architecture §5
hold: at most one message per journey step, nothing after she paid, nothing about an
empty cart, no push or SMS at night, at most one SMS a day, never a journey while she is
active.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from cartflow.engine.clock import SimulatedClock
from cartflow.engine.configs import ConfigHolder
from cartflow.engine.events import Event
from cartflow.engine.scenario.loader import Config
from cartflow.engine.simulation import Simulation

from ..factories import (
    ClockedRecorder,
    build_engine,
    cart_updated,
    deliveries,
    fresh_database,
    journeys,
    moscow,
    order_completed,
    page_viewed,
)

#: 03:00 in Moscow: the three days start in the middle of the night.
START = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
DAYS = 3
#: Step delays of the shipped abandoned_cart scenario.
STEP_AFTER = {
    "push": timedelta(minutes=30),
    "sms": timedelta(hours=3),
    "email": timedelta(hours=24),
}
IDLE = timedelta(minutes=30)
ACTIVITY = ("cart", "empty", "page")


@dataclass(frozen=True)
class Step:
    minute: int
    kind: str  # cart | empty | page | order

    @property
    def at(self) -> datetime:
        return START + timedelta(minutes=self.minute)


minutes = st.integers(min_value=0, max_value=DAYS * 24 * 60 - 1)
behaviour = st.tuples(
    st.builds(Step, minutes, st.just("cart")),
    st.lists(
        st.builds(
            Step, minutes, st.sampled_from(["cart", "cart", "empty", "page", "page", "order"])
        ),
        max_size=10,
    ),
)


def to_event(step: Step, sms_consent: bool) -> Event:
    if step.kind == "cart":
        return cart_updated(step.at, consent={"push": True, "sms": sms_consent, "email": True})
    if step.kind == "empty":
        return cart_updated(step.at, items=[], with_contact=False)
    if step.kind == "page":
        return page_viewed(step.at)
    return order_completed(step.at)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("properties")


@settings(max_examples=25, deadline=None)
@given(behaviour=behaviour, sms_consent=st.booleans())
def test_promises_hold_for_any_shopper_behaviour(
    behaviour: tuple[Step, list[Step]],
    sms_consent: bool,
    migrated_template: Path,
    shipped_config: Config,
    scratch: Path,
) -> None:
    # Given one shopper's random three days (sorted as the simulation will apply them)
    first, rest = behaviour
    steps = sorted([first, *rest], key=lambda s: s.minute)
    db = fresh_database(migrated_template, scratch)
    try:
        clock = SimulatedClock(START)
        recorder = ClockedRecorder(clock)
        sim = Simulation(build_engine(db, clock, ConfigHolder(shipped_config), recorder), clock)

        # When the engine sees them in time order, and two more quiet days pass
        sim.feed([to_event(step, sms_consent) for step in steps])
        sim.run_until(START + timedelta(days=DAYS + 2))
        sent = deliveries(db)
        started = journeys(db)
    finally:
        db.dispose()

    event(f"channels sent: {'+'.join(d.channel for d in sent) or 'none'}")
    event(f"journey ended: {started[0].exit_reason if started else 'no journey'}")

    # Then at most one delivery per journey step
    keys = [(d.journey_id, d.step_id) for d in sent]
    assert len(keys) == len(set(keys))
    # ... nothing after the order
    orders = [s.at for s in steps if s.kind == "order"]
    if orders:
        assert all(d.created_at <= min(orders) for d in sent), orders
    for delivery in sent:
        local = moscow(delivery.created_at).time()
        # ... no push or SMS in quiet hours (21:00-09:00 Moscow); SMS only 10:00-20:00
        if delivery.channel in ("push", "sms"):
            assert 9 <= local.hour < 21, (delivery.channel, local)
        if delivery.channel == "sms":
            assert 10 <= local.hour < 20, local
            assert sms_consent
        # ... nothing about an empty cart: the last snapshot before the send had items
        snapshots = [s for s in steps if s.kind in ("cart", "empty") and s.at < delivery.created_at]
        assert snapshots and snapshots[-1].kind == "cart", delivery.step_id
        # ... never earlier than the step's delay after the journey's anchor
        journey = next(j for j in started if j.id == delivery.journey_id)
        assert delivery.created_at >= journey.anchor_at + STEP_AFTER[delivery.step_id]
    # ... at most one SMS in any 24 hours
    sms_times = sorted(d.created_at for d in sent if d.channel == "sms")
    assert all(b - a >= timedelta(hours=24) for a, b in itertools.pairwise(sms_times))
    # ... a journey starts only after 30 quiet minutes
    for journey in started:
        recent = [
            s
            for s in steps
            if s.kind in ACTIVITY and journey.started_at - IDLE < s.at < journey.started_at
        ]
        assert recent == [], (journey.started_at, recent)
    # ... and every send reached the provider exactly once
    assert len(recorder.calls) == len(sent)
