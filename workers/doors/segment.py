"""``POST /v1/segment/{track,identify,page,batch}``: a Segment-compatible tracking API, so
a shop keeps its analytics SDK and adds cartflow as a destination (docs/doors.md, Segment).

1. Off (404) unless ``CARTFLOW_SEGMENT_WRITE_KEYS`` names the write key(s).
2. The write key is the basic-auth user (Segment's way; the password is empty), or the
   body's ``writeKey``: a key not listed is 401, nothing stored.
3. Each message's ``messageId`` makes the event id ``segment-<messageId>``: a message sent
   again is a duplicate, applied once (the running carts are not changed twice either).
4. A batch is all or nothing, like ``/v1/events``: one message that cannot be mapped is a
   422 naming ``batch.<n>.<path>``, and nothing is stored.

SDKs that append ``/v1/batch`` to their host (``segment-analytics-python``) reach the same
routes with ``host="https://<cartflow>/v1/segment"``.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hmac
import os
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from cartflow.engine.service import Engine
from cartflow.engine.store.models import RawEvent, SegmentCart
from cartflow.workers.doors.drafts import Draft, Unmappable, finish
from cartflow.workers.doors.intake import door_off, ignore, json_body, problem, store, unmappable
from cartflow.workers.doors.segment_map import RunningCart, map_identify, map_page, map_track
from cartflow.workers.doors.signatures import MAX_MESSAGE_ID
from cartflow.workers.settings import env_secrets

SECRETS_VARIABLE = "CARTFLOW_SEGMENT_WRITE_KEYS"
#: ``channel=trait,…``: which identify traits carry consent (none by default: never guessed).
CONSENT_VARIABLE = "CARTFLOW_SEGMENT_CONSENT_TRAITS"
DOOR = "segment"
KINDS = ("track", "identify", "page", "batch")
#: The most bytes a gzip body may grow to (Segment's own batch limit is 500 KB).
MAX_INFLATED = 4 * 1024 * 1024


def consent_traits(raw: str | None = None) -> dict[str, str]:
    """``CARTFLOW_SEGMENT_CONSENT_TRAITS`` (``email=email_opt_in,sms=sms_opt_in``) parsed."""
    text = os.environ.get(CONSENT_VARIABLE, "") if raw is None else raw
    pairs = (part.split("=", 1) for part in text.split(",") if "=" in part)
    return {channel.strip(): trait.strip() for channel, trait in pairs if trait.strip()}


class Book:
    """The running carts of one request, read from and written to ``segment_carts``."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.carts: dict[str, RunningCart] = {}

    def get(self, key: str) -> RunningCart:
        if key not in self.carts:
            row = self.session.get(SegmentCart, key)
            self.carts[key] = (
                RunningCart(
                    key, [dict(i) for i in row.items], row.currency, row.checkout_id, row.order_id
                )
                if row is not None
                else RunningCart(key)
            )
        return self.carts[key]

    def by_checkout(self, ids: list[str]) -> str | None:
        """The cart a checkout or order id was seen with (this request first)."""
        if not ids:
            return None
        for cart in self.carts.values():
            if cart.checkout_id in ids or cart.order_id in ids:
                return cart.key
        found = select(SegmentCart.id).where(
            or_(SegmentCart.checkout_id.in_(ids), SegmentCart.order_id.in_(ids))
        )
        return self.session.scalar(found.order_by(SegmentCart.updated_at.desc()).limit(1))

    def latest_of(self, shopper: str | None) -> str | None:
        """The shopper's latest running cart with lines (this request first)."""
        if shopper is None:
            return None
        for cart in reversed(list(self.carts.values())):
            if cart.shopper == shopper and cart.items:
                return cart.key
        found = select(SegmentCart.id).where(SegmentCart.shopper == shopper)
        return self.session.scalar(found.order_by(SegmentCart.updated_at.desc()).limit(1))

    @staticmethod
    def save_all(session: Session, carts: Sequence[RunningCart], now: Any) -> None:
        """Write the carts a stored request changed."""
        for cart in carts:
            if not cart.changed:
                continue
            row = session.get(SegmentCart, cart.key) or SegmentCart(id=cart.key)
            row.items, row.currency, row.shopper = cart.items, cart.currency, cart.shopper
            row.checkout_id, row.order_id, row.updated_at = cart.checkout_id, cart.order_id, now
            session.add(row)


def _write_key(request: Request, body: Any) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            user = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        return user.partition(":")[0]
    key = body.get("writeKey") if isinstance(body, Mapping) else None
    return key if isinstance(key, str) else None


def _inflate(raw: bytes) -> bytes | None:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(raw, MAX_INFLATED)
    except (zlib.error, gzip.BadGzipFile):
        return None
    return None if inflater.unconsumed_tail else out


def _messages(kind: str, body: Any) -> list[tuple[str, Mapping[str, Any]]] | JSONResponse:
    if not isinstance(body, Mapping):
        return problem(422, "expected a JSON object", [{"loc": "body", "msg": "not an object"}])
    if kind != "batch":
        return [("body", {"type": kind, **body})]
    batch = body.get("batch")
    if not isinstance(batch, list) or not batch:
        return problem(
            422, "a batch needs a non-empty 'batch' list", [{"loc": "batch", "msg": "missing"}]
        )
    if len(batch) > 1000:
        return problem(
            422, "at most 1000 messages per batch", [{"loc": "batch", "msg": "too many"}]
        )
    out = []
    for index, message in enumerate(batch):
        if not isinstance(message, Mapping):
            return problem(
                422, "not a message", [{"loc": f"batch.{index}", "msg": "expected an object"}]
            )
        out.append((f"batch.{index}", message))
    return out


