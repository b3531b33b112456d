"""Two devices, one person, one journey — on PostgreSQL, through the engine's own ingest,
apply and timer path (the methods the actors call), on a simulated clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cartflow.engine.clock import SimulatedClock
from cartflow.engine.configs import ConfigHolder
from cartflow.engine.events import Event
from cartflow.engine.outcomes import Reason
from cartflow.engine.scenario.loader import load_config
from cartflow.engine.service import Engine
from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Cart, Database, Decision, Delivery, Journey, Profile
from cartflow.providers.recording import RecordingProvider
from cartflow.providers.registry import ChannelRouter, validators

ROOT = Path(__file__).resolve().parents[2]
#: 10:00 in Moscow: every channel may send at once.
T0 = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
ITEMS = [{"sku": "X", "price": 100}, {"sku": "Y", "price": 200}]


def _event(type_: str, minute: int, anonymous: str, **fields: Any) -> Event:
    body = {"id": f"evt_{type_}_{anonymous}", "type": type_, "at": (T0 + minute * MINUTE)}
    body |= {"anonymous_id": anonymous, **fields}
    return Event.model_validate(body)


@pytest.fixture
def database(pg_url: str) -> Iterator[Database]:
    db = Database(pg_url)
    db.migrate()
    yield db
    db.dispose()


@pytest.mark.postgres
def test_two_devices_and_identify_give_one_journey_on_postgres(database: Database) -> None:
    clock = SimulatedClock(T0)
    recorder = RecordingProvider()
    config = load_config(ROOT / "scenarios.yaml", provider_types=validators())
    router = ChannelRouter({"push": recorder, "sms": recorder, "email": recorder})
    sim = Simulation(Engine(database, clock, ConfigHolder(config), router), clock)

    # Given X and Y carted on device A (a1) and on device B (b1), anonymously
    contact = {"email": "anna@example.com", "timezone": "Europe/Moscow", "locale": "ru"}
    consent = {"email": True, "push": True, "sms": True}
    sim.feed(
        [
            _event(
                "cart.updated", 0, "a1", cart={"id": "cart_a", "currency": "RUB", "items": ITEMS}
            ),
            _event(
                "cart.updated", 1, "b1", cart={"id": "cart_b", "currency": "RUB", "items": ITEMS}
            ),
        ]
    )
    # When both identify as cust_1 and the idle timers fire, for three days
    sim.feed(
        [
            _event(
                "customer.identified",
                2,
                "a1",
                customer_id="cust_1",
                contact=contact,
                consent=consent,
            ),
            _event(
                "customer.identified",
                3,
                "b1",
                customer_id="cust_1",
                contact={"push_token": "tok-b"},
                consent=consent,
            ),
        ]
    )
    sim.run_until(T0 + timedelta(days=3))

    # Then one live profile holds both carts, one journey ran, one reminder per step
    with database.sessions() as session:
        live = session.scalars(select(Profile.id).where(Profile.merged_into.is_(None))).all()
        owners = set(session.scalars(select(Cart.profile_id)))
        (journey,) = session.scalars(select(Journey)).all()
        sent = session.scalars(select(Delivery)).all()
        skipped = session.scalars(select(Decision).where(Decision.decision == "skipped")).all()
    assert len(live) == 1 and owners == set(live)
    # (both carts fall idle at the same moment, her last activity: whichever timer fires
    # first starts the journey, the other cart joins it)
    other = ({"cart_a", "cart_b"} - {journey.cart_id}).pop()
    steps = [d.step_id for d in sent]
    assert steps and len(steps) == len(set(steps))
    assert len(recorder.sent) == len(sent)
    # ... and the second cart says why it did not start one
    joined = [d for d in skipped if d.reason.startswith(Reason.SAME_INTENT)]
    assert joined and {d.cart_id for d in joined} == {other}
    assert {d.journey_id for d in joined} == {journey.id}
