"""The scenario language: what ``scenarios.yaml`` and ``scenarios/*.yaml`` may say.

Pydantic models with ``extra="forbid"``: an unknown key is an error with a hint, never
silently ignored. Durations are strings (``30m``, ``3h``, ``2d``), windows are
``[days] HH:MM-HH:MM`` in the recipient's time zone. docs/scenarios.md documents every
key; this module is the source of truth for it, and for the JSON Schema editors check
the files with as they are typed (``cartflow schema``; each key's ``description`` and
``examples`` are what the editor shows).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from cartflow.engine.channels import CHANNELS, Channel
from cartflow.engine.scenario.shared_settings import CapRule, Defaults, ProviderSettings
from cartflow.engine.scenario.value_types import (
    DURATION_SCHEMA,
    PERCENT_SCHEMA,
    SPANS_SCHEMA,
    DiscountPercent,
    Duration,
    Percent,
    QuietHours,
    Strict,
    Windows,
)

#: Every channel cartflow knows, in escalation order (:data:`cartflow.engine.channels.CHANNELS`).
CHANNEL_NAMES = CHANNELS
#: Events that can end a journey.
EXIT_EVENTS = ("order.completed", "cart.emptied", "unsubscribed", "cart.updated")
#: What a step's escalation can wait for on the previous message.
ENGAGEMENTS = ("delivered", "opened", "clicked")


class Trigger(Strict):
    """When a cart enters the scenario."""

    on: Literal["cart.abandoned"] = Field(
        default="cart.abandoned", description="The event that starts a journey."
    )
    idle: Duration = Field(
        default=timedelta(minutes=30),
        description="How long the cart and the visitor stay quiet before it counts as abandoned.",
        examples=["30m"],
    )
    when: str | None = Field(
        default=None,
        description="A condition the cart must meet (see 'Conditions' in docs/scenarios.md).",
        examples=["cart.value >= 1000"],
    )

    @field_validator("idle")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("idle must be positive, e.g. '30m'")
        return value


class Audience(Strict):
    """Who the scenario is for."""

    segments: tuple[str, ...] = Field(
        default=(),
        description="Only visitors in one of these segments (defined under 'segments:').",
        examples=[["hesitant"]],
    )
    exclude: str | None = Field(
        default=None,
        description="A condition that keeps a cart out; one that cannot be evaluated excludes.",
        examples=["customer.orders_30d > 0"],
    )


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


class Scenario(Strict):
    """One campaign: who enters, and the messages they get (a file in scenarios/)."""

    scenario: str = Field(
        pattern=r"^[a-z0-9_]+$", description="The scenario's id.", examples=["abandoned_cart"]
    )
    description: str = Field(default="", description="What it is for, in words.")
    enabled: bool = Field(
        default=True, description="false: no new journeys; those in flight end at their next step."
    )
    priority: int = Field(
        default=0,
        description="Higher first; a cart is in at most one journey at a time.",
        examples=[10],
    )
    trigger: Trigger = Field(default=Trigger(), description="When a cart enters.")
    audience: Audience = Field(default=Audience(), description="Who the scenario is for.")
    holdout: Percent = Field(
        default=0.0,
        description="Stable control group that gets nothing, for measuring lift.",
        examples=["10%"],
    )
    reentry: Duration = Field(
        default=timedelta(days=7),
        description="The same shopper does not re-enter this scenario within this time.",
        examples=["7d"],
    )
    exit_on: tuple[
        Literal["order.completed", "cart.emptied", "unsubscribed", "cart.updated"], ...
    ] = Field(
        default=("order.completed", "cart.emptied", "unsubscribed"),
        description="Events that end the journey (the first three always do).",
        examples=[["order.completed", "cart.emptied", "unsubscribed"]],
    )
    expires: Duration = Field(
        default=timedelta(days=7),
        description="A journey ends this long after abandonment, whatever is left.",
        examples=["7d"],
    )
    max_staleness: Duration = Field(
        default=timedelta(hours=24),
        description="A step deferred by caps longer than this is skipped.",
        examples=["12h"],
    )
    quiet_hours: QuietHours | None = Field(
        default=None, description="More quiet hours for every step of the scenario."
    )
    locales: tuple[str, ...] = Field(
        default=(),
        description="The locales its templates exist in (default: defaults.locales); the "
        "first is its default — shoppers in another locale get that one.",
        examples=[["uk", "en"]],
    )
    steps: tuple[Step, ...] = Field(min_length=1, description="The messages, in order.")

    def locale_for(self, shopper_locale: str | None, default_locale: str) -> str:
        """The locale a shopper gets in this scenario."""
        if not self.locales:
            return shopper_locale or default_locale
        return shopper_locale if shopper_locale in self.locales else self.locales[0]

    def default_locale(self, default_locale: str) -> str:
        return self.locales[0] if self.locales else default_locale


class Settings(Strict):
    """``scenarios.yaml``: the settings every scenario shares."""

    version: Literal[1] = Field(default=1, description="The file format's version.")
    defaults: Defaults = Field(default=Defaults(), description="What holds for every scenario.")
    caps: tuple[CapRule, ...] = Field(
        default=(),
        description="Frequency caps over all scenarios.",
        examples=[[{"channel": "any", "max": 3, "per": "7d"}]],
    )
    segments: dict[str, str] = Field(
        default_factory=dict,
        description="Named conditions for audiences and other conditions ('vip' in segments).",
        examples=[{"hesitant": "visitor.sessions >= 2"}],
    )
    providers: dict[Channel, ProviderSettings] = Field(
        default_factory=dict,
        description="Who sends each channel.",
        examples=[{"push": {"type": "console"}}],
    )
    include: tuple[str, ...] = Field(
        default=("scenarios/*.yaml",),
        description="Scenario files to read (glob patterns).",
        examples=[["scenarios/*.yaml"]],
    )
    templates: str = Field(
        default="templates", description="The templates directory.", examples=["templates"]
    )
    scenarios: tuple[Scenario, ...] = Field(default=(), description="Scenarios written here.")


#: Defined here before the split, and still imported from here.
__all__ = [
    "CHANNEL_NAMES",
    "DURATION_SCHEMA",
    "ENGAGEMENTS",
    "EXIT_EVENTS",
    "PERCENT_SCHEMA",
    "SPANS_SCHEMA",
    "Audience",
    "CapRule",
    "Channel",
    "Defaults",
    "Discount",
    "DiscountPercent",
    "Duration",
    "Escalation",
    "Percent",
    "ProviderSettings",
    "QuietHours",
    "Scenario",
    "Settings",
    "Step",
    "Strict",
    "TemplateRef",
    "Trigger",
    "Variant",
    "Windows",
]