def map_messages(
    messages: Sequence[tuple[str, Mapping[str, Any]]],
    book: Book,
    traits: Mapping[str, str],
    known: set[str],
) -> tuple[list[Draft], list[str]]:
    """Drafts for every message not seen before, and why the others were skipped."""
    drafts: list[Draft] = []
    skipped: list[str] = []
    errors: list[dict[str, str]] = []
    for at, message in messages:
        message_id = message.get("messageId")
        if not isinstance(message_id, str) or not message_id or len(message_id) > MAX_MESSAGE_ID:
            errors.append(
                {
                    "loc": f"{at}.messageId",
                    "msg": f"a messageId of 1–{MAX_MESSAGE_ID} characters is needed",
                }
            )
            continue
        if f"segment-{message_id}" in known:
            continue  # sent before: applied once, its cart change too
        try:
            kind = message.get("type")
            if kind == "track":
                mapped: list[Draft] | str = map_track(message, at, book)
            elif kind == "identify":
                mapped = map_identify(message, at, traits)
            elif kind == "page":
                mapped = map_page(message, at)
            else:
                mapped = f"{str(kind)[:40]!r} messages are not read"
        except Unmappable as exc:
            errors.extend(exc.errors)
            continue
        if isinstance(mapped, str):
            skipped.append(mapped)
            continue
        for n, draft in enumerate(mapped):
            draft.body["id"] = f"segment-{message_id}" + (f"-{n}" if n else "")
            draft.body["source"] = f"segment:{message.get('type')}"
        drafts.extend(mapped)
    if errors:
        raise Unmappable(errors)
    return drafts, skipped


def add_segment_routes(
    app: FastAPI,
    engine: Engine,
    storing: Any,
    read: Callable[[Request], Awaitable[bytes | JSONResponse]],
    secrets: Sequence[str] | None = None,
) -> None:
    """Serve the Segment door on ``app``; ``secrets`` default to the environment's keys."""
    keys = tuple(secrets) if secrets is not None else env_secrets(SECRETS_VARIABLE)
    from_env = consent_traits()
    lock = asyncio.Lock()

    async def segment(kind: str, request: Request) -> JSONResponse:
        if not keys:
            return door_off("Segment", SECRETS_VARIABLE)
        raw = await read(request)
        if isinstance(raw, JSONResponse):
            return raw
        if request.headers.get("content-encoding", "").lower() == "gzip":
            inflated = _inflate(raw)
            if inflated is None:
                return problem(400, f"body is not gzip, or inflates beyond {MAX_INFLATED:,} bytes")
            raw = inflated
        body = json_body(raw)
        if isinstance(body, JSONResponse):
            return body
        key = _write_key(request, body)
        if key is None or not any(hmac.compare_digest(key.encode(), k.encode()) for k in keys):
            return problem(401, "Segment message refused: the write key is missing or not known")
        messages = _messages(kind, body)
        if isinstance(messages, JSONResponse):
            return messages
        async with lock:  # one request at a time changes running carts (in this process)
            prepared = await asyncio.to_thread(_prepare, messages)
            if isinstance(prepared, Unmappable):
                return unmappable(DOOR, "segment", prepared)
            events, skipped, carts = prepared
            if not events:
                if skipped:
                    reason = "; ".join(sorted(set(skipped)))[:300]
                    return ignore(request.app, DOOR, "track", reason)
                return JSONResponse({"accepted": 0, "duplicates": len(messages)}, status_code=202)
            answer = await store(storing, DOOR, "segment", events)
            if answer.status_code == 202:  # stored: now the running carts move on
                await asyncio.to_thread(_save, carts)
            return answer

    def _prepare(messages: Any) -> Any:
        with engine.db.reading() as session:
            ids = [f"segment-{m.get('messageId')}" for _, m in messages]
            known = set(session.scalars(select(RawEvent.id).where(RawEvent.id.in_(ids))))
            book = Book(session)
            try:
                # scenarios.yaml's segment.consent_traits (live: reloads included), else
                # the environment's
                configured = engine.configs.current.settings.segment.consent_traits
                traits = {str(k): v for k, v in configured.items()} or from_env
                drafts, skipped = map_messages(messages, book, traits, known)
                return finish(drafts), skipped, list(book.carts.values())
            except Unmappable as exc:
                return exc

    def _save(carts: list[RunningCart]) -> None:
        with engine.db.transaction() as session:
            Book.save_all(session, carts, engine.clock.now())

    def route_for(kind: str) -> Callable[[Request], Awaitable[JSONResponse]]:
        async def route(request: Request) -> JSONResponse:
            return await segment(kind, request)

        return route

    for kind in KINDS:
        app.post(f"/v1/segment/{kind}", response_model=None, summary=f"Segment {kind}")(
            route_for(kind)
        )
        app.post(f"/v1/segment/v1/{kind}", response_model=None, include_in_schema=False)(
            route_for(kind)
        )
