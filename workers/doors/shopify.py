"""``POST /v1/shopify/webhooks``: Shopify's own webhooks, checked Shopify's way, stored as
native events (docs/doors.md).

1. Off (404) unless ``CARTFLOW_SHOPIFY_SECRETS`` names the app's secret(s).
2. ``X-Shopify-Hmac-SHA256`` must be base64(HMAC-SHA256(secret, raw body)) for one of
   them (a rotated secret is listed next to the new one): else 401, nothing stored.
3. ``X-Shopify-Topic`` picks the mapping (:mod:`cartflow.workers.doors.shopify_map`); a
   topic cartflow does not read is 200 and ignored, so Shopify does not retry it.
4. ``X-Shopify-Webhook-Id`` (the same on every retry) makes the event id,
   ``shopify-<webhook id>``: a redelivery is a duplicate, stored once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from cartflow.engine.service import Engine
from cartflow.workers.doors.drafts import Unmappable, finish
from cartflow.workers.doors.intake import (
    door_off,
    ignore,
    json_body,
    problem,
    store,
    unmappable,
)
from cartflow.workers.doors.shopify_map import TOPICS
from cartflow.workers.doors.signatures import (
    MAX_MESSAGE_ID,
    SignatureRefused,
    hmac_base64_matches,
)
from cartflow.workers.settings import env_secrets

#: The environment variable with the app's secret(s), comma-separated.
SECRETS_VARIABLE = "CARTFLOW_SHOPIFY_SECRETS"
DOOR = "shopify"


def add_shopify_routes(
    app: FastAPI,
    engine: Engine,
    storing: Any,
    read: Callable[[Request], Awaitable[bytes | JSONResponse]],
    secrets: Sequence[str] | None = None,
) -> None:
    """Serve the Shopify door on ``app``; ``secrets`` default to ``CARTFLOW_SHOPIFY_SECRETS``,
    ``read`` reads a body within the API's size cap and deadline (or answers why not)."""
    configured = tuple(secrets) if secrets is not None else env_secrets(SECRETS_VARIABLE)

    @app.post("/v1/shopify/webhooks", response_model=None, summary="Shopify webhooks")
    async def shopify_webhook(request: Request) -> JSONResponse:
        """A Shopify webhook, verified by its HMAC over the raw body."""
        if not configured:
            return door_off("Shopify", SECRETS_VARIABLE)
        raw = await read(request)
        if isinstance(raw, JSONResponse):
            return raw
        try:
            hmac_base64_matches(raw, request.headers.get("x-shopify-hmac-sha256"), configured)
        except SignatureRefused as exc:
            return problem(401, f"Shopify webhook refused: {exc} (X-Shopify-Hmac-SHA256)")
        topic = request.headers.get("x-shopify-topic", "").strip()
        webhook_id = request.headers.get("x-shopify-webhook-id", "").strip()
        if not topic:
            return problem(400, "X-Shopify-Topic is missing: it says what the webhook is")
        if not webhook_id or len(webhook_id) > MAX_MESSAGE_ID or not webhook_id.isprintable():
            return problem(
                400,
                f"X-Shopify-Webhook-Id is missing or longer than {MAX_MESSAGE_ID} characters: "
                "it tells a redelivery from a new webhook",
            )
        body = json_body(raw)
        if isinstance(body, JSONResponse):
            return body
        mapper = TOPICS.get(topic)
        if mapper is None:
            return ignore(request.app, DOOR, topic, f"topic {topic} is not one cartflow reads")
        if not isinstance(body, dict):
            return problem(422, "expected a JSON object", [{"loc": "body", "msg": "not an object"}])
        try:
            drafts = mapper(body)
            if isinstance(drafts, str):
                return ignore(request.app, DOOR, topic, drafts)
            for index, draft in enumerate(drafts):
                suffix = f"-{index}" if index else ""
                draft.body["id"] = f"shopify-{webhook_id}{suffix}"
                draft.body["source"] = f"shopify:{topic}"
            events = finish(drafts)
        except Unmappable as exc:
            return unmappable(DOOR, topic, exc)
        return await store(storing, DOOR, topic, events)
