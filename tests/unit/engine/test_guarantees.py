"""The promises that review found a way around, pinned down: the engine's night cannot be
configured away, withdrawn consent is never re-granted by a late event, and one bad event
does not hold up the others."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Database, RawEvent

from ..factories import (
    SETTINGS_YAML,
    T0,
    Run,
    cart_updated,
    deliveries,
    event,
    moscow,
    write_config,
)

HOUR = timedelta(hours=1)

SMS_ONLY = """\
scenario: sms_only
trigger: {on: cart.abandoned, idle: 30m}
steps:
  - {id: sms, after: 30m, channel: sms, template: abandoned_cart/sms, discount: {percent: 5}}
"""


def test_configuration_cannot_shorten_the_engines_night(tmp_path: Path, db: Database) -> None:
    # Given settings that try to drop SMS from quiet hours and shorten the night
    settings = SETTINGS_YAML.format(templates=tmp_path / "templates").replace(
        '  quiet_hours: "21:00-09:00"\n',
        '  quiet_hours: "23:00-06:00"\n  quiet_channels: [email]\n',
    )
    config = write_config(tmp_path, SMS_ONLY, settings_yaml=settings)
    run = Run.start(config, db, at=T0 + 11 * HOUR)  # 21:00 Moscow
    # When a cart is left at 21:30 Moscow (SMS due 22:30)
    run.sim.feed([cart_updated(T0 + 11 * HOUR + 30 * timedelta(minutes=1))])
    run.sim.run_until(T0 + 30 * HOUR)
    # Then the SMS still waited for 09:00 local, the engine's own morning
    (sms,) = deliveries(db)
    assert moscow(sms.created_at).hour == 9


def test_a_late_older_event_never_regrants_withdrawn_consent(sim: Simulation, db: Database) -> None:
    # Given an abandoned cart whose push went out, and SMS consent withdrawn at +2h
    sim.feed([cart_updated(T0)])
    sim.run_until(T0 + HOUR)
    sim.feed([event("consent.updated", T0 + 2 * HOUR, consent={"sms": False})])
    # When a delayed event from +1h30, still saying "sms: yes", arrives afterwards
    late = event("page.viewed", T0 + 90 * timedelta(minutes=1), consent={"sms": True})
    sim.engine.apply_events(sim.engine.ingest([late]))
    sim.run_until(T0 + timedelta(days=3))
    # Then no SMS is ever sent
    assert "sms" not in [d.channel for d in deliveries(db)]


def test_a_bad_event_is_set_aside_and_the_rest_of_its_batch_applies(
    sim: Simulation, db: Database
) -> None:
    # Given a batch whose first event cannot be applied (a stored payload that no longer
    # validates, written straight into the store) and a good one after it
    good = cart_updated(T0)
    ids = sim.engine.ingest([good])
    with db.transaction() as session:
        session.add(
            RawEvent(
                id="bad",
                type="order.completed",
                at=T0 - HOUR,
                received_at=T0,
                payload={
                    "id": "bad",
                    "type": "order.completed",
                    "anonymous_id": "x",
                    "at": "not a time",
                },
            )
        )
    # When both are applied
    sim.engine.apply_events(["bad", *ids])
    # Then the good one took effect, and the bad one is marked with why
    with db.sessions() as session:
        rows = {r.id: r for r in session.scalars(select(RawEvent))}
    assert rows[ids[0]].applied_at is not None and rows[ids[0]].error is None
    assert rows["bad"].applied_at is not None and "ValidationError" in str(rows["bad"].error)
    assert sim.engine.unapplied_event_ids(timedelta(0)) == []


def test_a_timestamp_far_in_the_future_is_taken_as_now(sim: Simulation, db: Database) -> None:
    # Given an event claiming to come from next year
    ids = sim.engine.ingest([event("page.viewed", T0 + timedelta(days=365))])
    with db.sessions() as session:
        (row,) = session.scalars(select(RawEvent).where(RawEvent.id.in_(ids)))
    # Then it is stored at the engine's now, with the claimed time kept on record
    assert row.at == T0
    assert row.payload["sent_at_claimed"].startswith(str((T0 + timedelta(days=365)).year))
