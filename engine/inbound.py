"""What shoppers send back: SMS (and messenger) replies on a vendor's inbound webhook.

A reply that is a keyword changes consent on that channel for every shopper with that
number, as a native ``consent.updated`` event stored like any the shop sends — so that,
once the vendor's webhook is answered, no message on that channel leaves for them, even
one already queued (:mod:`cartflow.engine.stops`):

* **stop** — ``STOP``, ``STOPALL``, ``UNSUBSCRIBE``, ``CANCEL``, ``END``, ``QUIT``,
  ``СТОП``, ``ОТПИСКА`` (the CTIA list and its Russian equivalents; any case, surrounding
  spaces and punctuation ignored — a sentence that merely contains "stop" is not one);
* **start** — ``START``, ``UNSTOP``, ``СТАРТ``: consent given again.

Any other reply is not acted on here; it is counted (forwarding to the shop's support
is a later addition).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from cartflow.engine.events import Event
from cartflow.engine.profiles import normalise_phone
from cartflow.engine.store.database import Database
from cartflow.engine.store.models import Contact, Identity, Profile

Keyword = Literal["stop", "start"]
#: Reply (upper-cased, trimmed) → what it does.
KEYWORDS: dict[str, Keyword] = {
    **dict.fromkeys(
        ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "СТОП", "ОТПИСКА"), "stop"
    ),
    **dict.fromkeys(("START", "UNSTOP", "СТАРТ"), "start"),
}
#: Which of a profile's ids an event names it by, in order of preference.
ID_KINDS = ("customer_id", "anonymous_id")
_TRIM = re.compile(r"^[\s\W_]+|[\s\W_]+$")


@dataclass(frozen=True)
class Inbound:
    """One message a shopper sent to the shop's number (or bot)."""

    provider: str
    channel: str
    #: Who sent it (a phone number, a chat id); never logged.
    sender: str
    text: str
    #: The vendor's id of the message (for deduplicating retried webhooks).
    message_id: str
    at: datetime | None = None

    def __repr__(self) -> str:  # never print the sender or the text
        return f"Inbound(provider={self.provider!r}, message_id={self.message_id!r})"


def keyword(text: str) -> Keyword | None:
    """The keyword ``text`` is, if it is one."""
    return KEYWORDS.get(_TRIM.sub("", text).upper())


def event_ids(session: Session, profile_id: str) -> dict[str, str]:
    """The shop's ids of a profile (following merges), to name it in an event."""
    current: str | None = profile_id
    for _ in range(5):
        if current is None:
            break
        rows = session.execute(
            select(Identity.kind, Identity.value).where(Identity.profile_id == current)
        ).all()
        ids = {kind: value for kind, value in rows if kind in ID_KINDS}
        if ids:
            return ids
        profile = session.get(Profile, current)
        current = profile.merged_into if profile is not None else None
    return {}


def consent_event(
    event_id: str, ids: dict[str, str], channel: str, granted: bool, at: datetime, source: str
) -> Event:
    """The native event that sets one channel's consent for the shopper ``ids`` name."""
    kind = next(k for k in ID_KINDS if k in ids)
    return Event.model_validate(
        {
            "id": event_id,
            "type": "consent.updated",
            "at": at,
            kind: ids[kind],
            "consent": {channel: granted},
            "source": source,
        }
    )


def keyword_events(db: Database, replies: Sequence[Inbound], now: datetime) -> list[Event]:
    """The consent events the keyword replies among ``replies`` stand for: one per
    shopper with a contact at that address on that channel (ids fixed by the vendor's
    message id: a webhook delivered twice is one event)."""
    events: list[Event] = []
    with db.reading() as session:
        for reply in replies:
            word = keyword(reply.text)
            if word is None:
                continue
            address = normalise_phone(reply.sender) if reply.channel == "sms" else reply.sender
            profiles = session.scalars(
                select(Contact.profile_id)
                .where(Contact.channel == reply.channel, Contact.address == address)
                .distinct()
            ).all()
            at = (reply.at or now).replace(microsecond=0)
            for profile_id in profiles:
                ids = event_ids(session, profile_id)
                if not ids:
                    continue
                events.append(
                    consent_event(
                        f"inbound-{reply.provider}-{reply.message_id}-{profile_id}"[:200],
                        ids,
                        reply.channel,
                        word == "start",
                        at,
                        f"{reply.provider} reply {word.upper()}",
                    )
                )
    return events
