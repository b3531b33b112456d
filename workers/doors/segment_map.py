"""Segment spec messages (``track``, ``identify``, ``page``) as native events.

The e-commerce v2 events cartflow reads (docs/doors.md, Segment):

* ``Product Viewed`` → ``product.viewed`` with ``product``;
* ``Product Added`` / ``Product Removed`` → ``cart.updated``: Segment sends differences, so
  the door applies them to the cart's running lines (:class:`CartBook`) and sends the
  whole snapshot; ``Cart Viewed`` with ``products`` replaces the lines;
* ``Checkout Started`` / ``Checkout Step Viewed`` → ``checkout.started`` (the step as
  ``checkout.step``), remembering ``checkout_id`` / ``order_id`` for the cart;
* ``Order Completed`` → ``order.completed``, its cart by ``cart_id`` when sent, else by
  the checkout or order id remembered at ``Checkout Started``;
* ``identify`` → ``customer.identified`` (contact from the traits; consent only from the
  traits configured as consent — never guessed); ``page`` → ``page.viewed``.

Other track events are skipped (answered as ignored). A message that cannot be mapped
raises :class:`~cartflow.workers.doors.drafts.Unmappable` naming its payload path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from cartflow.workers.doors.drafts import Draft, Unmappable

#: The contact fields read from identify traits: trait name → native contact field.
CONTACT_TRAITS = {
    "email": "email",
    "phone": "phone",
    "first_name": "first_name",
    "firstName": "first_name",
    "timezone": "timezone",
}
#: Consent values a trait may hold (anything else is refused: consent is never guessed).
YES = (True, "true", "yes", "subscribed", "opted_in", "granted", 1)
NO = (False, "false", "no", "unsubscribed", "opted_out", "denied", 0)


@dataclass
class RunningCart:
    """A cart's lines as the door knows them, and the ids checkout gave it."""

    key: str
    items: list[dict[str, Any]] = field(default_factory=list)
    currency: str | None = None
    shopper: str | None = None
    checkout_id: str | None = None
    order_id: str | None = None
    changed: bool = False


class CartBook(Protocol):
    """Where the running carts are kept (the ``segment_carts`` table)."""

    def get(self, key: str) -> RunningCart: ...

    def by_checkout(self, ids: list[str]) -> str | None: ...

    def latest_of(self, shopper: str | None) -> str | None: ...


def _who(message: Mapping[str, Any], draft: Draft, at: str) -> None:
    draft.put("customer_id", _text(message.get("userId")), f"{at}.userId")
    draft.put("anonymous_id", _text(message.get("anonymousId")), f"{at}.anonymousId")
    draft.put("at", message.get("timestamp") or message.get("originalTimestamp"), f"{at}.timestamp")


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def _money(value: Any, where: str) -> Any:
    if value is None:
        return None
    try:
        return str(Decimal(str(value)))
    except InvalidOperation:
        raise Unmappable([{"loc": where, "msg": f"not a number: {str(value)[:40]!r}"}]) from None


