"""The native event (a contract: every type, field and limit in docs/events.md) and its
validation.

``POST /v1/events`` and ``cartflow simulate`` both take these objects. Unknown fields are
kept (``extra="allow"``), never rejected, so a shop can send more than we understand today.
Validation errors become a list of ``{"loc": "events.3.cart.items.0.price", "msg": ...}``
so a client sees which field is wrong and why. Links (``cart.url``, ``items[].url``,
``items[].image``) end up in messages, so only absolute ``http(s)`` URLs are accepted:
never ``javascript:``, ``data:`` or a relative path. The rules every value follows in
any field (links, NULs, non-finite numbers, nesting) are in
:mod:`cartflow.engine.event_values`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

# An ``X as X`` import re-exports a name defined here before (still imported from here).
from cartflow.engine.channels import CHANNELS as CHANNELS
from cartflow.engine.channels import Channel
from cartflow.engine.contact_points import check_email, check_phone
from cartflow.engine.errors import EventError as EventError
from cartflow.engine.event_parts import Checkout, CustomerFigures, Product, Visit
from cartflow.engine.event_values import MAX_DEPTH as MAX_DEPTH
from cartflow.engine.event_values import MAX_URL_LENGTH as MAX_URL_LENGTH
from cartflow.engine.event_values import URL_SCHEMES as URL_SCHEMES
from cartflow.engine.event_values import WEB_URL_PATTERN as WEB_URL_PATTERN
from cartflow.engine.event_values import Money as Money
from cartflow.engine.event_values import ShortText as ShortText
from cartflow.engine.event_values import WebUrl as WebUrl
from cartflow.engine.event_values import aware_utc, find_bad_text

EventType = Literal[
    "session.started",
    "page.viewed",
    "product.viewed",
    "cart.updated",
    "checkout.started",
    "order.completed",
    "customer.identified",
    "customer.updated",
    "consent.updated",
    "message.opened",
    "message.clicked",
]
#: Every event type cartflow understands.
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
#: The largest cart value stored (prices × quantities), in the cart's currency.
MAX_CART_VALUE = Decimal(10) ** 13
#: The most events one request may carry.
MAX_BATCH = 1000


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)


class CartItem(_Open):
    """One line of a cart: ``price`` is for one, a decimal amount in the cart's currency."""

    sku: ShortText
    name: str = Field(default="", max_length=500)
    price: Money
    quantity: int = Field(default=1, ge=1, le=100_000)
    url: WebUrl | None = None
    image: WebUrl | None = None
    category: str | None = None


class Cart(_Open):
    """The whole cart as it is now, never a difference; empty ``items`` means emptied."""

    id: ShortText
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    url: WebUrl | None = None
    items: list[CartItem] = Field(default_factory=list, max_length=500)

    @property
    def value(self) -> Decimal:
        return sum((item.price * item.quantity for item in self.items), Decimal(0))

    @model_validator(mode="after")
    def _bounded(self) -> Cart:
        if self.value >= MAX_CART_VALUE:
            raise ValueError(f"cart value {self.value} is beyond {MAX_CART_VALUE:,}; check prices")
        return self


class Contact(_Open):
    """How to reach the shopper, and in which language and time zone."""

    email: str | None = Field(
        default=None, max_length=320, json_schema_extra={"pattern": r"^[^@\s]+@[^@\s]+\.[^@\s]+$"}
    )
    #: The country (ISO 3166 alpha-2) a ``phone`` without a country code belongs to.
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    phone: str | None = Field(default=None, max_length=32)
    push_token: str | None = Field(default=None, max_length=4096)
    messenger: str | None = Field(default=None, max_length=21, pattern=r"^-?[0-9]{1,20}$")
    locale: str | None = Field(default=None, max_length=35)
    timezone: str | None = Field(default=None, max_length=64)
    first_name: str | None = Field(default=None, max_length=200)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as 'Europe/Moscow'"
            ) from None
        return value

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return None if value is None else check_email(value)

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None, info: ValidationInfo) -> str | None:
        region = info.data.get("country") or (info.context or {}).get("phone_region")
        return None if value is None else check_phone(value, region)


class Order(_Open):
    """An order placed; ``cart_id`` names the cart it paid for."""

    id: ShortText
    cart_id: ShortText | None = None
    total: Money | None = None
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    discount_code: str | None = None


