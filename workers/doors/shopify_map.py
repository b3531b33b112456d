"""Shopify's webhook payloads (REST JSON, as Shopify documents each topic) as native events.

* ``checkouts/create``, ``checkouts/update`` → ``cart.updated``: the whole cart, contact,
  consent (a completed checkout is ignored: its order ends the cart);
* ``carts/create``, ``carts/update`` → ``cart.updated`` for an anonymous visitor;
* ``orders/create``, ``orders/paid`` → ``order.completed``;
* ``customers/create``, ``customers/update``, ``customers_email_marketing_consent/update``,
  ``customers_marketing_consent/update`` → ``consent.updated`` when a state says something.

Ids, chosen so that each webhook finds the others' cart and shopper:

* the cart is ``shopify-cart-<cart_token>``, else ``shopify-checkout-<checkout token>``
  (a checkout and its order carry both tokens; a cart webhook's ``token`` is the cart token);
* the visitor (``anonymous_id``) is that same string, so a cart seen before its checkout
  joins the customer the checkout names; ``customer_id`` is Shopify's customer id.

A token's ``?key=…`` suffix is dropped. Prices are Shopify's strings, in the shop currency
(``currency``). A mapper returns the drafts, or a reason to ignore the webhook (200).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cartflow.engine.contact_points import shop_phone
from cartflow.workers.doors.drafts import Draft, Unmappable, text_id

#: Shopify's marketing consent states (``email_marketing_consent.state``,
#: ``sms_marketing_consent.state``) as consent; a state not listed here (``pending``, or
#: one Shopify adds later) changes nothing.
CONSENT_STATES = {
    "subscribed": True,
    "not_subscribed": False,
    "unsubscribed": False,
    "redacted": False,
    "invalid": False,
}
#: Where each channel's consent state is, on a customer.
CONSENT_FIELDS = {"email": "email_marketing_consent", "sms": "sms_marketing_consent"}

#: A mapper: the payload → drafts of native events, or why the webhook is ignored.
Mapper = Callable[[dict[str, Any]], "list[Draft] | str"]


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _token(value: Any) -> str | None:
    token = text_id(value)
    return token.partition("?")[0] or None if token else None


def cart_key(cart_token: Any, checkout_token: Any) -> tuple[str | None, str]:
    """The cart id (and the field it came from) for these tokens."""
    if (cart := _token(cart_token)) is not None:
        return f"shopify-cart-{cart}", "cart_token"
    if (checkout := _token(checkout_token)) is not None:
        return f"shopify-checkout-{checkout}", "token"
    return None, "cart_token"


def _object(payload: dict[str, Any], key: str) -> dict[str, Any]:
    value = payload.get(key)
    return value if isinstance(value, dict) else {}


def consent_of(customer: dict[str, Any], origin: str) -> dict[str, tuple[bool, str]]:
    """Consent per channel the customer's states say, with the field each came from."""
    found = {}
    for channel, key in CONSENT_FIELDS.items():
        state = _text(_object(customer, key).get("state"))
        if state is not None and state.lower() in CONSENT_STATES:
            found[channel] = (CONSENT_STATES[state.lower()], f"{origin}{key}.state")
    return found


def _put_consent(draft: Draft, consent: dict[str, tuple[bool, str]]) -> None:
    for channel, (granted, origin) in consent.items():
        draft.put(f"consent.{channel}", granted, origin)


def put_items(draft: Draft, lines: Any, origin: str) -> None:
    """``line_items`` as the cart's items: sku (else variant or product id), title,
    price, quantity, image."""
    if lines is None:
        lines = []
    if not isinstance(lines, list):
        raise Unmappable([{"loc": origin, "msg": "expected a list of line items"}])
    items = []
    for index, line in enumerate(lines):
        at = f"{origin}.{index}"
        if not isinstance(line, dict):
            raise Unmappable([{"loc": at, "msg": "expected a line item object"}])
        sku_field = next(
            (key for key in ("sku", "variant_id", "product_id") if text_id(line.get(key))), None
        )
        if sku_field is None:
            raise Unmappable(
                [{"loc": f"{at}.sku", "msg": "a line item needs a sku, variant_id or product_id"}]
            )
        item: dict[str, Any] = {
            "sku": text_id(line[sku_field]),
            "name": _text(line.get("title")) or "",
            "price": line.get("price"),
            "quantity": line.get("quantity", 1),
        }
        sources = {"sku": sku_field, "name": "title", "price": "price", "quantity": "quantity"}
        variant = _text(line.get("variant_title"))
        if variant is not None:
            item["variant"] = variant
        image_field = next((key for key in ("image_url", "image") if _text(line.get(key))), None)
        if image_field is not None:
            item["image"] = _text(line[image_field])
            sources["image"] = image_field
        for name, source in sources.items():
            draft.note(f"cart.items.{index}.{name}", f"{at}.{source}")
        items.append(item)
    draft.put("cart.items", items, origin)


