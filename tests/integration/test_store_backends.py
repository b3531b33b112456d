"""The store behaves the same on SQLite (embedded) and PostgreSQL (production): migrations,
aware UTC datetimes, JSON columns, and the one-active-journey-per-cart partial index.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError, InternalError, OperationalError, StatementError

from cartflow.engine.deliveries import delivery_key
from cartflow.engine.features import read_features
from cartflow.engine.store.database import Database
from cartflow.engine.store.models import (
    Cart,
    Delivery,
    Identity,
    Journey,
    Profile,
    ProfileFeatures,
    RawEvent,
)
from cartflow.engine.store.models import Session as VisitSession

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]
MSK = timezone(timedelta(hours=3))
T = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=MSK)
#: A write refused by a read-only handle: SQLite says "readonly database" (OperationalError),
#: PostgreSQL "read-only transaction" (InternalError).
READ_ONLY_REFUSALS = (OperationalError, InternalError)


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    database = Database(url)
    try:
        database.migrate()
        yield database
    finally:
        database.dispose()


def _profile(profile_id: str = "p1") -> Profile:
    return Profile(id=profile_id, created_at=T, updated_at=T, last_seen_at=None, attributes={})


def _cart(cart_id: str = "cart_1", profile_id: str = "p1") -> Cart:
    return Cart(
        id=cart_id,
        profile_id=profile_id,
        status="abandoned",
        currency="RUB",
        url=None,
        items=[{"sku": "SKU-1", "name": "Кроссовки", "price": "4990.50", "quantity": 2}],
        value=Decimal("9981.0000"),
        item_count=2,
        created_at=T,
        snapshot_at=T,
        last_activity_at=T,
    )


def _journey(journey_id: str, status: str, cart_id: str = "cart_1") -> Journey:
    return Journey(
        id=journey_id,
        profile_id="p1",
        cart_id=cart_id,
        scenario="abandoned_cart",
        scenario_version="v1",
        status=status,
        step_index=0,
        anchor_at=T,
        started_at=T,
        group="treatment",
        state={},
    )


def test_migrations_create_every_table_and_are_idempotent(db: Database) -> None:
    # When migrating a second time
    db.migrate()
    # Then the schema is complete, with the partial unique index in place
    tables = set(inspect(db.engine).get_table_names())
    assert {
        "profiles",
        "identities",
        "contacts",
        "consents",
        "sessions",
        "carts",
        "journeys",
        "timers",
        "events",
        "deliveries",
        "decisions",
        "discount_tokens",
        "alembic_version",
    } <= tables
    indexes = {ix["name"]: ix for ix in inspect(db.engine).get_indexes("journeys")}
    assert indexes["uq_journeys_one_active_per_cart"]["unique"]


def test_datetimes_come_back_aware_and_in_utc(db: Database) -> None:
    # Given a profile written with Moscow-time datetimes (microseconds included)
    with db.transaction() as session:
        session.add(_profile())
    # When read back in a new session
    with db.sessions() as session:
        profile = session.get(Profile, "p1")
        assert profile is not None
        # Then they are the same instants, aware, in UTC
        assert profile.created_at == T
        assert profile.created_at.tzinfo is not None
        assert profile.created_at.utcoffset() == timedelta(0)
        assert profile.created_at.isoformat() == "2026-11-22T07:00:00.123456+00:00"
        assert profile.last_seen_at is None
        # and comparisons in SQL use the instant, whatever zone the parameter is in
        found = session.scalar(select(Profile.id).where(Profile.created_at == T.astimezone(UTC)))
        assert found == "p1"
        later = session.scalar(
            select(Profile.id).where(Profile.created_at > datetime(2026, 11, 22, 6, 59, tzinfo=UTC))
        )
        assert later == "p1"


def test_a_naive_datetime_is_refused(db: Database) -> None:
    with pytest.raises(StatementError, match="naive datetime"), db.transaction() as session:
        session.add(
            Profile(
                id="p_naive", created_at=datetime(2026, 11, 22, 10, 0), updated_at=T, attributes={}
            )
        )
        session.flush()


PAYLOADS: list[Any] = [
    {"nested": {"list": [1, 2.5, None, True, "x"]}, "unicode": "Кроссовки ✓ 👟", "empty": {}},
    {"big": 12345678901234567890, "neg": -1, "float": 0.1, "quote": 'a"b\\c'},
]


@pytest.mark.parametrize("payload", PAYLOADS, ids=["nested-unicode", "numbers-escapes"])
def test_json_columns_round_trip(db: Database, payload: dict[str, Any]) -> None:
    # Given JSON written to a JSON column (JSONB on PostgreSQL) and a list column
    with db.transaction() as session:
        session.add(
            RawEvent(
                id="evt_1",
                type="cart.updated",
                at=T,
                received_at=T,
                applied_at=None,
                payload=payload,
            )
        )
        session.add(_profile())
        session.flush()  # no ORM relationships: the unit of work does not order by foreign key
        session.add(_cart())
    # When read back
    with db.sessions() as session:
        raw = session.get(RawEvent, "evt_1")
        cart = session.get(Cart, "cart_1")
        assert raw is not None and cart is not None
        # Then it is equal, types included
        assert raw.payload == payload
        assert cart.items == [
            {"sku": "SKU-1", "name": "Кроссовки", "price": "4990.50", "quantity": 2}
        ]
        assert cart.value == Decimal("9981.0000")
    # and an in-place change reassigned as a new dict is persisted
    with db.transaction() as session:
        raw = session.get(RawEvent, "evt_1")
        assert raw is not None
        raw.payload = {**raw.payload, "added": [1]}
    with db.sessions() as session:
        raw = session.get(RawEvent, "evt_1")
        assert raw is not None and raw.payload["added"] == [1]


def test_one_active_journey_per_cart(db: Database) -> None:
    # Given a cart with one active and two finished journeys
    with db.transaction() as session:
        session.add(_profile())
        session.flush()
        session.add_all([_cart(), _cart("cart_2")])
    with db.transaction() as session:
        session.add_all(
            [
                _journey("j_active", "active"),
                _journey("j_done", "completed"),
                _journey("j_exited", "exited"),
            ]
        )
    # When a second active journey is added for the same cart
    with pytest.raises(IntegrityError), db.transaction() as session:
        session.add(_journey("j_second", "active"))
    # Then it is refused, while an active journey on another cart is fine
    with db.transaction() as session:
        session.add(_journey("j_other_cart", "active", cart_id="cart_2"))
    # and once the first journey ends, the cart may start another
    with db.transaction() as session:
        journey = session.get(Journey, "j_active")
        assert journey is not None
        journey.status = "exited"
    with db.transaction() as session:
        session.add(_journey("j_again", "active"))
    with db.sessions() as session:
        active = session.scalars(
            select(Journey.id).where(Journey.status == "active").order_by(Journey.id)
        ).all()
    assert active == ["j_again", "j_other_cart"]


def test_a_read_only_handle_reads_and_never_writes(db: Database) -> None:
    # Given a migrated database with one profile
    with db.transaction() as session:
        session.add(_profile())
    # When it is opened read-only, as `cartflow status` and `report` open it
    reader = Database(db.url, read_only=True)
    try:
        # Then the schema is there and rows can be read
        assert reader.missing_tables() == []
        with reader.reading() as session:
            assert session.scalars(select(Profile.id)).all() == ["p1"]
        # but nothing can be written
        with pytest.raises(READ_ONLY_REFUSALS), reader.transaction() as session:
            session.add(_profile("p2"))
    finally:
        reader.dispose()
    with db.sessions() as session:
        assert session.scalars(select(Profile.id)).all() == ["p1"]


def _delivery(delivery_id: str, status: str, attempt: int = 1) -> Delivery:
    return Delivery(
        id=delivery_id,
        idempotency_key=delivery_key("j1", "sms", attempt),
        journey_id="j1",
        profile_id="p1",
        cart_id="cart_1",
        scenario="abandoned_cart",
        step_id="sms",
        channel="sms",
        provider="twilio",
        status=status,
        rendered={},
        created_at=T,
        updated_at=T,
    )


@pytest.mark.parametrize("first", ["pending", "sending", "accepted", "unknown", "delivered"])
def test_a_second_live_delivery_for_a_step_is_refused_by_the_database(
    db: Database, first: str
) -> None:
    # Given a journey step with a delivery that is not failed
    with db.transaction() as session:
        session.add(_profile())
        session.flush()
        session.add(_cart())
        session.flush()
        session.add(_journey("j1", "active"))
        session.flush()
        session.add(_delivery("d1", first))
    # When a second one is written for the same step (a failover to email, say)
    # Then the database refuses: never both
    with pytest.raises(IntegrityError), db.transaction() as session:
        session.add(_delivery("d2", "pending", attempt=2))


@pytest.mark.parametrize("first", ["failed", "cancelled"])
def test_after_a_failed_delivery_the_step_may_fall_over(db: Database, first: str) -> None:
    with db.transaction() as session:
        session.add(_profile())
        session.flush()
        session.add(_cart())
        session.flush()
        session.add(_journey("j1", "active"))
        session.flush()
        session.add(_delivery("d1", first))
    with db.transaction() as session:
        session.add(_delivery("d2", "pending", attempt=2))
    with db.sessions() as session:
        keys = sorted(session.scalars(select(Delivery.idempotency_key)))
    assert keys == ["j1:sms", "j1:sms:2"]
    # and the new one is the step's only live delivery
    with pytest.raises(IntegrityError), db.transaction() as session:
        session.add(_delivery("d3", "pending", attempt=3))


@pytest.mark.parametrize("backend", BACKENDS)
def test_migration_0015_fills_the_features_an_upgrade_has_none_of(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'old.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    db = Database(url)
    try:
        # Given an install at 0014: two visits (the first one's events purged), a paid
        # cart whose order event was purged, one retained page view
        db.migrate("0014")
        with db.transaction() as session:
            session.add(_profile())
            session.flush()
            session.add(Identity(kind="customer_id", value="cust_1", profile_id="p1", created_at=T))
            for sid, at in (("s1", T), ("s2", T + timedelta(days=1))):
                session.add(VisitSession(id=sid, profile_id="p1", started_at=at, last_seen_at=at))
            paid = _cart()
            paid.status, paid.order_id, paid.ordered_at = "ordered", "o1", T + timedelta(hours=1)
            session.add(paid)
            viewed = T + timedelta(days=1)
            session.add(
                RawEvent(
                    id="e1",
                    type="page.viewed",
                    at=viewed,
                    received_at=viewed,
                    applied_at=viewed,
                    payload={
                        "id": "e1",
                        "type": "page.viewed",
                        "at": viewed.isoformat(),
                        "customer_id": "cust_1",
                        "session_id": "s2",
                    },
                )
            )
        # When it is upgraded
        db.migrate()
        # Then the kept features hold those visits and that order
        with db.sessions() as session:
            assert session.get(ProfileFeatures, "p1") is not None
            features = read_features(session, "p1", T + timedelta(days=2), None)
        assert (features["sessions"], features["sessions_7d"]) == (2, 2)
        assert (features["page_views_session"], features["page_views_7d"]) == (1, 1)
        assert (features["orders_total"], features["lifetime_value"]) == (1, 9981.0)
    finally:
        db.dispose()
