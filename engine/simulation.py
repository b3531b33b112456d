"""Drive the engine on a :class:`SimulatedClock`: events and timers in time order, with
no broker and no threads. ``cartflow simulate`` and the engine tests use it; it calls the
very methods the Dramatiq actors call in production."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select

from cartflow.engine.clock import SimulatedClock
from cartflow.engine.events import Event
from cartflow.engine.outcomes import StepResult
from cartflow.engine.service import Engine
from cartflow.engine.store.models import Timer


class Simulation:
    def __init__(self, engine: Engine, clock: SimulatedClock) -> None:
        self.engine = engine
        self.clock = clock
        self.outcomes: list[StepResult] = []

    def feed(self, events: Iterable[Event]) -> None:
        """Apply events in time order, firing every timer that falls due in between."""
        for event in sorted(events, key=lambda e: e.at or self.clock.now()):
            at = event.at or self.clock.now()
            self.run_until(at)
            if at > self.clock.now():
                self.clock.set(at)
            ids = self.engine.ingest([event])
            self.engine.apply_events(ids)

    def run_until(self, until: datetime) -> None:
        """Fire timers in due order up to ``until``, then leave the clock at ``until``."""
        while True:
            with self.engine.db.reading() as session:
                due = session.scalar(select(Timer.due_at).order_by(Timer.due_at).limit(1))
            if due is None or due > until:
                break
            if due > self.clock.now():
                self.clock.set(due)
            for claim in self.engine.claim_due(limit=100):
                self.outcomes.append(self.engine.fire(claim))
        if until > self.clock.now():
            self.clock.set(until)