def _product(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise Unmappable([{"loc": where, "msg": "expected a product object"}])
    sku = _text(raw.get("product_id")) or _text(raw.get("sku"))
    if sku is None:
        raise Unmappable([{"loc": f"{where}.product_id", "msg": "product_id or sku is needed"}])
    line: dict[str, Any] = {"sku": sku, "name": str(raw.get("name") or "")}
    for native, segment in (("url", "url"), ("image", "image_url"), ("category", "category")):
        if raw.get(segment):
            line[native] = raw[segment]
    price = _money(raw.get("price"), f"{where}.price")
    if price is not None:
        line["price"] = price
    return line


def _quantity(raw: Mapping[str, Any], where: str) -> int:
    value = raw.get("quantity", 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise Unmappable([{"loc": f"{where}.quantity", "msg": "expected a whole number ≥ 1"}])
    return value


def _shopper(message: Mapping[str, Any]) -> str | None:
    return _text(message.get("userId")) or _text(message.get("anonymousId"))


def _cart_key(message: Mapping[str, Any], properties: Mapping[str, Any]) -> str:
    cart_id = _text(properties.get("cart_id"))
    if cart_id:
        return f"segment-{cart_id}"
    return f"segment-cart-of-{_shopper(message)}"  # one running cart per shopper without one


def _checkout_ids(properties: Mapping[str, Any]) -> list[str]:
    return [v for v in (_text(properties.get(k)) for k in ("checkout_id", "order_id")) if v]


def _checkout_cart(
    message: Mapping[str, Any], properties: Mapping[str, Any], book: CartBook
) -> str:
    """The cart a checkout event is about: ``cart_id`` when sent, else the cart its
    checkout/order id was seen with, else the shopper's latest running cart."""
    if _text(properties.get("cart_id")):
        return _cart_key(message, properties)
    return (
        book.by_checkout(_checkout_ids(properties))
        or book.latest_of(_shopper(message))
        or _cart_key(message, properties)
    )


def _snapshot(draft: Draft, cart: RunningCart, currency: Any, at: str) -> None:
    cart.shopper = (
        cart.shopper
        or _text(draft.body.get("customer_id"))
        or _text(draft.body.get("anonymous_id"))
    )
    if cart.currency is None and isinstance(currency, str):
        cart.currency = currency.upper()
    body = {"id": cart.key, "items": [dict(item) for item in cart.items]}
    if cart.currency:
        body["currency"] = cart.currency
    draft.put("cart", body, f"{at}.properties")


def map_track(message: Mapping[str, Any], at: str, book: CartBook) -> list[Draft] | str:
    """The native events of one ``track`` message (or why it is skipped)."""
    name = message.get("event")
    properties = message.get("properties") or {}
    if not isinstance(properties, Mapping):
        raise Unmappable([{"loc": f"{at}.properties", "msg": "expected an object"}])
    draft = Draft({})
    _who(message, draft, at)
    where = f"{at}.properties"
    if name == "Product Viewed":
        draft.put("type", "product.viewed", f"{at}.event")
        product = _product(properties, where)
        if properties.get("currency"):
            product["currency"] = str(properties["currency"]).upper()
        draft.put("product", product, where)
    elif name in ("Product Added", "Product Removed"):
        cart = book.get(_cart_key(message, properties))
        line = _product(properties, where)
        quantity = _quantity(properties, where)
        _change(cart, line, quantity if name == "Product Added" else -quantity)
        draft.put("type", "cart.updated", f"{at}.event")
        _snapshot(draft, cart, properties.get("currency"), at)
    elif name == "Cart Viewed" and isinstance(properties.get("products"), list):
        cart = book.get(_cart_key(message, properties))
        cart.items = [
            {
                **_product(p, f"{where}.products.{i}"),
                "quantity": _quantity(p, f"{where}.products.{i}"),
            }
            for i, p in enumerate(properties["products"])
        ]
        cart.changed = True
        draft.put("type", "cart.updated", f"{at}.event")
        _snapshot(draft, cart, properties.get("currency"), at)
    elif name in ("Checkout Started", "Checkout Step Viewed"):
        cart = book.get(_checkout_cart(message, properties, book))
        for attr in ("checkout_id", "order_id"):
            value = _text(properties.get(attr))
            if value and getattr(cart, attr) != value:
                setattr(cart, attr, value)
                cart.changed = True
        draft.put("type", "checkout.started", f"{at}.event")
        draft.put("cart", {"id": cart.key}, where)
        step = properties.get("step")
        draft.put("checkout", {"step": str(step)} if step not in (None, "") else None, where)
    elif name == "Order Completed":
        draft.put("type", "order.completed", f"{at}.event")
        order_id = _text(properties.get("order_id")) or _text(properties.get("checkout_id"))
        if order_id is None:
            raise Unmappable([{"loc": f"{where}.order_id", "msg": "order_id is needed"}])
        cart_id = _text(properties.get("cart_id"))
        key = f"segment-{cart_id}" if cart_id else book.by_checkout(_checkout_ids(properties))
        total = properties.get("total", properties.get("revenue"))
        order = {
            "id": order_id,
            "cart_id": key,
            "total": _money(total, f"{where}.total"),
            "currency": str(properties["currency"]).upper() if properties.get("currency") else None,
            "discount_code": _text(properties.get("coupon")),
        }
        draft.put("order", {k: v for k, v in order.items() if v is not None}, where)
    else:
        return f"track event {str(name)[:80]!r} is not one cartflow reads"
    return [draft]


def _change(cart: RunningCart, line: dict[str, Any], delta: int) -> None:
    for item in cart.items:
        if item["sku"] == line["sku"]:
            item["quantity"] = item.get("quantity", 1) + delta
            if delta > 0:
                item.update({k: v for k, v in line.items() if k != "sku"})
            break
    else:
        if delta > 0:
            cart.items.append({**line, "quantity": delta})
    cart.items = [item for item in cart.items if item.get("quantity", 1) > 0]
    cart.changed = True


def map_identify(
    message: Mapping[str, Any], at: str, consent_traits: Mapping[str, str]
) -> list[Draft]:
    """``identify`` → ``customer.identified``: the contact from the traits, and consent
    from the traits ``consent_traits`` names (channel → trait)."""
    traits = message.get("traits") or {}
    if not isinstance(traits, Mapping):
        raise Unmappable([{"loc": f"{at}.traits", "msg": "expected an object"}])
    draft = Draft({"type": "customer.identified"})
    _who(message, draft, at)
    for trait, native in CONTACT_TRAITS.items():
        value = traits.get(trait)
        if isinstance(value, str) and value.strip():
            draft.put(f"contact.{native}", value.strip(), f"{at}.traits.{trait}")
    context = message.get("context") or {}
    if isinstance(context, Mapping) and isinstance(context.get("locale"), str):
        draft.put("contact.locale", context["locale"].split("-")[0].lower(), f"{at}.context.locale")
    for channel, trait in consent_traits.items():
        if trait not in traits:
            continue
        value = traits[trait]
        value = value.lower() if isinstance(value, str) else value
        if value in YES or value in NO:
            draft.put(f"consent.{channel}", value in YES, f"{at}.traits.{trait}")
        else:
            raise Unmappable(
                [
                    {
                        "loc": f"{at}.traits.{trait}",
                        "msg": f"not a consent answer: {str(value)[:40]!r}",
                    }
                ]
            )
    return [draft]


def map_page(message: Mapping[str, Any], at: str) -> list[Draft]:
    draft = Draft({"type": "page.viewed"})
    _who(message, draft, at)
    properties = message.get("properties") or {}
    if isinstance(properties, Mapping) and isinstance(properties.get("path"), str):
        draft.put("page", properties["path"][:2000], f"{at}.properties.path")
    return [draft]
