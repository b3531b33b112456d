"""``POST /v1/woocommerce/webhooks``: WooCommerce's order webhooks, checked WooCommerce's
way, stored as native ``order.completed`` events (docs/doors.md).

* Off (404) unless ``CARTFLOW_WOOCOMMERCE_SECRETS`` names the webhook's secret(s).
* ``X-WC-Webhook-Signature`` must be base64(HMAC-SHA256(secret, raw body)): else 401.
  The one unsigned request WooCommerce sends, the ping when a webhook is saved (a form
  body ``webhook_id=<n>``), is answered 200 and stores nothing.
* ``order.created`` / ``order.updated`` with a paid status (:data:`PAID`) are an
  ``order.completed``; any other status or topic is 200 and ignored.
* The event id is ``woocommerce-<X-WC-Webhook-ID>-<X-WC-Webhook-Delivery-ID>``.

Core WooCommerce has no cart webhooks: carts come from the plugin in
``integrations/woocommerce/`` as native ``cart.updated`` events on ``POST /v1/events``.
It writes the cart id (and the visitor's id) into the order's meta at checkout, which
links the order to that cart here (:data:`CART_KEYS`); without it, the order counts for
the customer's open carts.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from cartflow.engine.contact_points import shop_phone
from cartflow.engine.service import Engine
from cartflow.workers.doors.drafts import Draft, Unmappable, finish, gmt, text_id
from cartflow.workers.doors.intake import (
    door_off,
    ignore,
    json_body,
    problem,
    store,
    unmappable,
)
from cartflow.workers.doors.signatures import (
    MAX_MESSAGE_ID,
    SignatureRefused,
    hmac_base64_matches,
)
from cartflow.workers.settings import env_secrets

#: The environment variable with the webhook secret(s), comma-separated.
SECRETS_VARIABLE = "CARTFLOW_WOOCOMMERCE_SECRETS"
DOOR = "woocommerce"
#: Order statuses that mean "ordered": the order ends the cart's reminders. ``on-hold``
#: is an order placed and awaiting payment (bank transfer, cheque): the shopper has
#: decided, and a "your cart is waiting" would be wrong.
PAID = frozenset({"processing", "completed", "on-hold"})
#: Topics read; any other is ignored.
TOPICS = frozenset({"order.created", "order.updated"})
#: Order meta keys holding the cart id the plugin gave the cart (first found wins).
CART_KEYS = ("_cartflow_cart_id", "cartflow_cart_id", "cart_id")
#: Order meta keys holding the visitor's ``anonymous_id`` the plugin sent with the cart.
VISITOR_KEYS = ("_cartflow_anonymous_id", "cartflow_anonymous_id")
#: WooCommerce's ping when a webhook is saved: ``webhook_id=<n>``, unsigned.
PING = re.compile(rb"^webhook_id=[0-9]{1,20}$")


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _meta(payload: dict[str, Any], keys: Sequence[str]) -> tuple[str | None, str]:
    entries = payload.get("meta_data")
    if not isinstance(entries, list):
        return None, "meta_data"
    for key in keys:
        for index, entry in enumerate(entries):
            if isinstance(entry, dict) and entry.get("key") == key:
                value = text_id(entry.get("value"))
                if value is not None:
                    return value, f"meta_data.{index}.value"
    return None, "meta_data"


def order(payload: dict[str, Any]) -> list[Draft] | str:
    """A WooCommerce order (REST API v3 JSON) → ``order.completed`` once it is paid."""
    status = _text(payload.get("status"))
    if status not in PAID:
        return f"order status {status!r} is not paid ({', '.join(sorted(PAID))})"
    order_id = text_id(payload.get("id"))
    if order_id is None:
        raise Unmappable([{"loc": "id", "msg": "an order needs its id"}])
    cart_id, cart_from = _meta(payload, CART_KEYS)
    visitor, visitor_from = _meta(payload, VISITOR_KEYS)
    customer_id = text_id(payload.get("customer_id"))
    if customer_id is None and visitor is None:  # a guest's order the plugin did not tag
        visitor, visitor_from = f"woocommerce-order-{order_id}", "id"
    found = payload.get("billing")
    billing: dict[str, Any] = found if isinstance(found, dict) else {}
    draft = Draft({"type": "order.completed"})
    draft.put("customer_id", customer_id, "customer_id")
    draft.put("anonymous_id", visitor, visitor_from)
    paid = next(
        (
            key
            for key in ("date_paid_gmt", "date_modified_gmt", "date_created_gmt")
            if gmt(payload.get(key))
        ),
        None,
    )
    if paid is not None:
        draft.put("at", gmt(payload.get(paid)), paid)
    draft.put("order.id", order_id, "id")
    draft.put("order.cart_id", cart_id, cart_from)
    draft.put("order.total", payload.get("total"), "total")
    draft.put("order.currency", _text(payload.get("currency")), "currency")
    coupons = payload.get("coupon_lines")
    if isinstance(coupons, list) and coupons and isinstance(coupons[0], dict):
        draft.put("order.discount_code", _text(coupons[0].get("code")), "coupon_lines.0.code")
    draft.put("contact.email", _text(billing.get("email")), "billing.email")
    phone = shop_phone(_text(billing.get("phone")), billing.get("country"))
    draft.put("contact.phone", phone, "billing.phone")
    draft.put("contact.first_name", _text(billing.get("first_name")), "billing.first_name")
    return [draft]


def add_woocommerce_routes(
    app: FastAPI,
    engine: Engine,
    storing: Any,
    read: Callable[[Request], Awaitable[bytes | JSONResponse]],
    secrets: Sequence[str] | None = None,
) -> None:
    """Serve the WooCommerce door on ``app``; ``secrets`` default to
    ``CARTFLOW_WOOCOMMERCE_SECRETS``."""
    configured = tuple(secrets) if secrets is not None else env_secrets(SECRETS_VARIABLE)

    @app.post("/v1/woocommerce/webhooks", response_model=None, summary="WooCommerce webhooks")
    async def woocommerce_webhook(request: Request) -> JSONResponse:
        """A WooCommerce webhook, verified by its HMAC over the raw body."""
        if not configured:
            return door_off("WooCommerce", SECRETS_VARIABLE)
        raw = await read(request)
        if isinstance(raw, JSONResponse):
            return raw
        signature = request.headers.get("x-wc-webhook-signature")
        if signature is None and PING.match(raw.strip()):
            return ignore(request.app, DOOR, "ping", "the ping WooCommerce sends on saving")
        try:
            hmac_base64_matches(raw, signature, configured)
        except SignatureRefused as exc:
            return problem(401, f"WooCommerce webhook refused: {exc} (X-WC-Webhook-Signature)")
        topic = request.headers.get("x-wc-webhook-topic", "").strip()
        delivery = request.headers.get("x-wc-webhook-delivery-id", "").strip()
        webhook = request.headers.get("x-wc-webhook-id", "").strip()
        key = f"{webhook}-{delivery}" if webhook else delivery
        if not delivery or len(key) > MAX_MESSAGE_ID or not key.isprintable():
            return problem(
                400,
                "X-WC-Webhook-Delivery-ID is missing or too long: it tells a redelivery "
                "from a new webhook",
            )
        body = json_body(raw)
        if isinstance(body, JSONResponse):
            return body
        if topic not in TOPICS:
            return ignore(request.app, DOOR, topic or "?", f"topic {topic!r} is not read")
        if not isinstance(body, dict):
            return problem(422, "expected a JSON object", [{"loc": "body", "msg": "not an object"}])
        try:
            drafts = order(body)
            if isinstance(drafts, str):
                return ignore(request.app, DOOR, topic, drafts)
            for draft in drafts:
                draft.body["id"] = f"woocommerce-{key}"
                draft.body["source"] = f"woocommerce:{topic}"
            events = finish(drafts)
        except Unmappable as exc:
            return unmappable(DOOR, topic, exc)
        return await store(storing, DOOR, topic, events)
