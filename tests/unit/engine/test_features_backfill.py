"""The kept features rebuilt from what the database holds (an install upgraded from before
``profile_features``) equal what the live path kept; visits and orders whose events were
purged still count; migration 0015 fills them."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest.mock import patch

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session
from structlog.testing import capture_logs

from cartflow.engine import features_backfill
from cartflow.engine.events import Event
from cartflow.engine.features import read_features
from cartflow.engine.features_backfill import backfill
from cartflow.engine.state import apply_event
from cartflow.engine.store import Database, Profile
from cartflow.engine.store.models import Cart, Identity, ProfileFeatures, RawEvent
from cartflow.engine.store.models import Session as VisitSession

from ..factories import CONTACT, T0, event, fresh_database
from .test_features import _native, streams

IDLE = timedelta(hours=1)


def _store(session: Session, ev: Event, n: int) -> None:
    """The event as the ingest keeps it, applied ``n``-th."""
    assert ev.at is not None
    applied = T0 + timedelta(days=30, seconds=n)
    session.add(
        RawEvent(
            id=ev.id,
            type=ev.type,
            at=ev.at,
            received_at=applied,
            applied_at=applied,
            payload=ev.model_dump(mode="json", exclude_none=True),
        )
    )


def _apply_live(db: Database, events: list[Event]) -> None:
    for n, ev in enumerate(events):
        assert ev.at is not None
        with db.sessions() as session, session.begin():
            _store(session, ev, n)
            apply_event(session, ev, now=ev.at, idle=IDLE)


def _upgraded_copy(live: Database, directory: Path) -> Database:
    """The same rows in another file, without any kept features (an upgraded install)."""
    path = directory / f"upgraded-{id(live)}.db"
    source = sqlite3.connect(live.url.removeprefix("sqlite:///"))
    with sqlite3.connect(path) as target:
        source.backup(target)
    source.close()
    copy = Database(f"sqlite:///{path}")
    with copy.sessions() as session, session.begin():
        session.execute(text("DELETE FROM profile_features"))
    return copy


def _features(db: Database, now: datetime) -> dict[str, dict[str, Any]]:
    with db.sessions() as session:
        return {
            p.id: read_features(session, p.id, now, p.last_seen_at)
            for p in session.scalars(select(Profile))
        }


def _rebuild(db: Database, now: datetime, **options: Any) -> int:
    with db.sessions() as session, session.begin():
        return backfill(session, now, **options)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=streams(), later=st.integers(0, 40 * 24))
def test_a_rebuild_from_the_retained_history_equals_what_the_live_path_kept(
    migrated_template: Path, tmp_path: Path, rows: list[dict[str, Any]], later: int
) -> None:
    # Given a random stream for one or two shoppers (merges included) applied live, each
    # event stored as the ingest stores it
    now = max(r["at"] for r in rows) + timedelta(hours=later)
    identified = [
        event("customer.identified", now, anonymous_id=f"anon_{w}", customer_id=f"cust_{w}")
        for w in sorted({r["who"] for r in rows})
    ]
    live = fresh_database(migrated_template, tmp_path)
    _apply_live(live, [_native(r) for r in rows] + identified)
    # and the same rows in an install that never kept features
    upgraded = _upgraded_copy(live, tmp_path)
    try:
        # When the features are rebuilt there, one profile per batch (every event is read
        # by each batch and must land in its own shopper's only)
        with patch.object(features_backfill, "BATCH", 1):
            live_profiles = _rebuild(upgraded, now)
        # Then every profile reads the same at the same `now`
        assert _features(upgraded, now) == _features(live, now)
        with upgraded.sessions() as session:
            alive = session.scalars(select(Profile.id).where(Profile.merged_into.is_(None)))
            assert live_profiles == len(list(alive))
        # and a second run finds nothing missing
        assert _rebuild(upgraded, now) == 0
    finally:
        live.dispose()
        upgraded.dispose()


def _history() -> list[Event]:
    """Three visits, two paid carts (one paid through an order naming it, one overtaken
    by its order), and a later visit."""
    ids = {"anonymous_id": "anon_1", "customer_id": "cust_1"}
    lines = [{"sku": "SKU-1", "price": 2500, "quantity": 2}]
    cart = {"id": "c1", "currency": "RUB", "items": lines}
    return [
        event("session.started", T0, event_id="e1", session_id="s1", **ids),
        event("page.viewed", T0 + timedelta(minutes=1), event_id="e2", session_id="s1", **ids),
        event("cart.updated", T0 + timedelta(minutes=2), event_id="e3", session_id="s1", cart=cart),
        event(
            "order.completed",
            T0 + timedelta(minutes=3),
            event_id="e4",
            order={"id": "o1", "cart_id": "c1", "total": 5000, "currency": "RUB"},
        ),
        event("page.viewed", T0 + timedelta(days=1), event_id="e5", session_id="s2", **ids),
        event(
            "order.completed",
            T0 + timedelta(days=1, minutes=5),
            event_id="e6",
            order={"id": "o2", "cart_id": "c2", "total": 1200, "currency": "RUB"},
        ),
        event("page.viewed", T0 + timedelta(days=2), event_id="e7", session_id="s3", **ids),
        event("product.viewed", T0 + timedelta(days=2), event_id="e8", session_id="s3", **ids),
    ]


def test_visits_and_orders_whose_events_were_purged_still_count(
    migrated_template: Path, tmp_path: Path
) -> None:
    now = T0 + timedelta(days=3)
    live = fresh_database(migrated_template, tmp_path)
    _apply_live(live, _history())
    upgraded = _upgraded_copy(live, tmp_path)
    try:
        # Given the first two days' events purged (the visits and paid carts stay)
        with upgraded.sessions() as session, session.begin():
            purged = ["e1", "e2", "e3", "e4", "e5", "e6"]
            session.execute(delete(RawEvent).where(RawEvent.id.in_(purged)))
        # When the features are rebuilt
        assert _rebuild(upgraded, now) == 1
        # Then the visits and orders come back from the sessions and carts tables
        (features,) = _features(upgraded, now).values()
        assert features["sessions"] == 3
        assert features["sessions_7d"] == 3
        assert features["orders_total"] == 2
        assert features["orders_30d"] == 2
        assert features["lifetime_value"] == 5000 + 1200
        assert features["first_order_at"] == T0 + timedelta(minutes=3)
        assert features["last_order_at"] == T0 + timedelta(days=1, minutes=5)
        # and what the retained events say, from them: the latest visit's views
        assert features["page_views_session"] == 1 and features["product_views_session"] == 1
        assert features["page_views_7d"] == 1
        # and the rest as the live path had it, but the purged views and cart lines
        (kept,) = _features(live, now).values()
        differ = {k: v for k, v in features.items() if v != kept[k]}
        assert differ == {"page_views_7d": 1, "cart_adds_7d": 0}
    finally:
        live.dispose()
        upgraded.dispose()


def test_an_event_that_no_longer_parses_is_skipped_counted_and_logged_without_pii(
    migrated_template: Path, tmp_path: Path
) -> None:
    now = T0 + timedelta(days=3)
    live = fresh_database(migrated_template, tmp_path)
    history = _history()
    contact = event("customer.identified", T0, event_id="e0", contact=CONTACT)
    _apply_live(live, [contact, *history])
    upgraded = _upgraded_copy(live, tmp_path)
    try:
        # Given a stored event a rule tightened since refuses (and one carrying contacts)
        with upgraded.sessions() as session, session.begin():
            row = session.get(RawEvent, "e0")
            assert row is not None
            row.payload = {**row.payload, "contact": {**CONTACT, "email": 42}}
        with capture_logs() as logs:
            assert _rebuild(upgraded, now, only_missing=False) == 1
        skipped = [e for e in logs if e["event"] == "features_backfill_event_skipped"]
        assert [e["event_id"] for e in skipped] == ["e0"]
        assert "contact.email" in skipped[0]["reason"]
        assert "anna@example.com" not in repr(logs) and "+7999" not in repr(logs)
        done = [e for e in logs if e["event"] == "features_backfilled"]
        assert done[0]["events_skipped"] == 1
        # Then the rest is rebuilt as kept live
        assert _features(upgraded, now) == _features(live, now)
    finally:
        live.dispose()
        upgraded.dispose()


def test_all_rebuilds_documents_that_exist(migrated_template: Path, tmp_path: Path) -> None:
    now = T0 + timedelta(days=3)
    db = fresh_database(migrated_template, tmp_path)
    try:
        _apply_live(db, _history())
        before = _features(db, now)
        with db.sessions() as session, session.begin():
            (row,) = session.scalars(select(ProfileFeatures))
            row.doc = {"sessions": 99}
        assert _rebuild(db, now) == 0  # only missing ones: nothing
        assert _rebuild(db, now, only_missing=False) == 1
        assert _features(db, now) == before
    finally:
        db.dispose()


def test_migration_0015_fills_the_features_of_an_upgraded_install(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'upgraded.db'}")
    try:
        db.migrate("0014")
        _seed_pre_features_install(db)
        db.migrate()
        _check_filled(db)
    finally:
        db.dispose()


# (tests/integration/test_store_backends.py checks the same on PostgreSQL)
def _seed_pre_features_install(db: Database) -> None:
    """A shopper as an install before 0013 holds them: two visits (the first's events
    purged), one paid cart whose order event was purged, one retained page view."""
    with db.sessions() as session, session.begin():
        session.add(Profile(id="p1", created_at=T0, updated_at=T0, attributes={}))
        session.add(Profile(id="p0", created_at=T0, updated_at=T0, merged_into="p1"))
        session.flush()
        session.add(Identity(kind="customer_id", value="cust_1", profile_id="p1", created_at=T0))
        for sid, at in (("s1", T0), ("s2", T0 + timedelta(days=1))):
            session.add(VisitSession(id=sid, profile_id="p1", started_at=at, last_seen_at=at))
        session.add(
            Cart(
                id="c1",
                profile_id="p1",
                status="ordered",
                currency="RUB",
                items=[],
                value=Decimal("4990.5000"),
                item_count=1,
                created_at=T0,
                snapshot_at=T0,
                last_activity_at=T0,
                order_id="o1",
                ordered_at=T0 + timedelta(minutes=5),
            )
        )
        viewed = event("page.viewed", T0 + timedelta(days=1), session_id="s2", anonymous_id=None)
        _store(session, viewed, 0)


def _check_filled(db: Database) -> None:
    now = T0 + timedelta(days=2)
    with db.sessions() as session:
        assert session.get(ProfileFeatures, "p0") is None  # merged: nothing of its own
        features = read_features(session, "p1", now, None)
    assert features["sessions"] == 2 and features["sessions_7d"] == 2
    assert features["page_views_session"] == 1 and features["page_views_7d"] == 1
    assert features["orders_total"] == 1 and features["lifetime_value"] == 4990.5
    assert features["last_order_at"] == T0 + timedelta(minutes=5)
