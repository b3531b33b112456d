"""Replies that are no keyword — "can I pay by card?" by SMS, a question to the bot — are
for a person, not for the engine: they are kept (``replies`` table), handed to the shop's
support (:mod:`cartflow.engine.reply_forwarding`: a signed webhook and/or an email) and the
shopper's reminders wait meanwhile, so nobody gets "your cart is waiting!" while their
question is unanswered:

* :func:`record_replies` — in the inbound webhook's request, before the vendor is answered:
  each reply once (by the vendor's message id), matched to the shopper with that address
  on that channel and to the newest message sent there (what they answer); their active
  journeys **pause** until ``replies.pause`` (24 h) from now, and a ``reply_forward`` timer
  hands the reply to support (durable: a crash loses none);
* :func:`awaiting_support` — the send guard: a paused journey's step is deferred to the
  end of the pause;
* :func:`handle_reply` — support answered (``POST /v1/replies/{id}/handled``): the pause
  ends now, and the journey goes on from where its schedule was (``resume``) or ends
  (``"resume": false``: the shopper is looked after).

Without ``replies.webhook`` or ``replies.email`` set, replies are kept (``kept``) and
nothing waits. A reply from an address no shopper has is forwarded all the same
(``shopper``: null) and pauses nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cartflow.engine.inbound import Inbound
from cartflow.engine.journeys import finish
from cartflow.engine.outcomes import Outcome
from cartflow.engine.profiles import new_id, normalise_phone
from cartflow.engine.scenario.shared_settings import Replies
from cartflow.engine.step_check import StepCheck, Verdict
from cartflow.engine.store.database import Database
from cartflow.engine.store.models import Contact, Delivery, Journey, ShopperReply, Timer
from cartflow.engine.timers import JOURNEY_STEP, REPLY_FORWARD, set_timer

#: Keys in ``journey.state``: the end of the pause, the reply it waits on, and when the
#: step was due before the pause (it goes on from there).
PAUSED_UNTIL, PAUSED_BY, DUE_BEFORE = "paused_until", "paused_by", "due_before_pause"
#: The most of a reply's text kept (a vendor's message is far shorter).
MAX_TEXT = 4096


@dataclass(frozen=True)
class Handled:
    """What :func:`handle_reply` did."""

    reply_id: str
    status: str
    #: Journeys that went on (resumed) or ended.
    journeys: int


def record_replies(
    db: Database, replies: Sequence[Inbound], settings: Replies, now: datetime
) -> list[str]:
    """Keep each reply once and, when support is configured, pause its shopper's journeys
    and schedule its forwarding; the ids of the replies that were new."""
    new: list[str] = []
    if not replies:
        return new
    with db.transaction() as session:
        for reply in replies:
            known = session.scalar(
                select(ShopperReply.id).where(
                    ShopperReply.provider == reply.provider,
                    ShopperReply.message_id == reply.message_id[:200],
                )
            )
            if known is not None:
                continue
            address = normalise_phone(reply.sender) if reply.channel == "sms" else reply.sender
            profile_id, delivery_id = _answered(session, reply.channel, address)
            row = ShopperReply(
                id=new_id(),
                provider=reply.provider,
                message_id=reply.message_id[:200],
                channel=reply.channel,
                sender=address,
                text=reply.text[:MAX_TEXT],
                profile_id=profile_id,
                delivery_id=delivery_id,
                status="pending" if settings.forwards() else "kept",
                received_at=reply.at or now,
                attempts=0,
            )
            session.add(row)
            if settings.forwards():
                set_timer(session, REPLY_FORWARD, row.id, now)
                if profile_id is not None:
                    row.paused_until = now + settings.pause
                    _pause(session, profile_id, row, now)
            new.append(row.id)
    return new


def _answered(session: Session, channel: str, address: str) -> tuple[str | None, str | None]:
    """The shopper with that address on that channel, and the newest message sent there."""
    contacts = {
        contact_id: profile_id
        for contact_id, profile_id in session.execute(
            select(Contact.id, Contact.profile_id).where(
                Contact.channel == channel, Contact.address == address
            )
        )
    }
    if not contacts:
        return None, None
    delivery = session.scalar(
        select(Delivery)
        .where(Delivery.contact_id.in_(contacts), Delivery.channel == channel)
        .order_by(Delivery.created_at.desc())
        .limit(1)
    )
    if delivery is not None:
        return delivery.profile_id, delivery.id
    return next(iter(contacts.values())), None


def _pause(session: Session, profile_id: str, reply: ShopperReply, now: datetime) -> None:
    assert reply.paused_until is not None
    for journey in session.scalars(
        select(Journey).where(Journey.profile_id == profile_id, Journey.status == "active")
    ):
        state = dict(journey.state or {})
        paused = state.get(PAUSED_UNTIL)
        if not paused or datetime.fromisoformat(paused) <= now:
            # a reply while paused extends the pause; the schedule stays the one before
            due = session.scalar(
                select(Timer.due_at).where(Timer.kind == JOURNEY_STEP, Timer.ref == journey.id)
            )
            state[DUE_BEFORE] = due.isoformat() if due is not None else None
        state[PAUSED_UNTIL] = reply.paused_until.isoformat()
        state[PAUSED_BY] = reply.id
        journey.state = state


def awaiting_support(check: StepCheck) -> Verdict | None:
    """The guard: while the shopper's reply waits for support, the step waits too."""
    until = (check.journey.state or {}).get(PAUSED_UNTIL)
    if not until:
        return None
    ends = datetime.fromisoformat(until)
    if check.now >= ends:
        return None
    return Verdict(
        Outcome.DEFERRED, "the shopper replied; waiting for support to answer", until=ends
    )


def handle_reply(db: Database, reply_id: str, resume: bool, now: datetime) -> Handled | None:
    """Support has the reply: end the pause of the journeys it holds — going on from their
    schedule (``resume``), or ending them. None when no such reply exists; a reply handled
    before stays as it was (the same answer again)."""
    with db.transaction() as session:
        reply = session.get(ShopperReply, reply_id, with_for_update=True)
        if reply is None:
            return None
        if reply.status == "handled":
            return Handled(reply.id, reply.status, 0)
        reply.status, reply.handled_at = "handled", now
        count = 0
        if reply.profile_id is None:
            return Handled(reply.id, reply.status, count)
        for journey in session.scalars(
            select(Journey).where(
                Journey.profile_id == reply.profile_id, Journey.status == "active"
            )
        ):
            state = dict(journey.state or {})
            if state.get(PAUSED_BY) != reply.id:
                continue
            due = state.pop(DUE_BEFORE, None)
            state.pop(PAUSED_UNTIL, None)
            state.pop(PAUSED_BY, None)
            journey.state = state
            count += 1
            if not resume:
                finish(session, journey, "exited", "support answered the shopper's reply", now)
            elif due is not None:
                set_timer(session, JOURNEY_STEP, journey.id, max(now, datetime.fromisoformat(due)))
        return Handled(reply.id, reply.status, count)
