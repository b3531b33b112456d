"""The decision log: every guard's answer is a row, so "why didn't she get it?" has an
answer (``cartflow simulate`` prints these; ``cartflow why`` will read them)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.orm import Session

from cartflow.engine.condition_failures import Failed
from cartflow.engine.outcomes import Outcome
from cartflow.engine.store.models import Decision, Delivery, Journey

log = structlog.get_logger("cartflow.decisions")


def record(
    session: Session,
    at: datetime,
    decision: Outcome,
    reason: str,
    *,
    journey: Journey | None = None,
    journey_id: str | None = None,
    profile_id: str | None = None,
    cart_id: str | None = None,
    scenario: str | None = None,
    step_id: str | None = None,
    channel: str | None = None,
    until: datetime | None = None,
    delivery_id: str | None = None,
) -> Decision:
    row = Decision(
        at=at,
        decision=decision,
        reason=reason[:500],
        journey_id=journey.id if journey else journey_id,
        profile_id=journey.profile_id if journey else profile_id,
        cart_id=journey.cart_id if journey else cart_id,
        scenario=journey.scenario if journey else scenario,
        step_id=step_id,
        channel=channel,
        until=until,
        delivery_id=delivery_id,
    )
    session.add(row)
    log.info(
        f"journey_{decision}"
        if decision in (Outcome.STARTED, Outcome.EXITED, Outcome.COMPLETED)
        else f"step_{decision}",
        journey_id=row.journey_id,
        cart_id=row.cart_id,
        scenario=row.scenario,
        step=step_id,
        channel=channel,
        reason=reason,
        until=until.isoformat() if until else None,
    )
    return row


def record_for(
    session: Session,
    delivery: Delivery,
    at: datetime,
    decision: Outcome,
    reason: str,
    *,
    until: datetime | None = None,
) -> Decision:
    """A decision about one delivery, outside the journey's own step run."""
    return record(
        session,
        at,
        decision,
        reason,
        until=until,
        journey_id=delivery.journey_id,
        profile_id=delivery.profile_id,
        cart_id=delivery.cart_id,
        scenario=delivery.scenario,
        step_id=delivery.step_id,
        channel=delivery.channel,
        delivery_id=delivery.id,
    )


def record_failures(session: Session, at: datetime, failures: Iterable[Failed], **ids: Any) -> None:
    """Record each segment that could not be evaluated (it counted as "not in it")."""
    for failed in failures:
        record(
            session,
            at,
            Outcome.SKIPPED,
            f"segment '{failed.which}' counted as not matching: {failed.describe()}",
            **ids,
        )
