"""The HTTP app: ``POST /v1/events`` (DESIGN §7) and health.

202 only after the batch is durably stored; 4xx with a field-level error list for any
client mistake; API-key auth with ``Authorization: Bearer``. Served by uvicorn.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.events import EventError, parse_events
from engine.service import Engine

log = structlog.get_logger("cartflow.api")

#: Largest request body accepted (1000 events of a few KB each).
MAX_BODY = 5 * 1024 * 1024


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


def _json_reason(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc).split(":")[0][:200]


def create_app(
    engine: Engine, enqueue_apply: Callable[[list[str]], None], api_keys: Sequence[str]
) -> FastAPI:
    app = FastAPI(title="cartflow", version="0.1.0", docs_url="/docs", redoc_url=None)
    keys = [k.encode() for k in api_keys]

    def authorised(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        return any(hmac.compare_digest(token.strip().encode(), key) for key in keys)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _problem(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in exc.errors()
        ]
        return _problem(422, "invalid request", errors)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "config_version": engine.configs.current.version}

    @app.post("/v1/events", status_code=202)
    async def post_events(request: Request) -> JSONResponse:
        if not authorised(request):
            return _problem(
                401,
                "missing or wrong API key; send 'Authorization: Bearer <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_BODY:
            return _problem(
                413, f"body larger than {MAX_BODY} bytes; send at most 1000 events per request"
            )
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return _problem(
                413, f"body larger than {MAX_BODY} bytes; send at most 1000 events per request"
            )
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
            events = parse_events(body)
        except EventError as exc:
            return _problem(422, "invalid event(s)", exc.errors)
        try:
            new = await run_in_threadpool(engine.ingest, events)
        except SQLAlchemyError:
            log.exception("ingest_failed")
            return _problem(503, "storage unavailable; retry later", headers={"Retry-After": "5"})
        except ValueError as exc:  # something in the events our storage cannot hold
            return _problem(422, "invalid event(s)", [{"loc": "body", "msg": str(exc)[:300]}])
        if new:
            try:
                # off the event loop: a slow broker must not stall every other request
                await run_in_threadpool(enqueue_apply, new)
            except Exception:  # durable already; the dispatcher re-drives unapplied events
                log.exception("enqueue_failed", count=len(new))
        return JSONResponse(
            {"accepted": len(new), "duplicates": len(events) - len(new)}, status_code=202
        )

    return app
