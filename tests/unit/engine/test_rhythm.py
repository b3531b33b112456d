"""The shopper's rhythm: a deferred step shifts what follows, and a campaign switched off
stops the journeys already in flight."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cartflow.engine.clock import SimulatedClock
from cartflow.engine.configs import ConfigHolder
from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Database
from cartflow.providers.registry import validators

from ..factories import (
    ClockedRecorder,
    Run,
    build_engine,
    cart_updated,
    deliveries,
    journeys,
    moscow,
    write_config,
)

#: A cart left at 21:00 Moscow: the push (due 21:30) waits for 09:00.
EVENING = datetime(2026, 11, 22, 18, 0, tzinfo=UTC)

TWO_STEPS = """\
scenario: evening
trigger: {{on: cart.abandoned, idle: 30m}}
expires: {expires}
steps:
  - {{id: push, after: 30m, channel: push, template: abandoned_cart/push}}
  - {{id: sms, after: {sms_after}, channel: sms, template: abandoned_cart/sms,
     discount: {{percent: 5}}}}
"""


def run_evening(tmp_path: Path, db: Database, *, sms_after: str, expires: str) -> Run:
    config = write_config(tmp_path, TWO_STEPS.format(sms_after=sms_after, expires=expires))
    run = Run.start(config, db, at=EVENING)
    return run.play([cart_updated(EVENING)], until=timedelta(days=2))


def test_a_deferred_step_keeps_the_gap_to_the_next(tmp_path: Path, db: Database) -> None:
    # Given push at +30m and SMS at +3h (2½ h apart), and the push deferred to 09:00
    run = run_evening(tmp_path, db, sms_after="3h", expires="7d")
    sent = {step: moscow(at) for step, at in run.sent_at().items()}
    # Then the SMS keeps its 2½ h after the push: 11:30, not at once at 09:00
    assert sent == {
        "push": datetime(2026, 11, 23, 9, 0),
        "sms": datetime(2026, 11, 23, 11, 30),
    }


def test_the_gap_is_not_kept_past_the_journeys_expiry(tmp_path: Path, db: Database) -> None:
    # Given the SMS 7½ h after the push, in a journey that expires 19 h after the cart
    run = run_evening(tmp_path, db, sms_after="8h", expires="19h")
    sent = {step: moscow(at) for step, at in run.sent_at().items()}
    # Then keeping the gap (16:30) would pass the expiry (16:00): the SMS goes on its own
    # schedule instead — as soon as the night allows — rather than being lost
    assert sent == {
        "push": datetime(2026, 11, 23, 9, 0),
        "sms": datetime(2026, 11, 23, 9, 0),
    }


def test_after_previous_counts_from_the_actual_send(tmp_path: Path, db: Database) -> None:
    scenario = TWO_STEPS.format(sms_after="3h", expires="7d").replace(
        "after: 3h", "after_previous: 1h"
    )
    run = Run.start(write_config(tmp_path, scenario), db, at=EVENING)
    run.play([cart_updated(EVENING)], until=timedelta(days=2))
    sent = {step: moscow(at) for step, at in run.sent_at().items()}
    assert sent["sms"] == datetime(2026, 11, 23, 10, 0)


def test_switching_a_scenario_off_stops_journeys_in_flight(tmp_path: Path, db: Database) -> None:
    # Given a journey whose push went out, on a configuration read from disk
    write_config(tmp_path, TWO_STEPS.format(sms_after="3h", expires="7d"))
    holder = ConfigHolder.from_path(tmp_path / "scenarios.yaml", validators())
    clock = SimulatedClock(datetime(2026, 11, 22, 7, 0, tzinfo=UTC))
    recorder = ClockedRecorder(clock)
    sim = Simulation(build_engine(db, clock, holder, recorder), clock)
    sim.feed([cart_updated(clock.now())])
    sim.run_until(clock.now() + timedelta(hours=1))
    assert [c for c, _, _ in recorder.calls] == ["push"]
    # When the marketer sets `enabled: false` and the configuration reloads
    scenario_file = tmp_path / "scenarios" / "test.yaml"
    scenario_file.write_text(
        scenario_file.read_text().replace(
            "scenario: evening\n", "scenario: evening\nenabled: false\n"
        )
    )
    assert holder.reload()
    sim.run_until(clock.now() + timedelta(days=2))
    # Then nothing more goes out, and the journey says why it ended
    (journey,) = journeys(db)
    assert (journey.status, journey.exit_reason) == ("exited", "scenario disabled")
    assert [c for c, _, _ in recorder.calls] == ["push"]
    assert [d.step_id for d in deliveries(db)] == ["push"]


def test_a_step_that_is_only_late_shifts_nothing(tmp_path: Path, db: Database) -> None:
    # Given a cart left at 10:00 Moscow that cartflow only hears of at 14:00 (a late
    # event: nothing was deferred, the push and the SMS are both overdue)
    config = write_config(tmp_path, TWO_STEPS.format(sms_after="3h", expires="7d"))
    morning = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)
    run = Run.start(config, db, at=morning + timedelta(hours=4))
    run.batch([cart_updated(morning)], until=timedelta(hours=1))
    sent = {step: moscow(at) for step, at in run.sent_at().items()}
    # Then both go now: the planned gap counts from the plan, not from a catch-up
    assert sent == {
        "push": datetime(2026, 11, 22, 14, 0),
        "sms": datetime(2026, 11, 22, 14, 0),
    }