def checkout(payload: dict[str, Any]) -> list[Draft] | str:
    """``checkouts/create|update`` → ``cart.updated`` (nothing once it is completed: the
    order ends the cart)."""
    if payload.get("completed_at"):
        return "a completed checkout: its order ends the cart"
    cart_id, cart_origin = cart_key(payload.get("cart_token"), payload.get("token"))
    if cart_id is None:
        raise Unmappable([{"loc": "token", "msg": "a checkout needs its token or cart_token"}])
    customer = _object(payload, "customer")
    draft = Draft({"type": "cart.updated"})
    draft.put("customer_id", text_id(customer.get("id")), "customer.id")
    draft.put("anonymous_id", cart_id, cart_origin)
    draft.put("at", payload.get("updated_at") or payload.get("created_at"), "updated_at")
    draft.put("cart.id", cart_id, cart_origin)
    draft.put("cart.currency", _text(payload.get("currency")), "currency")
    draft.put("cart.url", _text(payload.get("abandoned_checkout_url")), "abandoned_checkout_url")
    put_items(draft, payload.get("line_items"), "line_items")
    email, email_from = _first(payload, customer, "email")
    phone, phone_from = _first(payload, customer, "phone")
    draft.put("contact.email", email, email_from)
    draft.put("contact.phone", shop_phone(phone, _country(payload, customer)), phone_from)
    draft.put("contact.first_name", _text(customer.get("first_name")), "customer.first_name")
    draft.put("contact.locale", _text(payload.get("customer_locale")), "customer_locale")
    consent = consent_of(customer, "customer.")
    if "email" not in consent and payload.get("buyer_accepts_marketing") is True:
        consent["email"] = (True, "buyer_accepts_marketing")  # ticked at checkout
    _put_consent(draft, consent)
    return [draft]


def _first(payload: dict[str, Any], customer: dict[str, Any], key: str) -> tuple[Any, str]:
    if (value := _text(payload.get(key))) is not None:
        return value, key
    return _text(customer.get(key)), f"customer.{key}"


def cart(payload: dict[str, Any]) -> list[Draft] | str:
    """``carts/create|update`` → ``cart.updated`` for the visitor the cart token names."""
    token = _token(payload.get("token")) or _token(payload.get("id"))
    if token is None:
        raise Unmappable([{"loc": "token", "msg": "a cart needs its token"}])
    cart_id = f"shopify-cart-{token}"
    draft = Draft({"type": "cart.updated"})
    draft.put("anonymous_id", cart_id, "token")
    draft.put("at", payload.get("updated_at") or payload.get("created_at"), "updated_at")
    draft.put("cart.id", cart_id, "token")
    lines = payload.get("line_items")
    currency, currency_from = _text(payload.get("currency")), "currency"
    if currency is None and isinstance(lines, list) and lines and isinstance(lines[0], dict):
        money = _object(_object(lines[0], "price_set"), "shop_money")
        currency = _text(money.get("currency_code"))
        currency_from = "line_items.0.price_set.shop_money.currency_code"
    draft.put("cart.currency", currency, currency_from)
    put_items(draft, lines, "line_items")
    return [draft]


def order(payload: dict[str, Any]) -> list[Draft] | str:
    """``orders/create`` (and ``orders/paid``) → ``order.completed`` for the checkout's cart."""
    order_id = text_id(payload.get("id"))
    if order_id is None:
        raise Unmappable([{"loc": "id", "msg": "an order needs its id"}])
    cart_id, cart_origin = cart_key(payload.get("cart_token"), payload.get("checkout_token"))
    customer = _object(payload, "customer")
    draft = Draft({"type": "order.completed"})
    draft.put("customer_id", text_id(customer.get("id")), "customer.id")
    draft.put("anonymous_id", cart_id or f"shopify-order-{order_id}", cart_origin)
    draft.put("at", payload.get("processed_at") or payload.get("created_at"), "processed_at")
    draft.put("order.id", order_id, "id")
    draft.put("order.cart_id", cart_id, "checkout_token" if cart_origin == "token" else cart_origin)
    draft.put("order.total", payload.get("total_price"), "total_price")
    draft.put("order.currency", _text(payload.get("currency")), "currency")
    codes = payload.get("discount_codes")
    if isinstance(codes, list) and codes and isinstance(codes[0], dict):
        draft.put("order.discount_code", _text(codes[0].get("code")), "discount_codes.0.code")
    return [draft]


def customer_consent(payload: dict[str, Any]) -> list[Draft] | str:
    """``customers/create|update`` and the two consent topics → ``consent.updated``."""
    id_field = "customer_id" if "customer_id" in payload else "id"
    customer_id = text_id(payload.get(id_field))
    if customer_id is None:
        raise Unmappable([{"loc": id_field, "msg": "a customer webhook needs the customer's id"}])
    consent = consent_of(payload, "")
    if not consent:
        return "no marketing consent state that changes anything"
    draft = Draft({"type": "consent.updated"})
    draft.put("customer_id", customer_id, id_field)
    stamps = [_object(payload, key).get("consent_updated_at") for key in CONSENT_FIELDS.values()]
    stamp = next((s for s in stamps if isinstance(s, str) and s), None)
    draft.put("at", stamp or payload.get("updated_at"), "updated_at")
    email = _text(payload.get("email")) or _text(payload.get("email_address"))
    draft.put("contact.email", email, "email")
    phone = shop_phone(_text(payload.get("phone")), _country(payload, payload))
    draft.put("contact.phone", phone, "phone")
    _put_consent(draft, consent)
    return [draft]


#: Every topic cartflow reads; any other is answered 200 and ignored.
TOPICS: dict[str, Mapper] = {
    "checkouts/create": checkout,
    "checkouts/update": checkout,
    "carts/create": cart,
    "carts/update": cart,
    "orders/create": order,
    "orders/paid": order,
    "customers/create": customer_consent,
    "customers/update": customer_consent,
    "customers_email_marketing_consent/update": customer_consent,
    "customers_marketing_consent/update": customer_consent,
}


def _country(payload: dict[str, Any], customer: dict[str, Any]) -> object:
    """The shopper's country code (billing, else shipping, else the customer's address):
    the country of a phone given without one."""
    for holder, key in (
        (payload, "billing_address"),
        (payload, "shipping_address"),
        (customer, "default_address"),
    ):
        address = holder.get(key)
        if isinstance(address, dict) and address.get("country_code"):
            return address.get("country_code")
    return None
