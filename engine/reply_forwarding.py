"""Handing shoppers' replies (:mod:`cartflow.engine.replies`) to the shop's support, from
the ``reply_forward`` timer — durable, so a crash or an outage of the support system
loses none.

To ``replies.webhook``: ``POST`` of one JSON object (``type: reply.received``: the reply,
the shopper, their cart and its link, the message they answered, when the reminders go on,
and where to say it was handled), signed the Standard Webhooks way when
``replies.secret`` is set (``webhook-id`` = the reply id, the same on every retry, so the
receiver can deduplicate; ``webhook-timestamp``; ``webhook-signature: v1,<HMAC>``). Any
2xx is done.

To ``replies.email``: the same as a plain-text email through the email channel's
provider, with the delivery id ``reply-<id>``.

A failure is tried again — 1, 5, 30 minutes, then hourly — for a day; then the reply is
``failed`` with the reason (the pause still ends on time: reminders are never held for
ever by a support outage).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from cartflow.engine.clock import Clock
from cartflow.engine.configs import ConfigHolder
from cartflow.engine.inbound import event_ids
from cartflow.engine.links import Links
from cartflow.engine.outcomes import Outcome, StepResult
from cartflow.engine.scenario.shared_settings import Replies
from cartflow.engine.sending import Message, Sender
from cartflow.engine.store.database import Database
from cartflow.engine.store.models import Cart, Delivery, Profile, ShopperReply
from cartflow.engine.timers import DEFAULT_LEASE, Claim, take

log = structlog.get_logger("cartflow.replies")

#: How long support may be unreachable before a reply is ``failed``.
GIVE_UP = timedelta(days=1)
#: Waits between tries, then hourly.
BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30))


def next_try(attempts: int) -> timedelta:
    return BACKOFF[attempts - 1] if 0 < attempts <= len(BACKOFF) else timedelta(hours=1)


@dataclass
class Forwarder:
    """Runs ``reply_forward`` timers."""

    db: Database
    configs: ConfigHolder
    sender: Sender
    clock: Clock
    links: Links | None = None
    lease: timedelta = DEFAULT_LEASE
    timeout: float = 10.0
    client: httpx.Client | None = field(default=None, repr=False)

    def run(self, claim: Claim) -> StepResult:
        settings = self.configs.current.settings.replies
        with self.db.transaction() as session:
            if not take(session, claim, self.clock.now() + self.lease):
                return StepResult.moved_on(Outcome.STALE, "this firing is already done")
            reply = session.get(ShopperReply, claim.ref)
            if reply is None or reply.status not in ("pending", "handled"):
                return StepResult.done(Outcome.STALE, "nothing to forward")
            if reply.forwarded_at is not None:
                return StepResult.done(Outcome.STALE, "forwarded already")
            body = payload(session, reply, self.links)
        problems = self._forward(settings, body)
        now = self.clock.now()
        with self.db.transaction() as session:
            reply = session.get(ShopperReply, claim.ref, with_for_update=True)
            if reply is None:
                return StepResult.done(Outcome.STALE, "reply gone")
            if not problems:
                reply.forwarded_at = now
                if reply.status == "pending":
                    reply.status = "forwarded"
                log.info("reply_forwarded", reply_id=reply.id, channel=reply.channel)
                return StepResult.done(Outcome.SENT, "forwarded to support")
            reply.attempts += 1
            reply.error = "; ".join(problems)[:500]
            if now - reply.received_at >= GIVE_UP:
                reply.status = "failed"
                log.error("reply_not_forwarded", reply_id=reply.id, error=reply.error)
                return StepResult.done(Outcome.FAILED, f"support unreachable: {reply.error}")
            log.warning("reply_forward_failed", reply_id=reply.id, error=reply.error)
            again = now + next_try(reply.attempts)
            return StepResult.later(Outcome.DEFERRED, f"support: {reply.error}", again)

    def _forward(self, settings: Replies, body: dict[str, Any]) -> list[str]:
        """Hand ``body`` to every configured destination; what went wrong, if anything."""
        problems: list[str] = []
        if settings.webhook:
            problems += self._post(settings.webhook, settings.secret, body)
        if settings.email:
            result = self.sender.send(email(body, settings.email))
            if result.status != "accepted":
                problems.append(f"email: {result.status}: {result.reason or ''}".strip())
        return problems

    def _post(self, url: str, secret: str | None, body: dict[str, Any]) -> list[str]:
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        headers = {"Content-Type": "application/json"}
        if secret:
            when = self.clock.now()
            headers |= {
                "webhook-id": body["id"],
                "webhook-timestamp": str(int(when.timestamp())),
                "webhook-signature": Webhook(secret).sign(body["id"], when, data),
            }
        if self.client is None:
            self.client = httpx.Client(timeout=self.timeout)
        try:
            response = self.client.post(url, content=data.encode(), headers=headers)
        except httpx.HTTPError as exc:
            return [f"webhook: {type(exc).__name__}"]
        if 200 <= response.status_code < 300:
            return []
        return [f"webhook: HTTP {response.status_code}"]

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


def payload(session: Session, reply: ShopperReply, links: Links | None) -> dict[str, Any]:
    """What support gets about one reply (JSON-ready)."""
    delivery = session.get(Delivery, reply.delivery_id) if reply.delivery_id else None
    cart = session.get(Cart, delivery.cart_id) if delivery is not None else None
    profile = session.get(Profile, reply.profile_id) if reply.profile_id else None
    shopper = None
    if profile is not None:
        shopper = {
            **event_ids(session, profile.id),
            "first_name": profile.first_name,
            "locale": profile.locale,
        }
    answered = None
    if delivery is not None:
        rendered = delivery.rendered or {}
        answered = {
            "delivery_id": delivery.id,
            "scenario": delivery.scenario,
            "step": delivery.step_id,
            "channel": delivery.channel,
            "sent_at": _iso(delivery.sent_at or delivery.created_at),
            "text": rendered.get("text") or rendered.get("body") or "",
        }
    handle = f"{links.public_url}/v1/replies/{reply.id}/handled" if links else None
    return {
        "type": "reply.received",
        "id": reply.id,
        "received_at": _iso(reply.received_at),
        "channel": reply.channel,
        "provider": reply.provider,
        "from": reply.sender,
        "text": reply.text,
        "shopper": shopper,
        "cart": _cart(cart),
        "in_reply_to": answered,
        "reminders_paused_until": _iso(reply.paused_until),
        "handled_url": handle,
    }


def email(body: dict[str, Any], to: str) -> Message:
    """The reply as a plain-text email to support."""
    cart = body["cart"] or {}
    shopper = body["shopper"] or {}
    who = shopper.get("customer_id") or shopper.get("anonymous_id") or "an unknown sender"
    lines = [
        f"A shopper ({who}) replied by {body['channel']} ({body['provider']}) at "
        f"{body['received_at']}, from {body['from']}:",
        "",
        *(f"> {line}" for line in body["text"].splitlines() or [""]),
        "",
    ]
    if body["in_reply_to"]:
        lines += [f"They answered: {body['in_reply_to']['text']}", ""]
    if cart:
        lines += [f"Cart {cart['id']}: {cart['value']} {cart['currency']} {cart['url'] or ''}"]
        lines += [f"  {i['quantity']} × {i['name'] or i['sku']}" for i in cart["items"]]
        lines.append("")
    if body["reminders_paused_until"]:
        lines.append(f"Reminders wait until {body['reminders_paused_until']}.")
    if body["handled_url"]:
        lines.append(f"When answered: POST {body['handled_url']} (with the API key).")
    first = " ".join(body["text"].split())
    subject = f"Shopper reply: {first[:60]}{'…' if len(first) > 60 else ''}"
    return Message(
        delivery_id=f"reply-{body['id']}",
        idempotency_key=f"reply-{body['id']}",
        channel="email",
        address=to,
        parts={"subject": subject, "text": "\n".join(lines)},
        locale="en",
        metadata={"reply_id": body["id"]},
    )


def _cart(cart: Cart | None) -> dict[str, Any] | None:
    if cart is None:
        return None
    items = [
        {k: item.get(k) for k in ("sku", "name", "price", "quantity", "url")}
        for item in cart.items or []
    ]
    return {
        "id": cart.id,
        "url": cart.url,
        "value": str(cart.value),
        "currency": cart.currency,
        "items": items,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