def _needs(event_type: str, field: str, schema: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema: an event of ``event_type`` has ``field``, matching ``schema``."""
    return {
        "if": {"properties": {"type": {"const": event_type}}, "required": ["type"]},
        "then": {"required": [field], "properties": {field: schema}},
    }


#: The rules of :meth:`Event._shape`, in JSON Schema for ``/openapi.json``.
EVENT_RULES: dict[str, Any] = {
    "anyOf": [
        {"required": [key], "properties": {key: {"type": "string", "minLength": 1}}}
        for key in ("anonymous_id", "customer_id")
    ],
    "allOf": [
        _needs("cart.updated", "cart", {"type": "object"}),
        _needs("order.completed", "order", {"type": "object"}),
        _needs("consent.updated", "consent", {"type": "object", "minProperties": 1}),
        _needs("message.opened", "delivery_id", {"type": "string", "minLength": 1}),
        _needs("message.clicked", "delivery_id", {"type": "string", "minLength": 1}),
        _needs("customer.updated", "customer", {"type": "object", "minProperties": 1}),
    ],
}


class Event(_Open):
    """One native event. ``at`` must carry a time zone offset."""

    model_config = ConfigDict(json_schema_extra=EVENT_RULES)

    id: ShortText
    type: EventType
    at: datetime | None = None
    anonymous_id: str | None = Field(default=None, max_length=200)
    customer_id: str | None = Field(default=None, max_length=200)
    session_id: str | None = Field(default=None, max_length=200)
    cart: Cart | None = None
    contact: Contact | None = None
    consent: dict[Channel, bool] | None = None
    order: Order | None = None
    #: The message an engagement event is about (``message.opened``/``message.clicked``).
    delivery_id: str | None = Field(default=None, min_length=1, max_length=200)
    #: The product looked at (``product.viewed``).
    product: Product | None = None
    #: The checkout step reached (``checkout.started``).
    checkout: Checkout | None = None
    #: Where the visit came from and on what device (``session.started``).
    session: Visit | None = None
    #: Lifetime figures from the shop (``customer.updated``).
    customer: CustomerFigures | None = None

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return aware_utc(value)

    @model_validator(mode="after")
    def _shape(self) -> Event:
        if not (self.anonymous_id or self.customer_id):
            raise ValueError("an event needs anonymous_id or customer_id (or both)")
        if self.type == "cart.updated" and self.cart is None:
            raise ValueError("cart.updated needs a 'cart' object with 'id' and 'items'")
        if self.type == "order.completed" and self.order is None:
            raise ValueError("order.completed needs an 'order' object with at least 'id'")
        if self.type == "consent.updated" and not self.consent:
            raise ValueError("consent.updated needs a 'consent' object, e.g. {\"sms\": false}")
        if self.type == "customer.updated" and self.customer is None:
            raise ValueError(
                "customer.updated needs a 'customer' object, e.g. {\"orders_count\": 3}"
            )
        if self.type.startswith("message.") and not self.delivery_id:
            raise ValueError(
                f"{self.type} needs 'delivery_id': the cartflow_delivery_id the message carried"
            )
        return self


class Batch(BaseModel):
    """Up to 1000 events in one request: all of them are stored, or none."""

    # unknown fields next to "events" are kept out of the way, never rejected (docs/events.md)
    model_config = ConfigDict(extra="ignore")
    events: list[Event] = Field(min_length=1, max_length=MAX_BATCH)


def parse_events(body: Any, *, phone_region: str | None = None) -> list[Event]:
    """Validate one event or ``{"events": [...]}`` and return the events. ``phone_region``:
    the country of phone numbers given without one (settings ``defaults.phone_region``).

    Raises :class:`EventError` with every problem found, each with its field path.
    """
    if isinstance(body, dict) and "events" in body and "type" not in body:
        prefix = ""
        model: type[BaseModel] = Batch
    elif isinstance(body, dict):
        prefix = ""
        model = Event
    else:
        raise EventError(
            [{"loc": "body", "msg": 'expected a JSON object: one event or {"events": [...]}'}]
        )
    bad = find_bad_text(body, "", 0)
    if bad is not None:
        raise EventError([{"loc": bad[0] or "body", "msg": bad[1]}])
    try:
        parsed = model.model_validate(body, context={"phone_region": phone_region})
    except ValidationError as exc:
        raise EventError([_error(prefix, err) for err in exc.errors()]) from None
    if isinstance(parsed, Batch):
        # The same id twice in one batch is idempotency at work, not an error.
        return parsed.events
    assert isinstance(parsed, Event)
    return [parsed]


def _error(prefix: str, err: Any) -> dict[str, str]:
    loc = ".".join(str(part) for part in err["loc"] if part not in ("function-after",))
    msg = str(err["msg"])
    msg = msg.removeprefix("Value error, ")
    return {"loc": (prefix + loc) or "body", "msg": msg}
