"""What every door does once it knows what a webhook says: the answers, and storing its
events through the same path as ``POST /v1/events`` (``storing.submit``: durable before
the answer, deduplicated by event id).

* ``202 {"accepted", "duplicates"}`` — the events are stored (a redelivery: ``duplicates``);
* ``200 {"ignored": reason}`` — nothing in it for cartflow (a topic or status it does not
  use), counted in :func:`ignored_counts`;
* ``400`` — the body is not JSON, or a header the door needs is missing;
* ``401`` — the signature is missing or wrong: nothing stored;
* ``404`` — the door is off (its secret is not set), or there is no such door;
* ``409`` — a delivery id reused with another body;
* ``422`` — the payload does not map onto native events: each problem with its payload path;
* ``503`` — storage unavailable (``Retry-After: 5``): the platform retries.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from cartflow.engine.errors import EventConflict
from cartflow.engine.events import Event
from cartflow.workers.doors.drafts import Unmappable

log = structlog.get_logger("cartflow.doors")


def problem(
    status: int,
    message: str,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A refusal, shaped like every other API answer (docs/events.md, Responses)."""
    body: dict[str, Any] = {"error": message}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers)


def door_off(door: str, variable: str) -> JSONResponse:
    """The answer of a door whose secret is not set: it takes nothing, signed or not."""
    return problem(404, f"the {door} door is off: set {variable} to turn it on")


def json_body(raw: bytes) -> Any:
    """The parsed body, or a 400 answer (the platform's body is not JSON)."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        where = (
            f" at line {exc.lineno} column {exc.colno}"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        return problem(400, f"body is not valid JSON{where}")


def ignored_counts(app: FastAPI) -> Counter[tuple[str, str]]:
    """Webhooks answered 200 and ignored, by (door, what): for ops and tests."""
    counts: Counter[tuple[str, str]] | None = getattr(app.state, "doors_ignored", None)
    if counts is None:
        counts = app.state.doors_ignored = Counter()
    return counts


def ignore(app: FastAPI, door: str, what: str, reason: str) -> JSONResponse:
    """``200``: the platform must not retry it, and cartflow has nothing to do with it."""
    ignored_counts(app)[(door, what)] += 1
    log.info("door_ignored", door=door, what=what, reason=reason)
    return JSONResponse({"ignored": reason}, status_code=200)


def unmappable(door: str, what: str, exc: Unmappable) -> JSONResponse:
    log.info("door_unmappable", door=door, what=what, fields=[e["loc"] for e in exc.errors])
    return problem(422, f"the {what} payload does not map onto cartflow events", exc.errors)


async def store(storing: Any, door: str, what: str, events: Sequence[Event]) -> JSONResponse:
    """Store ``events`` (durably, before answering) and say so."""
    try:
        new = await storing.submit(events)  # stored and enqueued when it returns
    except EventConflict as exc:
        return problem(409, "delivery id reused with a different body", exc.errors)
    except SQLAlchemyError:
        log.exception("door_ingest_failed", door=door, what=what)
        return problem(503, "storage unavailable; retry later", headers={"Retry-After": "5"})
    except ValueError as exc:  # something in the events our storage cannot hold
        return problem(422, "invalid event(s)", [{"loc": "body", "msg": str(exc)[:300]}])
    duplicates = len(events) - len(new)
    log.info(
        "door_stored",
        door=door,
        what=what,
        events=[event.id for event in events],
        duplicates=duplicates,
    )
    return JSONResponse({"accepted": len(new), "duplicates": duplicates}, status_code=202)
