"""How ``POST /v1/events`` describes itself in ``/openapi.json`` (and so at ``/docs``).

The handler reads the raw body itself — it enforces the size cap and the body deadline
while reading — so FastAPI never sees a body parameter to describe. The description is
added instead: the request body (one :class:`~cartflow.engine.events.Event` or a
:class:`~cartflow.engine.events.Batch`, their JSON Schemas generated from the models that
validate them), the bearer security scheme, and each answer with the model of its body
(:class:`Accepted`, :class:`Problem`). docs/events.md says the same in prose.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from cartflow.engine.events import MAX_BATCH, Batch, Event

#: Where generated schemas live in the document.
REF = "#/components/schemas/{model}"
#: The security scheme's name in ``components.securitySchemes``.
BEARER = "bearer"


class Accepted(BaseModel):
    """``202``: the request's events are durably stored."""

    model_config = ConfigDict(extra="forbid")

    accepted: int = Field(ge=0, description="events stored by this request")
    duplicates: int = Field(ge=0, description="events already stored under the same id and body")


class FieldError(BaseModel):
    """One problem, at a dotted path into the body (``body`` for the whole of it)."""

    model_config = ConfigDict(extra="forbid")

    loc: str = Field(examples=["events.0.cart.items.0.price"])
    msg: str = Field(examples=["Input should be greater than or equal to 0"])


class Problem(BaseModel):
    """Any refusal: what went wrong, and which fields, when fields are to blame."""

    model_config = ConfigDict(extra="forbid")

    error: str = Field(examples=["invalid event(s)"])
    errors: list[FieldError] = Field(
        default_factory=list, description="present when particular fields are to blame"
    )


def _header(description: str, example: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string", "example": example}}


#: Every answer ``POST /v1/events`` gives, with the model of its body.
RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"model": Accepted, "description": "Stored durably; a retry is a duplicate."},
    400: {"model": Problem, "description": "The body is not JSON (or the client went away)."},
    401: {
        "model": Problem,
        "description": "No or an unknown API key; the body is not read.",
        "headers": {"WWW-Authenticate": _header("the scheme to use", "Bearer")},
    },
    408: {
        "model": Problem,
        "description": "The body did not arrive within the body timeout; connection closed.",
    },
    409: {
        "model": Problem,
        "description": "An event id reused with a different body; nothing stored.",
    },
    413: {"model": Problem, "description": "The body is larger than 5 MiB."},
    422: {
        "model": Problem,
        "description": "JSON, but not valid events: every problem with its field path; "
        "nothing stored.",
    },
    503: {
        "model": Problem,
        "description": "Storage unavailable; retry after the given seconds.",
        "headers": {"Retry-After": _header("seconds to wait", "5")},
    },
}

#: The request body and security of ``POST /v1/events`` (FastAPI's ``openapi_extra``).
OPERATION: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": f"One event, or a batch of up to {MAX_BATCH} (docs/events.md).",
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": REF.format(model="Event")},
                        {"$ref": REF.format(model="Batch")},
                    ]
                },
            }
        },
    },
    "security": [{BEARER: []}],
}


def event_schemas() -> dict[str, Any]:
    """The JSON Schemas of :class:`Event`, :class:`Batch` and the objects in them, by
    name, as the models validate (unknown fields allowed)."""
    _, document = models_json_schema(
        [(Event, "validation"), (Batch, "validation")], ref_template=REF
    )
    schemas: dict[str, Any] = document["$defs"]
    return schemas


def describe(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """``app``'s ``openapi`` method, completed with the event schemas and the bearer
    scheme (the operation's ``openapi_extra`` refers to both); built once."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            components = document.setdefault("components", {})
            components.setdefault("schemas", {}).update(event_schemas())
            components.setdefault("securitySchemes", {})[BEARER] = {
                "type": "http",
                "scheme": "bearer",
                "description": "One of the keys in CARTFLOW_API_KEYS.",
            }
            app.openapi_schema = document
        return app.openapi_schema

    return openapi
