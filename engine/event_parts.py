"""Parts of the native event that describe behaviour rather than a cart (a contract, with
docs/events.md): the product a shopper looked at, the checkout step they reached, where a
visit came from, and a customer's lifetime figures from before cartflow.

Every part is optional on its event, so a shop that sends less keeps working; what a part
carries feeds the features and segments (docs/scenarios.md) and the templates' "recently
viewed" lists.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cartflow.engine.event_values import Money, ShortText, WebUrl, aware_utc

#: Devices a visit may report (anything else is refused with this list).
DEVICES = ("desktop", "mobile", "tablet", "app", "other")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)


class Product(_Open):
    """The product of a ``product.viewed`` event. ``price`` is for one, in ``currency``;
    ``stock`` is how many are left, when the shop wants honest scarcity in messages."""

    sku: ShortText
    name: str = Field(default="", max_length=500)
    price: Money | None = None
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    url: WebUrl | None = None
    image: WebUrl | None = None
    category: str | None = Field(default=None, max_length=200)
    stock: int | None = Field(default=None, ge=0, le=10**9)


class Checkout(_Open):
    """Where in checkout the shopper is (``checkout.started``, sent again at each step):
    ``step`` is the shop's name for it (``contact``, ``shipping``, ``payment``…)."""

    step: ShortText


class Visit(_Open):
    """Where a visit (``session.started``) came from and on what device. ``source`` is the
    traffic source (``utm_source``, a search engine, ``email``, ``push``, ``direct``…)."""

    device: str | None = None
    source: str | None = Field(default=None, max_length=200)
    medium: str | None = Field(default=None, max_length=200)
    campaign: str | None = Field(default=None, max_length=200)

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.lower()
        if value not in DEVICES:
            raise ValueError(f"unknown device {value!r}; use one of {', '.join(DEVICES)}")
        return value


class CustomerFigures(_Open):
    """A customer's lifetime figures as the shop knows them (``customer.updated``): history
    from before cartflow, so ``returning``, ``vip`` and ``discount_hunter`` are right from
    the first day. Orders cartflow sees afterwards are added to them."""

    orders_count: int | None = Field(default=None, ge=0, le=10**9)
    total_spent: Money | None = None
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    discount_orders_count: int | None = Field(default=None, ge=0, le=10**9)
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None

    @field_validator("first_order_at", "last_order_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return aware_utc(value)
