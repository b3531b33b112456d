"""The links shoppers open from a message (:mod:`cartflow.engine.links`), served by the API
with no API key and no cookies — the signature is the only proof:

* ``GET /l/{delivery}/{signature}?u=<url>`` — a click: kept as a ``clicked`` delivery
  event (once), then ``302`` to the URL. A link that is forged or altered is a ``404``
  page and redirects nowhere (no open redirect). When the database is down the shopper
  still gets to the URL; only the click is lost (logged).
* ``GET /u/{delivery}/{signature}`` — a confirmation page with one button: link
  scanners and mail previews fetch links, so a GET never unsubscribes.
* ``POST /u/{delivery}/{signature}`` — unsubscribe (RFC 8058 one-click: mail clients post
  ``List-Unsubscribe=One-Click``; any body is accepted): a native ``consent.updated``
  event withdrawing that channel is stored and applied like any the shop sends; once
  the answer is given no message on that channel leaves for the shopper.
* ``POST /v1/providers/{name}/inbound`` — what shoppers send back to the shop's number,
  the vendor's inbound webhook, checked the vendor's way (its signature: ``401``
  otherwise); a keyword reply (STOP, START, СТОП …: :mod:`cartflow.engine.inbound`),
  or a shopper blocking the bot, becomes a ``consent.updated`` event for every shopper
  with that number (or chat) before the vendor is answered; a messenger's
  ``/start <token>`` connects the chat to the shopper the token names.
"""

from __future__ import annotations

import contextlib
import html
import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from cartflow.engine.deliveries import DeliveryEvent
from cartflow.engine.engagement import record_engagement, unsubscribe_event
from cartflow.engine.errors import EventConflict
from cartflow.engine.inbound import inbound_events, profile_of
from cartflow.engine.links import Links
from cartflow.engine.receipts import InboundRequest, ReceiptRejected
from cartflow.engine.replies import handle_reply, record_replies
from cartflow.engine.service import Engine

log = structlog.get_logger("cartflow.links")

CHANNEL_NAMES = {
    "email": "emails",
    "sms": "text messages",
    "push": "notifications",
    "messenger": "messages",
}


def _page(status: int, title: str, body: str) -> HTMLResponse:
    text = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width'>"
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>"
        f"{body}</body></html>"
    )
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    return HTMLResponse(text, status_code=status, headers=headers)


def _not_valid() -> HTMLResponse:
    return _page(404, "This link is not valid", "<p>It may have been copied incompletely.</p>")


def add_inbound_route(
    app: FastAPI,
    engine: Engine,
    storing: Any,
    read: Callable[[Request], Awaitable[bytes | JSONResponse]],
) -> None:
    """Serve the vendors' inbound webhooks on ``app``; ``read`` reads a body within the
    API's size cap and deadline (or answers why not)."""

    @app.post("/v1/providers/{name}/inbound", response_model=None, summary="Replies (STOP)")
    async def inbound(name: str, request: Request) -> Response:
        named = getattr(engine.sender, "named", None)
        provider = named(name) if callable(named) else None
        if provider is None:
            return JSONResponse({"error": f"no configured provider of type {name!r}"}, 404)
        raw = await read(request)
        if isinstance(raw, JSONResponse):
            return raw
        sent = InboundRequest(
            method=request.method,
            path=request.url.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            query=dict(request.query_params),
            body=raw,
        )
        try:
            replies = provider.parse_inbound(sent)
        except ReceiptRejected as exc:
            return JSONResponse({"error": str(exc)}, 401)
        except ValueError as exc:
            return JSONResponse({"error": f"{name}: unreadable webhook: {str(exc)[:200]}"}, 400)
        if replies is None:
            return JSONResponse({"error": f"provider {name!r} takes no inbound messages"}, 404)
        try:
            found = await run_in_threadpool(
                inbound_events, engine.db, replies, engine.now(), engine.links
            )
            events = found.events
            if events:
                with contextlib.suppress(EventConflict):  # the same webhook, retried
                    await storing.submit(events)  # stored and enqueued when it returns
            settings = engine.configs.current.settings.replies
            kept = await run_in_threadpool(
                record_replies, engine.db, found.unanswered, settings, engine.now()
            )
        except SQLAlchemyError:
            log.exception("inbound_failed", provider=name)
            return JSONResponse({"error": "storage unavailable"}, 503, {"Retry-After": "5"})
        log.info(
            "inbound_received",
            provider=name,
            messages=len(replies),
            consent=len(events),
            replies=len(kept),
        )
        body, media_type = provider.inbound_answer()
        return Response(body, media_type=media_type)


