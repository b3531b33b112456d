"""Durable timers (architecture §4, engine/timers.py): one row per (kind, ref), claimed with a
lease, released only by the claim that holds them."""

from __future__ import annotations

from datetime import timedelta

from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Database
from cartflow.engine.timers import (
    CART_IDLE,
    JOURNEY_STEP,
    MAX_FIRINGS,
    cancel_timer,
    claim_due,
    next_due_at,
    release,
    set_timer,
    take,
)

from ..factories import T0, timers

LEASE = timedelta(seconds=60)


def test_setting_a_timer_again_moves_it(db: Database) -> None:
    # Given a timer for a cart
    with db.transaction() as session:
        set_timer(session, CART_IDLE, "cart_1", T0)

    # When it is set again, twice
    with db.transaction() as session:
        set_timer(session, CART_IDLE, "cart_1", T0 + timedelta(minutes=20))
        set_timer(session, CART_IDLE, "cart_1", T0 + timedelta(minutes=50))

    # Then there is still one row, at the last time
    assert [(t.kind, t.ref, t.due_at) for t in timers(db)] == [
        (CART_IDLE, "cart_1", T0 + timedelta(minutes=50))
    ]


def test_same_ref_of_different_kinds_are_different_timers(db: Database) -> None:
    with db.transaction() as session:
        set_timer(session, CART_IDLE, "x", T0)
        set_timer(session, JOURNEY_STEP, "x", T0)
    assert len(timers(db)) == 2


def test_only_due_timers_are_claimed(db: Database) -> None:
    # Given one timer due now and one due tomorrow
    with db.transaction() as session:
        set_timer(session, CART_IDLE, "due", T0)
        set_timer(session, CART_IDLE, "later", T0 + timedelta(days=1))

    # When a dispatcher claims
    claims = claim_due(db, T0, lease=LEASE)

    # Then it holds only the due one, leased for a minute
    assert [(c.kind, c.ref, c.scheduled_for) for c in claims] == [(CART_IDLE, "due", T0)]
    due = next(t for t in timers(db) if t.ref == "due")
    assert (due.due_at, due.claimed_until, due.attempts) == (T0 + LEASE, T0 + LEASE, 0)
    assert due.claim_token == claims[0].token


def test_a_leased_timer_is_not_claimed_again_until_the_lease_runs_out(db: Database) -> None:
    # Given a claimed timer
    with db.transaction() as session:
        set_timer(session, CART_IDLE, "cart_1", T0)
    (first,) = claim_due(db, T0, lease=LEASE)

    # When another dispatcher claims during the lease, and after it
    during = claim_due(db, T0 + timedelta(seconds=59), lease=LEASE)
    after = claim_due(db, T0 + LEASE, lease=LEASE)

    # Then it gets nothing during the lease and the same timer (new token) after it
    assert during == []
    assert [(c.timer_id, c.scheduled_for) for c in after] == [(first.timer_id, T0)]
    assert after[0].token != first.token
    # And when both messages reach workers, the first to start does the work: it takes the
    # lease back for itself, and once done, the other finds the firing gone
    with db.transaction() as session:
        assert take(session, first, T0 + 2 * LEASE)
    (row,) = timers(db)
    assert (row.claim_token, row.due_at) == (first.token, T0 + 2 * LEASE)
    with db.transaction() as session:
        release(session, first, None)
    with db.transaction() as session:
        assert not take(session, after[0], T0 + 2 * LEASE)


def test_release_deletes_or_moves_the_timer(db: Database) -> None:
    with db.transaction() as session:
        set_timer(session, CART_IDLE, "a", T0)
        set_timer(session, CART_IDLE, "b", T0)
    claims = {c.ref: c for c in claim_due(db, T0, lease=LEASE)}
    with db.transaction() as session:
        release(session, claims["a"], None)
        release(session, claims["b"], T0 + timedelta(hours=1))
    (left,) = timers(db)
    assert (left.ref, left.due_at, left.claim_token, left.attempts) == (
        "b",
        T0 + timedelta(hours=1),
        None,
        0,
    )


def test_a_stale_claim_cannot_undo_a_newer_schedule(db: Database) -> None:
    # Given a claimed timer that an event then moves (the shopper came back)
    with db.transaction() as session:
        set_timer(session, CART_IDLE, "cart_1", T0)
    (claim,) = claim_due(db, T0, lease=LEASE)
    with db.transaction() as session:
        set_timer(session, CART_IDLE, "cart_1", T0 + timedelta(minutes=45))

    # When the worker holding the old claim finishes and releases it
    with db.transaction() as session:
        assert not take(session, claim, T0 + LEASE)
        release(session, claim, None)

    # Then the newer schedule stands
    assert [t.due_at for t in timers(db)] == [T0 + timedelta(minutes=45)]


def test_cancel_and_next_due(db: Database) -> None:
    with db.transaction() as session:
        set_timer(session, CART_IDLE, "a", T0 + timedelta(hours=2))
        set_timer(session, JOURNEY_STEP, "j", T0 + timedelta(hours=1))
    with db.sessions() as session:
        assert next_due_at(session) == T0 + timedelta(hours=1)
    with db.transaction() as session:
        cancel_timer(session, JOURNEY_STEP, "j")
        cancel_timer(session, JOURNEY_STEP, "never-existed")
    with db.sessions() as session:
        assert next_due_at(session) == T0 + timedelta(hours=2)


def test_claim_limit_takes_the_earliest_first(db: Database) -> None:
    with db.transaction() as session:
        for minute in (5, 1, 3, 2, 4):
            set_timer(session, CART_IDLE, f"c{minute}", T0 + timedelta(minutes=minute))
    claims = claim_due(db, T0 + timedelta(minutes=10), limit=2, lease=LEASE)
    assert sorted(c.ref for c in claims) == ["c1", "c2"]


def test_claims_that_never_reach_a_worker_do_not_count_as_attempts(db: Database) -> None:
    # Given a timer claimed over and over while the queue is down (no worker ever starts)
    with db.transaction() as session:
        set_timer(session, CART_IDLE, "cart_1", T0)
    for attempt in range(30):
        (claim,) = claim_due(db, T0 + attempt * LEASE, lease=LEASE)
    # Then it has not used up any attempts: an outage does not kill healthy journeys
    assert claim.attempts == 0


def test_a_firing_that_never_finishes_is_given_up_with_a_reason(
    sim: Simulation, db: Database
) -> None:

    from ..factories import cart_updated, decisions, journeys

    # Given a journey whose push went out and whose SMS (due at +3h) then keeps being
    # claimed by workers that die before finishing
    sim.feed([cart_updated(T0)])
    sim.run_until(T0 + timedelta(hours=1))
    due = T0 + timedelta(hours=3)
    for attempt in range(MAX_FIRINGS):
        (dying,) = claim_due(db, due + attempt * LEASE, lease=LEASE)
        with db.transaction() as session:  # a worker starts on it, then dies
            assert take(session, dying, due + (attempt + 1) * LEASE)
    (claim,) = claim_due(db, due + MAX_FIRINGS * LEASE, lease=LEASE)
    assert claim.attempts == MAX_FIRINGS
    # When the last claim finally reaches a worker
    sim.clock.set(due + MAX_FIRINGS * LEASE)
    outcome = sim.engine.fire(claim)
    # Then the journey ends with the reason on record instead of coming back forever
    assert outcome.decision == "failed"
    (journey,) = journeys(db)
    assert journey.status == "exited" and "gave up" in str(journey.exit_reason)
    assert timers(db) == []
    assert any("gave up" in d.reason for d in decisions(db, "exited"))
