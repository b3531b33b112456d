"""What a step of a scenario may say: :class:`Step`, one message of the journey, with its
template (one, one per channel, or one per A/B :class:`Variant`), the code it carries
(:class:`Discount`) and when it is skipped for engagement (:class:`Escalation`). Part of
the scenario language of :mod:`cartflow.engine.scenario.model`, which re-exports these."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Literal

from pydantic import Field, model_validator

from cartflow.engine.channels import Channel
from cartflow.engine.scenario.value_types import (
    DiscountPercent,
    Duration,
    QuietHours,
    Strict,
    Windows,
)

#: What a step's escalation can wait for on the previous message.
ENGAGEMENTS = ("delivered", "opened", "clicked")


class Discount(Strict):
    """A one-off code the step's message carries (``discount`` in its template)."""

    percent: DiscountPercent | None = Field(
        default=None,
        description="Percent off (give this or 'amount').",
        examples=[5, "7%"],
        json_schema_extra={"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "null"}]},
    )
    amount: Decimal | None = Field(
        default=None, gt=0, description="Amount off, in defaults.currency.", examples=[300]
    )
    ttl: Duration = Field(
        default=timedelta(hours=48), description="How long the code works.", examples=["48h"]
    )
    prefix: str = Field(
        default="CF",
        pattern=r"^[A-Z0-9]{0,10}$",
        description="What every code starts with.",
        examples=["CF"],
    )

    @model_validator(mode="after")
    def _one(self) -> Discount:
        if (self.percent is None) == (self.amount is None):
            raise ValueError("give exactly one of 'percent' or 'amount'")
        return self


class Escalation(Strict):
    """Run the step only if the previous message was not ``unless``-ed within ``within``."""

    unless: Literal["delivered", "opened", "clicked"] = Field(
        description="What the previous message must have been to skip this step.",
        examples=["opened"],
    )
    within: Duration = Field(description="How long to wait for it.", examples=["2h"])


#: A template reference, or one per channel (``{push: cart/push, email: cart/email}``)
#: so a step that falls back to another channel has words for it.
TemplateRef = str | dict[Channel, str]


def _ref_for(ref: TemplateRef | None, channel: str) -> str | None:
    if isinstance(ref, dict):
        return ref.get(channel)  # type: ignore[call-overload, no-any-return]
    return ref


def _refs(ref: TemplateRef | None) -> tuple[str, ...]:
    if ref is None:
        return ()
    return tuple(ref.values()) if isinstance(ref, dict) else (ref,)


class Variant(Strict):
    """One arm of an A/B test; each journey gets one, by weight."""

    id: str = Field(pattern=r"^[A-Za-z0-9_-]+$", description="The variant's id.", examples=["a"])
    weight: int = Field(default=1, ge=0, description="Its share of journeys.", examples=[1])
    template: TemplateRef = Field(
        description="Its template (or one per channel).", examples=["abandoned_cart/sms"]
    )


class Step(Strict):
    """One message of the journey."""

    id: str = Field(
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The step's id, unique in the scenario.",
        examples=["push"],
    )
    after: Duration | None = Field(
        default=None,
        description="Delay from the cart's last activity (the abandonment anchor).",
        examples=["30m", "3h"],
    )
    after_previous: Duration | None = Field(
        default=None,
        description="Delay from the previous step's send (or its skip).",
        examples=["24h"],
    )
    channel: Channel = Field(description="The channel to send on.", examples=["push"])
    fallback: tuple[Channel, ...] = Field(
        default=(),
        description="Channels to try, in order, without consent or a contact on 'channel'.",
        examples=[["email"]],
    )
    failover_within: Duration | None = Field(
        default=None,
        description=(
            "After a send, wait this long for the provider's receipt: one saying the "
            "message failed or cannot be delivered moves the step to its next fallback."
        ),
        examples=["15m"],
    )
    window: Windows | None = Field(
        default=None,
        description="When the step may send, recipient's local time; outside it waits.",
        examples=["10:00-20:00", "mon-fri 11:00-19:00"],
    )
    quiet_hours: QuietHours | None = Field(
        default=None, description="More quiet hours for this step.", examples=["13:00-14:00"]
    )
    when: str | None = Field(
        default=None,
        description="A condition checked at send time; false (or failing) skips the step.",
        examples=["journey.sent < 2"],
    )
    discount: Discount | None = Field(default=None, description="A code for this message.")
    template: TemplateRef | None = Field(
        default=None,
        description="templates/<ref>.<locale>.j2, or one per channel.",
        examples=["abandoned_cart/push", {"sms": "abandoned_cart/sms", "email": "cart/email"}],
    )
    variants: tuple[Variant, ...] = Field(
        default=(), description="A/B variants instead of one template."
    )
    escalate: Escalation | None = Field(
        default=None, description="Send only if the previous message was not engaged with."
    )
    max_sms_parts: int = Field(
        default=3,
        ge=1,
        le=10,
        description="An SMS needing more parts is a lint warning, and skipped at send.",
        examples=[3],
    )
    on_cap: Literal["defer", "skip"] = Field(
        default="defer",
        description="What a frequency cap does to this step: wait for room, or skip.",
        examples=["defer"],
    )

    @model_validator(mode="after")
    def _shape(self) -> Step:
        if self.after is not None and self.after_previous is not None:
            raise ValueError("give 'after' (from abandonment) or 'after_previous', not both")
        if self.template is None and not self.variants:
            raise ValueError("a step needs a 'template' (or 'variants' with templates)")
        if self.template is not None and self.variants:
            raise ValueError("give 'template' or 'variants', not both")
        if self.channel in self.fallback:
            raise ValueError(f"fallback repeats the step's own channel '{self.channel}'")
        if len(set(self.fallback)) != len(self.fallback):
            raise ValueError("fallback lists a channel twice")
        if self.failover_within is not None and not self.fallback:
            raise ValueError("'failover_within' needs a 'fallback' channel to move to")
        for ref in [self.template, *(v.template for v in self.variants)]:
            if isinstance(ref, dict):
                missing = [c for c in self.channels if c not in ref]
                if missing:
                    raise ValueError(
                        f"no template for channel '{missing[0]}'; give one per channel the step "
                        f"can use, e.g. template: {{{self.channel}: ..., {missing[0]}: ...}}"
                    )
        return self

    @property
    def delay(self) -> timedelta:
        return (
            self.after_previous if self.after_previous is not None else (self.after or timedelta(0))
        )

    @property
    def channels(self) -> tuple[str, ...]:
        return (self.channel, *self.fallback)

    def templates(self) -> tuple[str, ...]:
        """Every template reference the step may use."""
        if self.variants:
            return tuple(ref for v in self.variants for ref in _refs(v.template))
        return _refs(self.template)

    def template_for(self, channel: str, variant: str | None = None) -> str | None:
        """The template for ``channel`` (in ``variant``, when the step has variants)."""
        if variant is not None:
            chosen = next((v for v in self.variants if v.id == variant), None)
            return _ref_for(chosen.template, channel) if chosen else None
        return _ref_for(self.template, channel)
