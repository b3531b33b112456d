"""What shoppers send back: SMS and messenger replies on a vendor's inbound webhook.

A reply that is a keyword changes consent on that channel for every shopper with that
number, as a native ``consent.updated`` event stored like any the shop sends — so that,
once the vendor's webhook is answered, no message on that channel leaves for them, even
one already queued (:mod:`cartflow.engine.stops`):

* **stop** — ``STOP``, ``STOPALL``, ``UNSUBSCRIBE``, ``CANCEL``, ``END``, ``QUIT``,
  ``СТОП``, ``ОТПИСКА`` (the CTIA list and its Russian equivalents; any case, surrounding
  spaces and punctuation ignored — a sentence that merely contains "stop" is not one);
* **start** — ``START``, ``UNSTOP``, ``СТАРТ``: consent given again.

A messenger adds its commands: ``/stop`` and ``/start`` are the keywords above; blocking
the bot is a stop; ``/start <token>`` — the shopper opened the shop's
``t.me/<bot>?start=<token>`` link (:meth:`cartflow.engine.links.Links.messenger`) —
connects that chat to the shopper the token names, as a ``messenger`` contact with
consent given (a token that is not this server's connects nothing).

Any other reply is returned to the caller as one to hand to the shop's support.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from cartflow.engine.events import Event
from cartflow.engine.links import Links
from cartflow.engine.profiles import normalise_phone
from cartflow.engine.store.database import Database
from cartflow.engine.store.models import Contact, Identity, Profile

Keyword = Literal["stop", "start"]
#: What an inbound message is: a text, or the shopper blocking the bot.
InboundKind = Literal["message", "blocked"]
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
#: ``/start <token>``: a messenger chat opened from the shop's deep link.
_START_TOKEN = re.compile(r"/start\s+([A-Za-z0-9_-]{1,64})")


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
    kind: InboundKind = "message"

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


def profile_of(db: Database, customer_id: str = "", anonymous_id: str = "") -> str | None:
    """The profile the shop's id names now (following merges), or None."""
    with db.reading() as session:
        for kind, value in (("customer_id", customer_id), ("anonymous_id", anonymous_id)):
            identity = session.get(Identity, (kind, value)) if value else None
            current = identity.profile_id if identity is not None else None
            for _ in range(5):
                profile = session.get(Profile, current) if current else None
                if profile is None or profile.merged_into is None:
                    break
                current = profile.merged_into
            if current is not None:
                return current
    return None


def consent_event(
    event_id: str,
    ids: dict[str, str],
    channel: str,
    granted: bool,
    at: datetime,
    source: str,
    contact: dict[str, str] | None = None,
) -> Event:
    """The native event that sets one channel's consent for the shopper ``ids`` name
    (and adds ``contact``, when given)."""
    kind = next(k for k in ID_KINDS if k in ids)
    event: dict[str, object] = {
        "id": event_id,
        "type": "consent.updated",
        "at": at,
        kind: ids[kind],
        "consent": {channel: granted},
        "source": source,
    }
    if contact:
        event["contact"] = contact
    return Event.model_validate(event)


@dataclass
class Replies:
    """What a webhook's messages stand for: consent events to store, and the replies
    that are no keyword (for the shop's support)."""

    events: list[Event] = field(default_factory=list)
    unanswered: list[Inbound] = field(default_factory=list)


def inbound_events(
    db: Database, replies: Sequence[Inbound], now: datetime, links: Links | None = None
) -> Replies:
    """The consent events ``replies`` stand for — a keyword, a block: one per shopper with
    a contact at that address on that channel; a start token: one for the shopper it
    names — with ids fixed by the vendor's message id (a webhook delivered twice is one
    event), and the replies that are none of these."""
    found = Replies()
    with db.reading() as session:
        for reply in replies:
            at = (reply.at or now).replace(microsecond=0)
            event_id = f"inbound-{reply.provider}-{reply.message_id}"
            start = _START_TOKEN.fullmatch(reply.text.strip())
            if start is not None and reply.kind == "message":
                profile_id = links.messenger_profile(start.group(1)) if links else None
                ids = event_ids(session, profile_id) if profile_id else {}
                if ids:
                    contact = {reply.channel: reply.sender}
                    source = f"{reply.provider} /start link"
                    found.events.append(
                        consent_event(event_id, ids, reply.channel, True, at, source, contact)
                    )
                continue
            word = "stop" if reply.kind == "blocked" else keyword(reply.text)
            if word is None:
                found.unanswered.append(reply)
                continue
            address = normalise_phone(reply.sender) if reply.channel == "sms" else reply.sender
            profiles = session.scalars(
                select(Contact.profile_id)
                .where(Contact.channel == reply.channel, Contact.address == address)
                .distinct()
            ).all()
            what = "blocked the bot" if reply.kind == "blocked" else f"reply {word.upper()}"
            for profile_id in profiles:
                ids = event_ids(session, profile_id)
                if ids:
                    found.events.append(
                        consent_event(
                            f"{event_id}-{profile_id}"[:200],
                            ids,
                            reply.channel,
                            word == "start",
                            at,
                            f"{reply.provider} {what}",
                        )
                    )
    return found
