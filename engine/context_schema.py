"""The context, declared once: every name conditions, segments and templates see, with its
attributes, their types and one line each.

The same declaration

* builds the context at run time (:func:`view`, called by
  :func:`cartflow.engine.context.build_context`):
  every declared attribute is there and nothing else leaks in;
* checks every dotted path when the configuration loads (:mod:`cartflow.engine.paths`):
  ``cart.valeu`` is an error with "did you mean 'value'?";
* writes the table of names in docs/scenarios.md (:func:`names_table`).

A record marked ``open`` holds data the shop sends or adds later (an item's own fields,
a visitor's features): what it declares is checked and provided, anything else is
allowed and not guessed at — reading something absent is an evaluation error at run
time, which stops the message (fail closed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cartflow.engine.context_types import KIND_ATTRIBUTES as KIND_ATTRIBUTES
from cartflow.engine.context_types import Kind as Kind
from cartflow.engine.context_types import Type as Type
from cartflow.engine.context_types import _value
from cartflow.engine.context_types import flag as flag
from cartflow.engine.context_types import number as number
from cartflow.engine.context_types import record as record
from cartflow.engine.context_types import text as text
from cartflow.engine.context_types import time as time

ITEM = record(
    "one line of the cart, as the shop sent it (the shop's own fields are there too)",
    open=True,
    sku=text("the product's SKU"),
    name=text("the product's name"),
    price=number("the price of one"),
    quantity=number("how many"),
    url=text("the product's page", nullable=True),
    image=text("the product's picture", nullable=True),
    category=text("the product's category", nullable=True),
)

CART = record(
    "the cart",
    id=text("the shop's cart id"),
    value=number("what the cart is worth, in its currency"),
    currency=text("ISO 4217 code, e.g. RUB"),
    item_count=number("how many items (quantities added up)"),
    items=Type(Kind.LIST, "the lines of the cart", element=ITEM),
    url=text("the link back to the cart", nullable=True),
    status=text("active, abandoned, ordered or emptied (a browse cart: or superseded, closed)"),
    created_at=time("when the cart was first seen"),
    checkout_step=text("the last checkout step reached, e.g. payment", nullable=True),
    kind=text(
        "cart, or browse: the products a shopper viewed without carting any "
        "(a browse.abandoned journey; value adds up their prices)"
    ),
)
PRODUCT = record(
    "a product the shopper looked at or carted, newest first",
    sku=text("the product's SKU"),
    name=text("the product's name"),
    price=number("the price of one, if the shop sent it", nullable=True),
    currency=text("the price's currency", nullable=True),
    url=text("the product's page", nullable=True),
    image=text("the product's picture", nullable=True),
    category=text("the product's category", nullable=True),
    stock=number("how many are left, only when the shop sent it", nullable=True),
    seen_at=time("when the shopper last viewed (or carted) it"),
)
VISITOR = record(
    "what the shopper did (features the shop adds later are there too)",
    open=True,
    sessions=number("visits so far"),
    sessions_7d=number("visits that started in the last 7 days (UTC days, today included)"),
    sessions_30d=number("visits that started in the last 30 days (UTC days, today included)"),
    page_views_session=number("pages viewed in the latest visit"),
    product_views_session=number("products viewed in the latest visit"),
    page_views_7d=number("pages viewed in the last 7 days"),
    product_views_7d=number("products viewed in the last 7 days"),
    top_category=text("the category viewed most in the last 30 days", nullable=True),
    top_category_share=number("its share of the product views with a category (0 to 1)"),
    cart_adds_7d=number("cart lines added (or more of one) in the last 7 days"),
    cart_removals_7d=number("cart lines removed (or fewer of one) in the last 7 days"),
    cart_returns_7d=number("visits back to a cart left in an earlier visit, last 7 days"),
    checkout_reached=flag("whether the shopper ever started a checkout"),
    checkout_step=text("the last checkout step reached (checkout.step)", nullable=True),
    device=text("the latest visit's device (session.started)", nullable=True),
    first_device=text("the first visit's device", nullable=True),
    source=text("the latest visit's traffic source", nullable=True),
    first_source=text("the first visit's traffic source", nullable=True),
    hours_since_last_visit=number("hours from the last activity to now", nullable=True),
    returned_via=text(
        "the channel of the latest message that brought them back (clicked; push opened)",
        nullable=True,
    ),
    last_seen_at=time("the last activity", nullable=True),
    is_known=flag("whether the shop knows who this is (a customer id)"),
    recently_viewed=Type(
        Kind.LIST, "products viewed, newest first, not in the cart", element=PRODUCT
    ),
    recently_carted=Type(
        Kind.LIST, "products carted before, newest first, not in the cart", element=PRODUCT
    ),
)
#: The visitor.* fields read from the kept features (:mod:`cartflow.engine.features`).
VISITOR_FEATURES = tuple(
    n
    for n in VISITOR.fields
    if n not in ("last_seen_at", "is_known", "recently_viewed", "recently_carted")
)
CUSTOMER = record(
    "the shopper as a customer",
    id=text("cartflow's profile id"),
    first_name=text("the first name, if the shop sent one", nullable=True),
    locale=text("the language to write in, e.g. uk"),
    orders_30d=number("orders in the last 30 days (UTC days, today included)"),
    orders_total=number("orders ever"),
    lifetime_value=number("what the orders added up to"),
    average_order_value=number("lifetime value / orders (0 without orders)"),
    discount_orders=number("orders placed with a discount code"),
    discount_share=number("discount_orders / orders_total (0 without orders)"),
    first_order_at=time("the first order (the shop's history included)", nullable=True),
    last_order_at=time("the latest order (the shop's history included)", nullable=True),
)
#: The customer.* fields read from the kept features.
CUSTOMER_FEATURES = tuple(n for n in CUSTOMER.fields if n not in ("id", "first_name", "locale"))
SESSION = record(
    "the shopper's latest visit (the one started last)",
    id=text("the shop's session id", nullable=True),
    started_at=time("when it started", nullable=True),
    last_seen_at=time("its last activity", nullable=True),
    count=number("visits so far (as visitor.sessions)"),
)
JOURNEY = record(
    "the journey (empty fields before it starts: in a trigger or an exclusion)",
    scenario=text("the scenario's id", nullable=True),
    step=number("the index of the current step, from 0", nullable=True),
    group=text("treatment or holdout", nullable=True),
    started_at=time("when it started", nullable=True),
    sent=number("messages sent so far"),
)
NOW = time("the recipient's local time")
SEGMENTS = _value(Kind.NAMES, 'the segments the visitor is in: "vip" in segments')

#: What conditions (triggers, exclusions, step conditions) see.
CONDITION_NAMES: Mapping[str, Type] = {
    "cart": CART,
    "visitor": VISITOR,
    "customer": CUSTOMER,
    "session": SESSION,
    "journey": JOURNEY,
    "now": NOW,
    "segments": SEGMENTS,
}
#: What a segment definition sees: all but the segments themselves.
SEGMENT_NAMES: Mapping[str, Type] = {k: v for k, v in CONDITION_NAMES.items() if k != "segments"}

DISCOUNT = record(
    "the step's discount code; only on a step with 'discount:'",
    nullable=True,
    code=text("the code to type at checkout"),
    percent=number("percent off (empty for an amount)", nullable=True),
    amount=number("amount off (empty for a percent)", nullable=True),
    currency=text("the amount's currency", nullable=True),
    expires_at=time("when the code stops working"),
)
STEP = record(
    "the step being sent",
    id=text("the step's id"),
    channel=text("the channel it goes on: push, sms, email or messenger"),
)
LINKS = record(
    "links to put in the message (through cartflow's click tracking when it is set up)",
    cart=text("back to the cart", nullable=True),
)
UNSUBSCRIBE_URL = text(
    "this message's one-click unsubscribe link (needs CARTFLOW_PUBLIC_URL and "
    "CARTFLOW_LINK_SECRET: without them a template using it is not sent)"
)
LOCALE = text("the locale the template is written in, e.g. uk")

#: What templates see: the condition names and the message's own.
TEMPLATE_NAMES: Mapping[str, Type] = {
    **CONDITION_NAMES,
    "discount": DISCOUNT,
    "step": STEP,
    "links": LINKS,
    "unsubscribe_url": UNSUBSCRIBE_URL,
    "locale": LOCALE,
}
#: Names only a template has (the rest are the conditions').
MESSAGE_NAMES = tuple(name for name in TEMPLATE_NAMES if name not in CONDITION_NAMES)


class ContextMismatch(AssertionError):
    """The engine built a part of the context that differs from its declaration (a bug)."""


def view(
    declared: Type, values: Mapping[str, Any], extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``values`` as the record ``declared`` says: exactly its attributes, then, for an
    open record, ``extra`` (the shop's own) without names that are declared or start
    with ``_``. Raises :class:`ContextMismatch` when ``values`` has other names."""
    if set(values) != set(declared.fields):
        missing = sorted(set(declared.fields) - set(values))
        undeclared = sorted(set(values) - set(declared.fields))
        raise ContextMismatch(f"missing {missing}, undeclared {undeclared}")
    out = {k: v for k, v in (extra or {}).items() if declared.open and not k.startswith("_")}
    out.update(values)
    return out


def _attributes(t: Type) -> str:
    parts = []
    for name, inner in t.fields.items():
        shown = f"`{name}`"
        if inner.kind is Kind.LIST and inner.element is not None:
            shown += " (" + ", ".join(inner.element.fields) + ", …)"
        parts.append(shown)
    if t.open:
        parts.append("and the shop's own")
    return ", ".join(parts)


def names_table() -> str:
    """The table of names in docs/scenarios.md (a test keeps them equal)."""
    lines = ["| name | what | attributes |", "|---|---|---|"]
    for name, t in TEMPLATE_NAMES.items():
        where = " (templates only)" if name in MESSAGE_NAMES else ""
        lines.append(f"| `{name}` | {t.description}{where} | {_attributes(t) or t.kind} |")
    return "\n".join(lines) + "\n"


__all__ = [
    "CONDITION_NAMES",
    "SEGMENT_NAMES",
    "TEMPLATE_NAMES",
    "ContextMismatch",
    "Kind",
    "Type",
    "names_table",
    "view",
]
