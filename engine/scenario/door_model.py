"""``doors:`` in ``scenarios.yaml``: generic JSON doors, one per platform without a native
door (InSales, 1C-Bitrix, Tilda …), each served at ``POST /v1/doors/<name>`` (docs/doors.md).

A door says where in the platform's payload each native field is: a JMESPath expression
(https://jmespath.org) per field, in the shape of the native event itself::

    doors:
      insales:
        secret: ${CARTFLOW_DOOR_INSALES_SECRET}     # whsec_…, Standard Webhooks
        type_from: topic                            # what says which payload this is
        payloads:
          orders/update:
            type: order.completed
            customer_id: client.id
            order: {id: id, total: total_price, currency: "'RUB'"}

Expressions are compiled when the file is loaded, so a typo is a ``file:line:column``
problem, never a webhook refused later. ``'RUB'`` (quoted inside the YAML string) is a
constant.
"""

from __future__ import annotations

import base64
import binascii
import functools
from typing import Annotated, Any

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult
from pydantic import (
    AfterValidator,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from cartflow.engine.channels import Channel
from cartflow.engine.events import EventType
from cartflow.engine.scenario.value_types import Strict

#: A door's name: its URL is ``/v1/doors/<name>``, its events' ids start with it.
DOOR_NAME = r"^[a-z0-9][a-z0-9_-]{0,31}$"
DoorName = Annotated[str, StringConstraints(pattern=DOOR_NAME)]
#: What an editor accepts as ``secret``: one secret or a list.
SECRET_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
}


@functools.lru_cache(maxsize=4096)
def compiled(expression: str) -> ParsedResult:
    """The compiled JMESPath expression (each is compiled once)."""
    return jmespath.compile(expression)


def _expression(value: str) -> str:
    try:
        compiled(value)
    except JMESPathError as exc:
        where = getattr(exc, "lex_position", None)
        at = f" at character {where + 1}" if isinstance(where, int) else ""
        reason = str(getattr(exc, "msg", "") or type(exc).__name__)
        raise ValueError(f"not a JMESPath expression{at}: {reason}") from None
    return value


#: Where a value is in the payload: a JMESPath expression, checked at load.
Path = Annotated[
    str,
    Field(min_length=1, max_length=1000, examples=["client.email", "lines[0].sku"]),
    AfterValidator(_expression),
]


class ItemPaths(Strict):
    """The cart's items: ``each`` finds the list; the rest are read from each element."""

    each: Path = Field(description="The list of items in the payload.", examples=["lines"])
    sku: Path = Field(description="The product id, in one item.", examples=["variant_id"])
    price: Path = Field(description="The price of one, in one item.", examples=["sale_price"])
    name: Path | None = Field(default=None, description="The product name.")
    quantity: Path | None = Field(default=None, description="How many (default 1).")
    url: Path | None = Field(default=None, description="The product page.")
    image: Path | None = Field(default=None, description="A picture of the product.")
    category: Path | None = Field(default=None, description="The product's category.")


class CartPaths(Strict):
    """Where the cart is: its id, currency, link and items."""

    id: Path | None = Field(default=None, description="The cart id.", examples=["cart.id"])
    currency: Path | None = Field(default=None, description="ISO 4217 code.", examples=["'RUB'"])
    url: Path | None = Field(default=None, description="The link back to the cart.")
    items: ItemPaths | None = Field(default=None, description="The cart's items.")


class ContactPaths(Strict):
    """Where the shopper's contact details are."""

    email: Path | None = Field(default=None, description="Email address.")
    phone: Path | None = Field(default=None, description="Phone number.")
    push_token: Path | None = Field(default=None, description="Push device token.")
    locale: Path | None = Field(default=None, description="Language, e.g. ru.")
    timezone: Path | None = Field(default=None, description="IANA time zone.")
    first_name: Path | None = Field(default=None, description="First name.")
    messenger: Path | None = Field(default=None, description="Messenger chat id.")


class ConsentPaths(Strict):
    """Where the shopper's consent per channel is: each must find true or false."""

    email: Path | None = Field(default=None, description="Email consent (true/false).")
    sms: Path | None = Field(default=None, description="SMS consent (true/false).")
    push: Path | None = Field(default=None, description="Push consent (true/false).")
    messenger: Path | None = Field(default=None, description="Messenger consent (true/false).")


