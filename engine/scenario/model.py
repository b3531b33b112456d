"""The scenario language: what ``scenarios.yaml`` and ``scenarios/*.yaml`` may say.

Pydantic models with ``extra="forbid"``: an unknown key is an error with a hint, never
silently ignored. Durations are strings (``30m``, ``3h``, ``2d``), windows are
``[days] HH:MM-HH:MM`` in the recipient's time zone. docs/scenarios.md documents every
key; this module is the source of truth for it, and for the JSON Schema editors check
the files with as they are typed (``cartflow schema``; each key's ``description`` and
``examples`` are what the editor shows). It holds the scenario and the settings file;
what a step says is in :mod:`~cartflow.engine.scenario.step_model`, the shared settings
in :mod:`~cartflow.engine.scenario.shared_settings`, the values in
:mod:`~cartflow.engine.scenario.value_types`; every name stays importable from here.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from cartflow.engine.channels import CHANNELS, Channel
from cartflow.engine.scenario.door_model import DoorName, DoorSettings, SegmentDoor
from cartflow.engine.scenario.shared_settings import CapRule, Defaults, ProviderSettings, Replies
from cartflow.engine.scenario.step_model import (
    ENGAGEMENTS,
    Discount,
    Escalation,
    Step,
    TemplateRef,
    Variant,
)
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


#: What a trigger may start on: any abandoned cart, one abandoned in checkout, or
#: browsing without carting anything.
TRIGGER_EVENTS = ("cart.abandoned", "checkout.abandoned", "browse.abandoned")


class Trigger(Strict):
    """When a cart enters the scenario."""

    on: Literal["cart.abandoned", "checkout.abandoned", "browse.abandoned"] = Field(
        default="cart.abandoned",
        description="The event that starts a journey: cart.abandoned (any idle cart), "
        "checkout.abandoned (a cart whose shopper reached checkout and stopped there) or "
        "browse.abandoned (a shopper who viewed products, carted nothing and went idle).",
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
    steps: tuple[str, ...] = Field(
        default=(),
        description="Only with on: checkout.abandoned — the checkout steps (the shop's names) "
        "the shopper must have stopped at; empty: any step.",
        examples=[["shipping", "payment"]],
    )

    @field_validator("steps")
    @classmethod
    def _steps_need_checkout(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if value and info.data.get("on") != "checkout.abandoned":
            raise ValueError("steps only go with 'on: checkout.abandoned'")
        return value

    def applies_to(self, checkout_step: str | None, kind: str = "cart") -> bool:
        """Whether a cart of ``kind`` (``cart`` or ``browse``) stopped at
        ``checkout_step`` (None: never in checkout) fits."""
        if (self.on == "browse.abandoned") != (kind == "browse"):
            return False
        if self.on in ("cart.abandoned", "browse.abandoned"):
            return True
        return checkout_step is not None and (not self.steps or checkout_step in self.steps)

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
    replies: Replies = Field(
        default=Replies(),
        description="Where shoppers' answers that are no keyword go, and how long reminders "
        "wait for support.",
        examples=[{"webhook": "https://support.shop.example/replies", "pause": "24h"}],
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
    doors: dict[DoorName, DoorSettings] = Field(
        default_factory=dict,
        description="Generic JSON doors by name (POST /v1/doors/<name>): how a platform's "
        "webhooks become native events (docs/doors.md).",
        examples=[{"insales": {"secret": "${CARTFLOW_DOOR_INSALES_SECRET}", "type_from": "topic"}}],
    )
    segment: SegmentDoor = Field(
        default_factory=SegmentDoor,
        description="The Segment-compatible door: which identify traits carry consent.",
        examples=[{"consent_traits": {"email": "email_opt_in"}}],
    )


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
