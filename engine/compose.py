"""Composing a step's message once the guards let it go (architecture §5): the A/B
variant, the discount code, the rendered blocks and, for SMS, how it travels.

The draft then meets a second, shorter guard list, :data:`MESSAGE_GUARDS`, on what was
composed: a template that failed to render, an SMS longer than the step allows. Either
skips the step and gives the code back; nothing half-written is sent.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined
from sqlalchemy.orm import Session

from cartflow.engine import tokens
from cartflow.engine.links import Links
from cartflow.engine.outcomes import Outcome
from cartflow.engine.render import RenderError, SmsShape
from cartflow.engine.scenario.model import Step
from cartflow.engine.sending import Message
from cartflow.engine.step_check import StepCheck, Verdict, first_verdict
from cartflow.engine.store.models import Contact, Delivery, DiscountToken, Journey, Profile
from cartflow.engine.template_filters import TRACK

#: ``unsubscribe_url`` when links are not set up: rendering it fails, with how to fix it.
NO_UNSUBSCRIBE = StrictUndefined(
    hint="unsubscribe_url needs CARTFLOW_PUBLIC_URL and CARTFLOW_LINK_SECRET to be set"
)


@dataclass
class Draft:
    """A step's message as composed, before anything is written."""

    step: Step
    channel: str
    variant: str | None
    token: DiscountToken | None
    #: The rendered blocks (``text``, ``title``, ``html`` …); empty when rendering failed.
    parts: dict[str, str]
    #: Why rendering failed, if it did.
    error: str | None = None
    #: How an SMS travels (encoding, parts); None for other channels.
    shape: SmsShape | None = None


MessageGuard = Callable[[Draft], Verdict | None]


def compose(check: StepCheck, delivery_id: str) -> Draft:
    """Pick the variant, reserve the code for ``delivery_id``, render the channel's blocks
    (the guards have chosen the channel)."""
    step, journey, cart = check.step, check.journey, check.cart
    channel = check.channel
    assert channel is not None
    variant = variant_for(step, journey)
    token = None
    if step.discount is not None:
        token = tokens.reserve(
            check.session,
            step.discount,
            journey_id=journey.id,
            step_id=step.id,
            currency=cart.currency,
            now=check.now,
            delivery_id=delivery_id,
        )
    defaults = check.config.settings.defaults
    model = check.scenario.model
    context = {k: v for k, v in check.context.items() if not k.startswith("_")}
    links = check.links
    context.update(
        discount=tokens.view(token),
        step={"id": step.id, "channel": channel},
        links={"cart": links.click(delivery_id, cart.url) if links and cart.url else cart.url},
        unsubscribe_url=links.unsubscribe(delivery_id) if links else NO_UNSUBSCRIBE,
    )
    if links is not None:
        context[TRACK] = functools.partial(links.click, delivery_id)
    ref = step.template_for(channel, variant)
    assert ref is not None  # the loader makes sure every channel of the step has one
    try:
        parts = check.config.templates.render(
            ref,
            channel,
            model.locale_for(check.profile.locale, defaults.locale),
            context,
            model.default_locale(defaults.locale),
        )
    except RenderError as exc:
        return Draft(step, channel, variant, token, {}, error=str(exc))
    shape = None
    if channel == "sms":
        shape = SmsShape.of(parts["text"])
        parts.update(encoding=shape.encoding, segments=str(shape.parts))
    return Draft(step, channel, variant, token, parts, shape=shape)


def variant_for(step: Step, journey: Journey) -> str | None:
    """The step's A/B variant for this journey: stable per cart, weighted."""
    if not step.variants:
        return None
    total = sum(v.weight for v in step.variants) or 1
    # keyed on the shop's cart id: the same cart gets the same variant in every mode
    seed = f"{journey.cart_id}:{journey.scenario}:{step.id}".encode()
    bucket = int.from_bytes(hashlib.sha256(seed).digest()[:4], "big") % total
    for variant in step.variants:
        if bucket < variant.weight:
            return str(variant.id)
        bucket -= variant.weight
    return str(step.variants[-1].id)


def render_failed(draft: Draft) -> Verdict | None:
    if draft.error is not None:
        return Verdict(Outcome.SKIPPED, f"render failed: {draft.error}")
    return None


def sms_length(draft: Draft) -> Verdict | None:
    shape, allowed = draft.shape, draft.step.max_sms_parts
    if shape is not None and shape.parts > allowed:
        return Verdict(
            Outcome.SKIPPED,
            f"SMS needs {shape.parts} parts ({shape.encoding}); step allows {allowed}",
        )
    return None


#: What the composed message must pass, in order.
MESSAGE_GUARDS: Sequence[MessageGuard] = (render_failed, sms_length)


def check_draft(draft: Draft, guards: Sequence[MessageGuard] = MESSAGE_GUARDS) -> Verdict | None:
    return first_verdict(guards, draft)


def message_for(session: Session, delivery: Delivery, links: Links | None = None) -> Message:
    """The written delivery as the provider gets it (with its one-click unsubscribe URL
    in ``metadata["unsubscribe_url"]`` when ``links`` are set up)."""
    contact = session.get(Contact, delivery.contact_id) if delivery.contact_id else None
    profile = session.get(Profile, delivery.profile_id)
    metadata: dict[str, Any] = {
        "cartflow_delivery_id": delivery.id,
        "journey_id": delivery.journey_id,
        "cart_id": delivery.cart_id,
        "scenario": delivery.scenario,
        "step": delivery.step_id,
        "token": delivery.token_code,
    }
    if links is not None:
        metadata["unsubscribe_url"] = links.unsubscribe(delivery.id)
    return Message(
        delivery_id=delivery.id,
        idempotency_key=delivery.idempotency_key,
        channel=delivery.channel,
        address=contact.address if contact else "",
        parts=dict(delivery.rendered or {}),
        locale=(profile.locale if profile else None) or "en",
        metadata=metadata,
    )
