"""What operators ask of a running cartflow: queue depths and timer lag (:func:`status`),
messages and recovered carts (:func:`report`). Plain queries returning dataclasses, so
``cartflow status`` / ``cartflow report``, ``/metrics`` and a dashboard read the same
numbers; the caller passes the time (from its Clock), nothing here reads the wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select

from cartflow.engine.store.database import Database
from cartflow.engine.store.models import Cart, Delivery, RawEvent, Timer

#: Delivery states ``report`` counts as sent (the provider took the message).
SENT_STATUSES = ("accepted", "delivered")


@dataclass(frozen=True)
class Status:
    """Queue depths at ``now``."""

    now: datetime
    #: Timers waiting, and those already due.
    timers_pending: int
    timers_due: int
    #: When the longest-waiting due timer was scheduled for (None: nothing is due).
    oldest_due: datetime | None
    #: Events stored but not applied yet.
    events_waiting: int
    #: Deliveries by status.
    deliveries: dict[str, int]
    #: Deliveries ``sending`` for longer than ``stuck_after`` (the scheduler settles them
    #: as unknown).
    sending_stuck: int
    stuck_after: timedelta

    @property
    def timer_lag(self) -> timedelta:
        """How late the most overdue timer is (zero when nothing is due)."""
        return self.now - self.oldest_due if self.oldest_due else timedelta(0)


@dataclass(frozen=True)
class ReportRow:
    """Messages sent by one step on one channel, and the carts they went to."""

    scenario: str
    step: str
    channel: str
    sent: int
    carts: int


@dataclass(frozen=True)
class Report:
    """Messages sent per scenario, step and channel; carts ordered after a message."""

    rows: list[ReportRow] = field(default_factory=list)
    #: Scenario → carts ordered after one of its messages.
    recovered: dict[str, int] = field(default_factory=dict)


def status(db: Database, now: datetime, *, stuck_after: timedelta) -> Status:
    """Timers, waiting events and deliveries at ``now``; a delivery ``sending`` for longer
    than ``stuck_after`` (the timer lease) counts as stuck."""
    with db.reading() as session:
        due = (
            session.scalar(select(func.count()).select_from(Timer).where(Timer.due_at <= now)) or 0
        )
        pending = session.scalar(select(func.count()).select_from(Timer)) or 0
        oldest = session.scalar(select(func.min(Timer.scheduled_for)).where(Timer.due_at <= now))
        unapplied = (
            session.scalar(
                select(func.count()).select_from(RawEvent).where(RawEvent.applied_at.is_(None))
            )
            or 0
        )
        by_status = dict(
            session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
        )
        stuck = (
            session.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(Delivery.status == "sending", Delivery.updated_at < now - stuck_after)
            )
            or 0
        )
    return Status(
        now=now,
        timers_pending=pending,
        timers_due=due,
        oldest_due=oldest,
        events_waiting=unapplied,
        deliveries={str(k): int(v) for k, v in by_status.items()},
        sending_stuck=stuck,
        stuck_after=stuck_after,
    )


def report(db: Database) -> Report:
    """Sends per scenario, step and channel (:data:`SENT_STATUSES`), and per scenario the
    carts ordered after one of its messages was created."""
    with db.reading() as session:
        rows = session.execute(
            select(
                Delivery.scenario,
                Delivery.step_id,
                Delivery.channel,
                func.count(),
                func.count(func.distinct(Cart.id)),
            )
            .join(Cart, Cart.id == Delivery.cart_id, isouter=True)
            .where(Delivery.status.in_(SENT_STATUSES))
            .group_by(Delivery.scenario, Delivery.step_id, Delivery.channel)
        ).all()
        recovered = dict(
            session.execute(
                select(Delivery.scenario, func.count(func.distinct(Cart.id)))
                .join(Cart, Cart.id == Delivery.cart_id)
                .where(Cart.status == "ordered", Delivery.created_at < Cart.ordered_at)
                .group_by(Delivery.scenario)
            ).all()
        )
    return Report(
        rows=[
            ReportRow(scenario, step, channel, sent, carts)
            for scenario, step, channel, sent, carts in rows
        ],
        recovered={str(k): int(v) for k, v in recovered.items()},
    )


__all__ = ["SENT_STATUSES", "Report", "ReportRow", "Status", "report", "status"]
