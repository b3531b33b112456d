"""The guards that decide *when* a step may go (architecture §5): escalation waits for
the previous message to be opened (or not), a visitor browsing right now is not
interrupted, the send window and quiet hours in the shopper's own time zone, and the
frequency caps. Each answers like every guard (:class:`~cartflow.engine.step_check.Verdict`);
:data:`cartflow.engine.guards.GUARDS` puts them in order."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from cartflow.engine.context import recipient_zone
from cartflow.engine.deliveries import at_least
from cartflow.engine.outcomes import Outcome
from cartflow.engine.step_check import StepCheck, Verdict
from cartflow.engine.store.models import Delivery, DeliveryEventRow
from cartflow.engine.timing import format_duration

#: Delivery states that count against frequency caps (all but failed before sending).
COUNTED = ("pending", "sending", "accepted", "delivered", "unknown")


def escalation(check: StepCheck) -> Verdict | None:
    rule = check.step.escalate
    if rule is None:
        return None
    previous = check.session.scalar(
        select(Delivery)
        .where(
            Delivery.journey_id == check.journey.id,
            Delivery.id != (check.own_delivery_id or ""),  # a retry is not its own "previous"
        )
        .order_by(Delivery.created_at.desc())
        .limit(1)
    )
    if previous is None:
        return None
    engaged_at = check.session.scalar(
        select(func.min(DeliveryEventRow.at)).where(
            DeliveryEventRow.delivery_id == previous.id,
            DeliveryEventRow.status.in_(at_least(rule.unless)),
        )
    )
    if engaged_at is not None:
        return Verdict(Outcome.SKIPPED, f"previous message was {rule.unless}; no need to escalate")
    # the clock starts when the message actually went out (a retry may come later)
    sent_at = previous.sent_at or previous.created_at
    if check.now - sent_at < rule.within:
        return Verdict(
            Outcome.DEFERRED,
            f"waiting {format_duration(rule.within)} for the previous message to be {rule.unless}",
            until=sent_at + rule.within,
        )
    return None


def still_browsing(check: StepCheck) -> Verdict | None:
    grace = check.config.settings.defaults.browsing_grace
    seen = check.profile.last_seen_at
    if seen is not None and check.now - seen < grace and seen > check.journey.started_at:
        return Verdict(Outcome.DEFERRED, "visitor is browsing right now", until=seen + grace)
    return None


def send_window(check: StepCheck) -> Verdict | None:
    assert check.channel is not None
    rules = check.config.send_rules(check.scenario.model, check.step, check.channel)
    zone = recipient_zone(check.session, check.profile, check.config.settings.defaults.timezone)
    if rules.allows(check.now, zone):
        return None
    opening = rules.next_opening(check.now, zone)
    if opening is None:
        return Verdict(Outcome.SKIPPED, "send window never opens in the next 8 days")
    return Verdict(
        Outcome.DEFERRED, f"outside send window / quiet hours in {zone.key}", until=opening
    )


def frequency_caps(check: StepCheck) -> Verdict | None:
    assert check.channel is not None
    latest_until: datetime | None = None
    hit: str | None = None
    for cap in check.config.settings.caps:
        if cap.channel not in ("any", check.channel):
            continue
        since = check.now - cap.per
        query = select(Delivery.created_at).where(
            Delivery.profile_id == check.profile.id,
            Delivery.created_at > since,
            Delivery.status.in_(COUNTED),
        )
        if check.own_delivery_id is not None:
            query = query.where(Delivery.id != check.own_delivery_id)
        if cap.channel != "any":
            query = query.where(Delivery.channel == cap.channel)
        times = sorted(check.session.scalars(query).all())
        if len(times) >= cap.max:
            # room opens when the oldest message that keeps us at the cap leaves the window
            frees_at = times[len(times) - cap.max] + cap.per
            if latest_until is None or frees_at > latest_until:
                latest_until, hit = (
                    frees_at,
                    f"cap {cap.max}/{format_duration(cap.per)} on {cap.channel}",
                )
    if hit is None or latest_until is None:
        return None
    if check.step.on_cap == "skip":
        return Verdict(Outcome.SKIPPED, f"frequency {hit} reached")
    stale_at = check.due_at + check.scenario.model.max_staleness
    if latest_until > stale_at:
        return Verdict(
            Outcome.SKIPPED,
            f"frequency {hit} reached; room opens after max_staleness "
            f"{format_duration(check.scenario.model.max_staleness)}",
        )
    return Verdict(Outcome.DEFERRED, f"frequency {hit} reached", until=latest_until)
