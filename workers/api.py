"""The HTTP app: ``POST /v1/events`` (docs/events.md) and health, and the server around it.

202 only after the batch is durably stored; 4xx with a field-level error list for any
client mistake; API-key auth with ``Authorization: Bearer``. Served by uvicorn, configured
in one place (:func:`server_config`) so that nothing a client does holds a connection
for long (issue 13; docs/deployment.md):

* request head — :attr:`ServerLimits.header_timeout` from the connection (or from the first
  byte of the next request on a kept-alive one), then 408 and close; at most
  :data:`MAX_HEAD_BYTES` of it, else 400;
* request body — :attr:`ServerLimits.body_timeout` in total, read by the app against the
  clock and :data:`MAX_BODY` (408 or 413); the protocol closes a connection whose body is
  still arriving shortly after that, even when the app answered without reading it (401);
* idle keep-alive — :attr:`ServerLimits.keep_alive`; open connections —
  :attr:`ServerLimits.max_connections`, beyond which requests get 503.

A client that disconnects mid-body is one ``client_disconnected`` line, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
import structlog
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.h11_impl import H11Protocol

from cartflow.engine.events import EventError, parse_events
from cartflow.engine.receipt_log import record_receipts
from cartflow.engine.receipts import InboundRequest, ReceiptRejected
from cartflow.engine.service import Engine, EventConflict
from cartflow.workers.doors.generic import add_generic_routes
from cartflow.workers.doors.segment import add_segment_routes
from cartflow.workers.doors.shopify import add_shopify_routes
from cartflow.workers.doors.woocommerce import add_woocommerce_routes
from cartflow.workers.group_commit import GroupCommit
from cartflow.workers.openapi import OPERATION, RESPONSES, describe
from cartflow.workers.profile_consent import add_profile_routes
from cartflow.workers.settings import Settings
from cartflow.workers.shopper_links import (
    add_inbound_route,
    add_link_routes,
    add_messenger_link_route,
    add_reply_routes,
)

log = structlog.get_logger("cartflow.api")

#: Largest request body accepted (1000 events of a few KB each).
MAX_BODY = 5 * 1024 * 1024
#: Largest request line plus headers (h11's default too); a longer head is a 400.
MAX_HEAD_BYTES = 16 * 1024
#: Connections the kernel queues before uvicorn accepts them (uvicorn's default).
BACKLOG = 2048
#: Seconds a stopping server waits for requests in progress before closing them.
SHUTDOWN_GRACE = 5
#: Seconds past the app's body deadline after which the protocol itself closes a
#: connection whose body is still arriving (the app answers 408 first when it is reading).
BODY_GRACE = 1.0
#: Sent with a 408: the rest of a slow request is not worth reading.
_CLOSE = {"Connection": "close"}


@dataclass(frozen=True)
class ServerLimits:
    """How long and how much the API waits for a client; defaults as the settings'
    (``CARTFLOW_API_*`` in :mod:`cartflow.workers.settings`)."""

    #: Seconds to receive the request line and headers.
    header_timeout: float = 10.0
    #: Seconds to receive the whole body, once the headers are in.
    body_timeout: float = 10.0
    #: Whole seconds an idle kept-alive connection stays open.
    keep_alive: int = 5
    #: Open connections (or requests in progress) beyond which requests get 503.
    max_connections: int = 1000
    #: Largest body, in bytes.
    max_body: int = MAX_BODY

    def __post_init__(self) -> None:
        for name in ("header_timeout", "body_timeout", "keep_alive", "max_connections"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)!r}")

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerLimits:
        """The limits in the process settings."""
        return cls(
            header_timeout=settings.api_header_timeout,
            body_timeout=settings.api_body_timeout,
            keep_alive=settings.api_keep_alive,
            max_connections=settings.api_max_connections,
        )


def _problem(
    status: int,
    message: str,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers)


def _too_large(limit: int) -> JSONResponse:
    return _problem(413, f"body larger than {limit} bytes; send at most 1000 events per request")


async def _read_body(request: Request, limits: ServerLimits) -> bytes | JSONResponse:
    """The request body, or the answer to give instead: 408 (and close) when it takes more
    than ``limits.body_timeout`` in total, 413 as soon as it passes ``limits.max_body``.
    A client gone mid-body is one ``client_disconnected`` line with the bytes received."""
    chunks: list[bytes] = []
    received = 0
    try:
        async with asyncio.timeout(limits.body_timeout):
            async with contextlib.aclosing(request.stream()) as stream:
                async for chunk in stream:
                    received += len(chunk)
                    if received > limits.max_body:
                        return _too_large(limits.max_body)
                    chunks.append(chunk)
    except TimeoutError:
        log.info("body_timeout", received=received, seconds=limits.body_timeout)
        return _problem(
            408, f"request body not received within {limits.body_timeout:g} s", headers=_CLOSE
        )
    except ClientDisconnect:
        log.info("client_disconnected", received=received)
        return _problem(400, "client disconnected before the body was complete")
    return b"".join(chunks)


def _json_reason(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc).split(":")[0][:200]


def create_app(
    engine: Engine,
    enqueue_apply: Callable[[list[str]], None],
    api_keys: Sequence[str],
    door_secrets: Mapping[str, Sequence[str]] | None = None,
) -> FastAPI:
    """The ASGI app. Its body deadline and size cap are ``app.state.limits``
    (:class:`ServerLimits`), which :func:`server_config` sets to the server's own.
    ``door_secrets``: the Shopify and WooCommerce doors' secrets by door (each door reads
    its environment variable when not given; docs/doors.md)."""
    app = FastAPI(
        title="cartflow",
        version="0.1.0",
        description="Abandoned-cart reminders. The shop sends native events to "
        "`POST /v1/events` (docs/events.md).",
        docs_url="/docs",
        redoc_url=None,
    )
    app.openapi = describe(app)  # type: ignore[method-assign]
    app.state.limits = ServerLimits()
    #: Requests that arrive together are stored in one transaction (workers.group_commit).
    app.state.group_commit = storing = GroupCommit(engine.ingest, enqueue_apply)
    keys = [k.encode() for k in api_keys]

    def authorised(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        return any(hmac.compare_digest(token.strip().encode(), key) for key in keys)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # keeps Starlette's headers: 405 carries ``Allow``
        return _problem(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in exc.errors()
        ]
        return _problem(422, "invalid request", errors)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "config_version": engine.configs.current.version}

    @app.post(
        "/v1/events",
        status_code=202,
        response_model=None,
        summary="Send one event or a batch",
        responses=RESPONSES,
        openapi_extra=OPERATION,  # the body is read by hand: see workers.openapi
    )
    async def post_events(request: Request) -> JSONResponse:
        """Store the events durably, then answer ``202``; idempotent on each event's
        ``id``. Every refusal stores nothing."""
        if not authorised(request):
            return _problem(
                401,
                "missing or wrong API key; send 'Authorization: Bearer <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        limits: ServerLimits = request.app.state.limits
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > limits.max_body:
            return _too_large(limits.max_body)
        raw = await _read_body(request, limits)
        if isinstance(raw, JSONResponse):
            return raw
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, too many digits, nesting
            where = (
                f" at line {exc.lineno} column {exc.colno}"
                if isinstance(exc, json.JSONDecodeError)
                else ""
            )
            return _problem(
                400,
                f"body is not valid JSON{where}",
                [{"loc": "body", "msg": _json_reason(exc)}],
            )
        try:
            region = engine.configs.current.settings.defaults.phone_region
            events = parse_events(body, phone_region=region)
        except EventError as exc:
            return _problem(422, "invalid event(s)", exc.errors)
        try:
            new = await storing.submit(events)  # stored and enqueued when it returns
        except EventConflict as exc:  # an id reused for another event: nothing stored
            return _problem(409, "event id reused with a different body", exc.errors)
        except SQLAlchemyError:
            log.exception("ingest_failed")
            return _problem(503, "storage unavailable; retry later", headers={"Retry-After": "5"})
        except ValueError as exc:  # something in the events our storage cannot hold
            return _problem(422, "invalid event(s)", [{"loc": "body", "msg": str(exc)[:300]}])
        return JSONResponse(
            {"accepted": len(new), "duplicates": len(events) - len(new)}, status_code=202
        )

    @app.post(
        "/v1/providers/{name}/status",
        response_model=None,
        summary="A vendor's delivery receipts (status callback)",
    )
    async def provider_status(name: str, request: Request) -> JSONResponse | PlainTextResponse:
        """Receipts a vendor calls back with, verified the vendor's way (its signature, not
        an API key), deduplicated and kept as delivery events. A callback that fails the
        check is ``401`` and changes nothing."""
        named = getattr(engine.sender, "named", None)
        provider = named(name) if callable(named) else None
        if provider is None:
            return _problem(404, f"no configured provider of type {name!r} takes callbacks")
        raw = await _read_body(request, request.app.state.limits)
        if isinstance(raw, JSONResponse):
            return raw
        inbound = InboundRequest(
            method=request.method,
            path=request.url.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            query=dict(request.query_params),
            body=raw,
        )
        try:
            receipts = provider.parse_receipt(inbound)
        except ReceiptRejected as exc:
            return _problem(401, str(exc))
        except ValueError as exc:  # a callback the provider cannot read
            return _problem(400, f"{name}: unreadable callback: {str(exc)[:200]}")
        if receipts is None:
            return _problem(404, f"provider {name!r} does not take callbacks")
        try:
            done = await run_in_threadpool(record_receipts, engine.db, name, receipts, engine.now())
        except SQLAlchemyError:
            log.exception("receipts_failed", provider=name)
            return _problem(503, "storage unavailable; retry later", headers={"Retry-After": "5"})
        log.info(
            "receipts_recorded",
            provider=name,
            stored=done.stored,
            duplicates=done.duplicates,
            unmatched=done.unmatched,
        )
        answer = provider.receipt_answer()
        if answer is not None:  # the vendor wants its own word back (SMS.ru: "100")
            return PlainTextResponse(answer)
        return JSONResponse(
            {"stored": done.stored, "duplicates": done.duplicates, "unmatched": done.unmatched}
        )

    add_link_routes(app, engine, storing)  # clicks and unsubscribes (no API key)

    def read(request: Request) -> Awaitable[bytes | JSONResponse]:
        return _read_body(request, request.app.state.limits)

    add_messenger_link_route(app, engine, authorised)  # t.me/<bot>?start=<token>
    add_reply_routes(app, engine, authorised)  # support answered a shopper's reply
    add_profile_routes(app, engine, authorised)  # consent and its proof, for ops
    add_inbound_route(app, engine, storing, read)  # SMS and messenger replies: STOP, START
    doors = door_secrets or {}
    add_shopify_routes(app, engine, storing, read, doors.get("shopify"))  # docs/doors.md
    add_woocommerce_routes(app, engine, storing, read, doors.get("woocommerce"))
    add_segment_routes(app, engine, storing, read, doors.get("segment"))  # Segment's SDKs
    add_generic_routes(app, engine, storing, read)  # doors: in scenarios.yaml
    return app


class DeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol plus the deadlines uvicorn does not have: the request head
    within ``limits.header_timeout`` (a client that sent part of one gets a 408; one that
    sent nothing is closed quietly), and the body within ``limits.body_timeout`` plus
    :data:`BODY_GRACE` of the head, whether or not the app reads it. :func:`server_config`
    makes a subclass with the server's ``limits``."""

    limits: ClassVar[ServerLimits] = ServerLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_expired)

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self._head_bytes += len(data)
            if self._head_timer is None:  # the first byte of the next request on this one
                self._head_timer = self.loop.call_later(
                    self.limits.header_timeout, self._head_expired
                )
        super().data_received(data)
        self._follow_request()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow_request()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None
        super().connection_lost(exc)

    def _unsupported_upgrade_warning(self) -> None:
        """Quiet: an ``Upgrade`` header is served as plain HTTP, not worth two log lines
        per request (uvicorn's default) that any client could provoke."""

    def _follow_request(self) -> None:
        """The head deadline ends once the head is in; the body one runs while it arrives."""
        state = self.conn.their_state
        if state is not h11.IDLE and self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
            self._head_bytes = 0
        buffered = len(self.conn.trailing_data[0])
        if state is h11.IDLE and self._head_timer is None and buffered:
            # part of the next head came with the end of the last request (pipelining)
            self._head_bytes = buffered
            self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_expired)
        if state is h11.SEND_BODY:
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(
                    self.limits.body_timeout + BODY_GRACE, self._body_expired
                )
        elif self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        log.info("header_timeout", received=self._head_bytes, seconds=self.limits.header_timeout)
        if self._head_bytes:
            message = f"request head not received within {self.limits.header_timeout:g} s\n"
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"connection: close\r\ncontent-length: %d\r\n\r\n%s"
                % (len(message), message.encode())
            )
        self.transport.close()

    def _body_expired(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.SEND_BODY:
            return
        answered = self.cycle is not None and self.cycle.response_complete
        log.info("body_timeout", answered=answered, seconds=self.limits.body_timeout)
        self.transport.close()


def server_config(
    app: FastAPI, limits: ServerLimits, *, host: str = "127.0.0.1", port: int = 8000
) -> uvicorn.Config:
    """The one uvicorn configuration, for ``cartflow api`` and ``Runtime.start_api``
    alike: ``limits`` for the server and (``app.state.limits``) the app's body deadline;
    no access log, uvicorn's own lines from warning up; no lifespan, no WebSockets."""
    app.state.limits = limits

    class ConfiguredProtocol(DeadlineProtocol):
        pass

    ConfiguredProtocol.limits = limits
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=ConfiguredProtocol,
        ws="none",
        lifespan="off",
        log_level="warning",
        access_log=False,
        timeout_keep_alive=limits.keep_alive,
        limit_concurrency=limits.max_connections,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        backlog=BACKLOG,
        timeout_graceful_shutdown=SHUTDOWN_GRACE,
    )