class OrderPaths(Strict):
    """Where the order is: its id, the cart it paid for, total, currency, discount code."""

    id: Path = Field(description="The order id.", examples=["id"])
    cart_id: Path | None = Field(default=None, description="The cart it paid for.")
    total: Path | None = Field(default=None, description="What was paid.")
    currency: Path | None = Field(default=None, description="ISO 4217 code of total.")
    discount_code: Path | None = Field(default=None, description="The code used.")


class PayloadMap(Strict):
    """One kind of payload as one native event: its type and where each field is."""

    type: EventType = Field(description="The native event it becomes.", examples=["cart.updated"])
    at: Path | None = Field(default=None, description="When it happened (with an offset).")
    anonymous_id: Path | None = Field(default=None, description="The visitor's id.")
    customer_id: Path | None = Field(default=None, description="The customer's id.")
    session_id: Path | None = Field(default=None, description="The visit's id.")
    cart: CartPaths | None = Field(default=None, description="Where the cart is.")
    contact: ContactPaths | None = Field(default=None, description="Where the contact is.")
    consent: ConsentPaths | None = Field(default=None, description="Where the consent is.")
    order: OrderPaths | None = Field(default=None, description="Where the order is.")
    delivery_id: Path | None = Field(
        default=None, description="The message an engagement event is about (message.*)."
    )

    @model_validator(mode="after")
    def _complete(self) -> PayloadMap:
        if not (self.anonymous_id or self.customer_id):
            raise ValueError("say where anonymous_id or customer_id is (or both)")
        if self.type == "cart.updated" and (
            self.cart is None or self.cart.id is None or self.cart.items is None
        ):
            raise ValueError("a cart.updated needs cart.id and cart.items")
        if self.type == "order.completed" and self.order is None:
            raise ValueError("an order.completed needs order.id")
        if self.type.startswith("message.") and self.delivery_id is None:
            raise ValueError(f"a {self.type} needs delivery_id")
        if self.type == "consent.updated" and (
            self.consent is None or not self.consent.model_dump(exclude_none=True)
        ):
            raise ValueError("a consent.updated needs at least one consent channel")
        return self


def _secrets(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError("expected a whsec_… secret or a list of them")
    found = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue  # ${VAR:-} left empty: the door is off
        raw = text.removeprefix("whsec_")
        try:
            key = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if not text.startswith("whsec_") or not key:
            raise ValueError("a secret is whsec_ followed by base64 (Standard Webhooks)")
        found.append(text)
    return tuple(found)


class DoorSettings(Strict):
    """A generic JSON door: its secret, and how its payloads become native events."""

    secret: Annotated[
        tuple[str, ...],
        WithJsonSchema(SECRET_SCHEMA),
        PlainSerializer(lambda secrets: ["***"] * len(secrets), return_type=list),  # never shown
    ] = Field(
        default=(),
        description="whsec_… secret(s) the platform signs with (Standard Webhooks); "
        "empty: the door is off.",
        examples=["${CARTFLOW_DOOR_INSALES_SECRET}"],
        repr=False,
    )
    type_from: Path = Field(
        description="Where the payload says what it is; its value picks a payload below.",
        examples=["topic", "'order'"],
    )
    payloads: dict[str, PayloadMap] = Field(
        min_length=1,
        description="By the value type_from finds: the native event that payload becomes.",
    )

    @field_validator("secret", mode="before")
    @classmethod
    def _secret(cls, value: Any) -> tuple[str, ...]:
        return _secrets(value)


#: An identify trait's name, as the shop's analytics sends it (a top-level trait).
TraitName = Annotated[str, Field(pattern=r"^[A-Za-z_$][A-Za-z0-9_$.-]{0,99}$")]


class SegmentDoor(Strict):
    """The Segment-compatible door (``/v1/segment/…``; its write keys come from
    ``CARTFLOW_SEGMENT_WRITE_KEYS``, never from this file)."""

    consent_traits: dict[Channel, TraitName] = Field(
        default_factory=dict,
        description="Which identify traits carry consent, by channel (none: identify never "
        "gives consent). Replaces CARTFLOW_SEGMENT_CONSENT_TRAITS when set.",
        examples=[{"email": "email_opt_in", "sms": "sms_opt_in"}],
    )