def add_messenger_link_route(
    app: FastAPI, engine: Engine, authorised: Callable[[Request], bool]
) -> None:
    """``GET /v1/providers/{name}/link?customer_id=…`` (or ``anonymous_id``), with the API
    key: the deep link (``t.me/<bot>?start=<token>``) that connects a shopper's messenger
    chat to them — for a "get reminders in Telegram" button on the shop's site."""

    @app.get("/v1/providers/{name}/link", response_model=None, summary="Messenger link")
    async def messenger_link(
        name: str, request: Request, customer_id: str = "", anonymous_id: str = ""
    ) -> Response:
        if not authorised(request):
            return JSONResponse(
                {"error": "missing or wrong API key; send 'Authorization: Bearer <key>'"},
                401,
                {"WWW-Authenticate": "Bearer"},
            )
        named = getattr(engine.sender, "named", None)
        provider = named(name) if callable(named) else None
        if provider is None or not callable(getattr(provider, "link", None)):
            return JSONResponse({"error": f"no configured messenger provider {name!r}"}, 404)
        if engine.links is None:
            return JSONResponse(
                {"error": "links are off: set CARTFLOW_PUBLIC_URL and CARTFLOW_LINK_SECRET"}, 404
            )
        if not (customer_id or anonymous_id):
            return JSONResponse(
                {
                    "error": "name the shopper",
                    "errors": [{"loc": "query.customer_id", "msg": "customer_id or anonymous_id"}],
                },
                422,
            )
        try:
            profile_id = await run_in_threadpool(profile_of, engine.db, customer_id, anonymous_id)
        except SQLAlchemyError:
            log.exception("messenger_link_failed", provider=name)
            return JSONResponse({"error": "storage unavailable"}, 503, {"Retry-After": "5"})
        if profile_id is None:
            return JSONResponse(
                {"error": "no such shopper yet: send an event with this id first"}, 404
            )
        url = provider.link(engine.links.messenger(profile_id))
        if url is None:
            return JSONResponse({"error": f"{name}: set bot_username to make links"}, 404)
        return JSONResponse({"url": url}, headers={"Cache-Control": "no-store"})


def add_reply_routes(app: FastAPI, engine: Engine, authorised: Callable[[Request], bool]) -> None:
    """``POST /v1/replies/{id}/handled`` (API key): support has answered a shopper's reply;
    their reminders go on now (body ``{"resume": false}``: they end)."""

    @app.post("/v1/replies/{reply_id}/handled", response_model=None, summary="Reply handled")
    async def handled(reply_id: str, request: Request) -> Response:
        if not authorised(request):
            return JSONResponse(
                {"error": "missing or wrong API key; send 'Authorization: Bearer <key>'"},
                401,
                {"WWW-Authenticate": "Bearer"},
            )
        raw = await request.body()
        resume = True
        if raw.strip():
            try:
                body = json.loads(raw)
            except (ValueError, RecursionError):
                return JSONResponse({"error": "body is not valid JSON"}, 400)
            value = body.get("resume", True) if isinstance(body, dict) else None
            if not isinstance(value, bool):
                return JSONResponse(
                    {
                        "error": "invalid request",
                        "errors": [{"loc": "resume", "msg": "true or false"}],
                    },
                    422,
                )
            resume = value
        try:
            done = await run_in_threadpool(handle_reply, engine.db, reply_id, resume, engine.now())
        except SQLAlchemyError:
            log.exception("reply_handled_failed", reply_id=reply_id)
            return JSONResponse({"error": "storage unavailable"}, 503, {"Retry-After": "5"})
        if done is None:
            return JSONResponse({"error": f"no reply {reply_id!r}"}, 404)
        return JSONResponse({"id": done.reply_id, "status": done.status, "journeys": done.journeys})


def add_link_routes(app: FastAPI, engine: Engine, storing: Any) -> None:
    """Serve the shopper links on ``app`` (nothing when links are not set up: 404)."""

    def links() -> Links | None:
        return engine.links

    @app.get("/l/{delivery_id}/{signature}", include_in_schema=False, response_model=None)
    async def click(delivery_id: str, signature: str, u: str = "") -> Response:
        signer = links()
        if signer is None or not signer.clicked(delivery_id, signature, u):
            return _not_valid()
        try:
            await run_in_threadpool(
                record_engagement, engine.db, delivery_id, DeliveryEvent.CLICKED, engine.now()
            )
        except SQLAlchemyError:  # the shopper still gets to the cart
            log.exception("click_not_recorded", delivery_id=delivery_id)
        return RedirectResponse(u, status_code=302, headers={"Cache-Control": "no-store"})

    @app.get("/u/{delivery_id}/{signature}", include_in_schema=False, response_model=None)
    async def confirm(delivery_id: str, signature: str) -> Response:
        signer = links()
        if signer is None or not signer.unsubscribed(delivery_id, signature):
            return _not_valid()
        form = (
            "<p>Stop reminders like this one?</p>"
            f"<form method='post' action='/u/{html.escape(delivery_id)}/"
            f"{html.escape(signature)}'><button type='submit'>Unsubscribe</button></form>"
        )
        return _page(200, "Unsubscribe", form)

    @app.post("/u/{delivery_id}/{signature}", include_in_schema=False, response_model=None)
    async def unsubscribe(delivery_id: str, signature: str) -> Response:
        signer = links()
        if signer is None or not signer.unsubscribed(delivery_id, signature):
            return _not_valid()
        try:
            found = await run_in_threadpool(unsubscribe_event, engine.db, delivery_id, engine.now())
            if found is None:
                return _not_valid()
            with contextlib.suppress(EventConflict):  # the same minute's, already stored
                await storing.submit([found.event])  # stored and enqueued when it returns
            await run_in_threadpool(
                record_engagement,
                engine.db,
                delivery_id,
                DeliveryEvent.UNSUBSCRIBED,
                engine.now(),
            )
        except SQLAlchemyError:
            log.exception("unsubscribe_failed", delivery_id=delivery_id)
            return _page(503, "Please try again in a minute", "<p>We could not save it.</p>")
        what = CHANNEL_NAMES.get(found.channel, "messages")
        log.info("unsubscribed", delivery_id=delivery_id, channel=found.channel)
        return _page(200, "You are unsubscribed", f"<p>You will get no more {what} from us.</p>")
