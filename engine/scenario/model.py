"""The scenario language: what ``scenarios.yaml`` and ``scenarios/*.yaml`` may say.

Pydantic models with ``extra="forbid"``: an unknown key is an error with a hint, never
silently ignored. Durations are strings (``30m``, ``3h``, ``2d``), windows are
``[days] HH:MM-HH:MM`` in the recipient's time zone. docs/scenarios.md documents every
key; this module is the source of truth for it.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from engine.timing import DEFAULT_QUIET_HOURS, DailySpan, format_duration, parse_duration

Channel = Literal["push", "sms", "email", "messenger"]
#: Every channel cartflow knows, in escalation order.
CHANNEL_NAMES = ("push", "sms", "email", "messenger")
#: Events that can end a journey.
EXIT_EVENTS = ("order.completed", "cart.emptied", "unsubscribed", "cart.updated")
#: What a step's escalation can wait for on the previous message.
ENGAGEMENTS = ("delivered", "opened", "clicked")


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("expected a duration such as '30m', '3h' or '2d'")
    if isinstance(value, int):
        if value == 0:
            return timedelta(0)
        raise ValueError(f"bare number {value}; add a unit: '{value}m', '{value}h' or '{value}d'")
    return parse_duration(value)


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str),
]


def _spans(value: Any, *, wrap: bool) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise ValueError("expected 'HH:MM-HH:MM' or a list of them, e.g. 'mon-fri 10:00-20:00'")
    for item in items:
        DailySpan.parse(str(item), wrap=wrap)
    return tuple(str(item) for item in items)


Windows = Annotated[tuple[str, ...], BeforeValidator(lambda v: _spans(v, wrap=False))]
QuietHours = Annotated[tuple[str, ...], BeforeValidator(lambda v: _spans(v, wrap=True))]


def _percent(value: Any) -> float:
    if isinstance(value, str) and value.strip().endswith("%"):
        value = value.strip()[:-1]
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a percentage such as '10%', got {value!r}") from None
    if not 0 <= number <= 100:
        raise ValueError(f"percentage {number} is outside 0..100")
    return number


Percent = Annotated[float, BeforeValidator(_percent)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Defaults(Strict):
    timezone: str = "UTC"
    locale: str = "en"
    #: Locales every template must exist in (``validate`` checks).
    locales: tuple[str, ...] = ()
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    quiet_hours: QuietHours = (DEFAULT_QUIET_HOURS,)
    #: Channels quiet hours apply to (email has none by default).
    quiet_channels: tuple[Channel, ...] = ("push", "sms", "messenger")
    #: A visitor seen this recently is "still browsing": reminders wait.
    browsing_grace: Duration = timedelta(minutes=10)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(value)
        except Exception:
            raise ValueError(f"unknown time zone {value!r}; use an IANA name") from None
        return value


class CapRule(Strict):
    """At most ``max`` messages on ``channel`` (or ``any``) per rolling ``per``."""

    channel: Literal["any", "push", "sms", "email", "messenger"] = "any"
    max: int = Field(ge=1)
    per: Duration


class Trigger(Strict):
    on: Literal["cart.abandoned"] = "cart.abandoned"
    idle: Duration = timedelta(minutes=30)
    when: str | None = None

    @field_validator("idle")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("idle must be positive, e.g. '30m'")
        return value


class Audience(Strict):
    segments: tuple[str, ...] = ()
    exclude: str | None = None


def _discount_percent(value: Any) -> Decimal:
    """``7``, ``7.5``, ``"7%"`` → Decimal; what the docs promise, in marketer words."""
    hint = 'discount percent must be more than 0 and at most 100, e.g. 7 or "7%"'
    text = str(value).strip()
    if isinstance(value, bool) or not text:
        raise ValueError(hint)
    text = text[:-1].strip() if text.endswith("%") else text
    try:
        number = Decimal(text)
    except ArithmeticError:
        raise ValueError(f"{hint}; got {value!r}") from None
    if not number.is_finite() or not 0 < number <= 100:
        raise ValueError(f"{hint}; got {value!r}")
    return number


DiscountPercent = Annotated[Decimal, BeforeValidator(_discount_percent)]


class Discount(Strict):
    percent: DiscountPercent | None = None
    amount: Decimal | None = Field(default=None, gt=0)
    ttl: Duration = timedelta(hours=48)
    prefix: str = Field(default="CF", pattern=r"^[A-Z0-9]{0,10}$")

    @model_validator(mode="after")
    def _one(self) -> Discount:
        if (self.percent is None) == (self.amount is None):
            raise ValueError("give exactly one of 'percent' or 'amount'")
        return self


class Escalation(Strict):
    """Run the step only if the previous message was not ``unless``-ed within ``within``."""

    unless: Literal["delivered", "opened", "clicked"]
    within: Duration


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
    id: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    weight: int = Field(default=1, ge=0)
    template: TemplateRef


class Step(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    #: Delay from the cart's last activity (the abandonment anchor).
    after: Duration | None = None
    #: Delay from the previous step's send (or its skip).
    after_previous: Duration | None = None
    channel: Channel
    fallback: tuple[Channel, ...] = ()
    window: Windows | None = None
    quiet_hours: QuietHours | None = None
    when: str | None = None
    discount: Discount | None = None
    template: TemplateRef | None = None
    variants: tuple[Variant, ...] = ()
    escalate: Escalation | None = None
    #: An SMS that needs more parts than this is a lint warning (and refused at send).
    max_sms_parts: int = Field(default=3, ge=1, le=10)
    #: What a frequency cap does to this step: wait for room, or skip.
    on_cap: Literal["defer", "skip"] = "defer"

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
    scenario: str = Field(pattern=r"^[a-z0-9_]+$")
    description: str = ""
    enabled: bool = True
    #: Higher first; a cart is in at most one journey at a time.
    priority: int = 0
    trigger: Trigger = Trigger()
    audience: Audience = Audience()
    #: Stable control group that gets nothing, for measuring lift.
    holdout: Percent = 0.0
    #: The same shopper does not re-enter this scenario within this time.
    reentry: Duration = timedelta(days=7)
    exit_on: tuple[
        Literal["order.completed", "cart.emptied", "unsubscribed", "cart.updated"], ...
    ] = (
        "order.completed",
        "cart.emptied",
        "unsubscribed",
    )
    #: A journey ends this long after abandonment, whatever is left.
    expires: Duration = timedelta(days=7)
    #: A step deferred by caps longer than this is skipped.
    max_staleness: Duration = timedelta(hours=24)
    quiet_hours: QuietHours | None = None
    #: The locales this scenario's templates exist in (default: ``defaults.locales``);
    #: the first is its default — shoppers in another locale get that one.
    locales: tuple[str, ...] = ()
    steps: tuple[Step, ...] = Field(min_length=1)

    def locale_for(self, shopper_locale: str | None, default_locale: str) -> str:
        """The locale a shopper gets in this scenario."""
        if not self.locales:
            return shopper_locale or default_locale
        return shopper_locale if shopper_locale in self.locales else self.locales[0]

    def default_locale(self, default_locale: str) -> str:
        return self.locales[0] if self.locales else default_locale


class ProviderSettings(BaseModel):
    """``type`` picks the provider; the rest are its own settings, which it validates."""

    model_config = ConfigDict(extra="allow", frozen=True)
    type: str

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Settings(Strict):
    version: Literal[1] = 1
    defaults: Defaults = Defaults()
    caps: tuple[CapRule, ...] = ()
    segments: dict[str, str] = Field(default_factory=dict)
    providers: dict[Channel, ProviderSettings] = Field(default_factory=dict)
    include: tuple[str, ...] = ("scenarios/*.yaml",)
    templates: str = "templates"
    scenarios: tuple[Scenario, ...] = ()
