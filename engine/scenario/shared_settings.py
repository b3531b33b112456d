"""Settings of ``scenarios.yaml`` that every scenario shares, apart from the scenarios
themselves (:class:`~cartflow.engine.scenario.model.Settings` gathers them): the defaults, the
frequency caps and who sends each channel."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cartflow.engine.channels import Channel
from cartflow.engine.retry import DEFAULT_RETRY, RetryPolicy
from cartflow.engine.scenario.value_types import Duration, QuietHours, Strict
from cartflow.engine.timing import DEFAULT_QUIET_HOURS


class Defaults(Strict):
    """What holds for every scenario unless it says otherwise."""

    timezone: str = Field(
        default="UTC",
        description="Time zone when neither the profile nor the phone number tells (IANA).",
        examples=["Europe/Moscow", "Europe/Kyiv"],
    )
    locale: str = Field(
        default="en", description="The shop's language: the templates' fallback.", examples=["ru"]
    )
    locales: tuple[str, ...] = Field(
        default=(),
        description="Locales every template must exist in (validate checks).",
        examples=[["ru", "uk", "en"]],
    )
    currency: str = Field(
        default="USD",
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 code of amounts in the configuration.",
        examples=["RUB"],
    )
    quiet_hours: QuietHours = Field(
        default=(DEFAULT_QUIET_HOURS,),
        description="Never send on the quiet channels then, recipient's local time; "
        "21:00-09:00 always applies.",
        examples=["21:00-09:00"],
    )
    quiet_channels: tuple[Channel, ...] = Field(
        default=("push", "sms", "messenger"),
        description="Channels quiet hours apply to (email has none by default).",
        examples=[["push", "sms", "messenger"]],
    )
    phone_region: str | None = Field(
        default=None,
        pattern=r"^[A-Z]{2}$",
        description="Country (ISO 3166 alpha-2) of phone numbers sent without a country "
        "code; unset: such numbers are refused.",
        examples=["RU"],
    )
    browsing_grace: Duration = Field(
        default=timedelta(minutes=10),
        description='A visitor seen this recently is "still browsing": reminders wait.',
        examples=["10m"],
    )

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

    channel: Literal["any", Channel] = Field(
        default="any", description="The channel counted, or any.", examples=["any", "sms"]
    )
    max: int = Field(ge=1, description="Most messages within 'per'.", examples=[3])
    per: Duration = Field(description="The rolling period.", examples=["7d", "24h"])


class Breaker(Strict):
    """When a provider counts as failing: its sends are held, not burned."""

    failures: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Answers saying it is not working (5xx, 429, timeouts) that open it.",
        examples=[5],
    )
    within: Duration = Field(
        default=timedelta(minutes=1), description="... counted over this long.", examples=["1m"]
    )
    open_for: Duration = Field(
        default=timedelta(seconds=30),
        description="How long steps skip this provider (fallback, or wait) once it opens.",
        examples=["30s"],
    )


class ProviderSettings(BaseModel):
    """``type`` picks the provider; the rest are its own settings, which it validates."""

    model_config = ConfigDict(extra="allow", frozen=True)
    type: str = Field(
        description="The provider (its other settings are its own).", examples=["console"]
    )
    retry: RetryPolicy = Field(
        default=DEFAULT_RETRY,
        description="When a send this provider refused for now is tried again.",
        examples=[{"attempts": 5, "wait": "1m", "max_wait": "30m"}],
    )

    rate_limit: str | None = Field(
        default=None,
        pattern=r"^\s*[1-9][0-9]{0,6}\s*/\s*(s|m)\s*$",
        description="At most this many sends per second or minute, across every worker.",
        examples=["20/s", "600/m"],
    )
    breaker: Breaker = Field(
        default=Breaker(), description="The circuit breaker: when the provider counts as failing."
    )

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def rate(self) -> tuple[int, int] | None:
        """``rate_limit`` as (sends, window in seconds)."""
        if self.rate_limit is None:
            return None
        count, _, unit = self.rate_limit.replace(" ", "").partition("/")
        return int(count), 1 if unit == "s" else 60


class Replies(Strict):
    """What happens to a shopper's answer that is no keyword ("can I pay by card?"):
    handed to the shop's support, and the shopper's reminders wait for them."""

    webhook: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/]+\S*$",
        description="Where each reply is POSTed as JSON (signed the Standard Webhooks way "
        "when 'secret' is set).",
        examples=["https://support.shop.example/cartflow/replies"],
    )
    secret: str | None = Field(
        default=None,
        pattern=r"^whsec_[A-Za-z0-9+/=]{16,}$",
        description="The Standard Webhooks secret (whsec_…) the webhook is signed with; "
        "give it from the environment.",
        examples=["${SUPPORT_WEBHOOK_SECRET}"],
    )
    email: str | None = Field(
        default=None,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="The support address each reply is sent to, through the email provider.",
        examples=["support@shop.example"],
    )
    pause: Duration = Field(
        default=timedelta(hours=24),
        description="How long the shopper's reminders wait for support to answer "
        "(POST /v1/replies/{id}/handled ends the wait sooner).",
        examples=["24h"],
    )

    def forwards(self) -> bool:
        """Whether replies go anywhere (without a webhook or an address, nothing waits)."""
        return bool(self.webhook or self.email)
