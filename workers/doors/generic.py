"""``POST /v1/doors/{name}``: the generic JSON doors ``scenarios.yaml`` describes
(``doors:``, :mod:`cartflow.engine.scenario.door_model`; docs/doors.md), for platforms
without a door of their own.

1. ``name`` must be a door of the live configuration (404 otherwise, and while its
   ``secret`` is empty: the door is off).
2. The request is signed the Standard Webhooks way (``webhook-id``, ``webhook-timestamp``
   within 5 minutes of the engine's clock, ``webhook-signature``): else 401.
3. ``type_from`` picks the payload's mapping; a value with none is 200 and ignored.
4. Each field's JMESPath expression finds its value; what does not fit is a 422 naming the
   expression (the payload's path). The event id is ``<name>-<webhook-id>``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from cartflow.engine.scenario.door_model import DoorSettings, ItemPaths, PayloadMap, compiled
from cartflow.engine.service import Engine
from cartflow.workers.doors.drafts import Draft, Unmappable, finish, text_id
from cartflow.workers.doors.intake import ignore, json_body, problem, store, unmappable
from cartflow.workers.doors.signatures import SignatureRefused, verify_standard_webhook

#: Native fields that are ids: a number found there is taken as its text.
ID_FIELDS = frozenset(
    {
        "anonymous_id",
        "customer_id",
        "session_id",
        "cart.id",
        "order.id",
        "order.cart_id",
        "delivery_id",
        "contact.messenger",
    }
)
#: Item fields that must be found in every item.
REQUIRED_ITEM_FIELDS = ("sku", "price")


def _find(expression: str, data: Any) -> Any:
    return compiled(expression).search(data)


def _value(native: str, expression: str, found: Any) -> Any:
    if native in ID_FIELDS:
        return text_id(found)
    if native.startswith("consent.") and found is not None and not isinstance(found, bool):
        raise Unmappable(
            [{"loc": expression, "msg": f"expected true or false for cartflow's {native}"}]
        )
    if native == "at" and isinstance(found, int | float) and not isinstance(found, bool):
        try:
            return datetime.fromtimestamp(found, tz=UTC).isoformat()
        except (OverflowError, OSError, ValueError):
            raise Unmappable([{"loc": expression, "msg": "not a time in seconds"}]) from None
    return found


def _fill(draft: Draft, prefix: str, paths: BaseModel, payload: Any) -> None:
    for name, expression in paths:
        if expression is None or name == "type":
            continue
        native = f"{prefix}{name}"
        if isinstance(expression, ItemPaths):
            _items(draft, native, expression, payload)
        elif isinstance(expression, BaseModel):
            _fill(draft, f"{native}.", expression, payload)
        else:
            value = _value(native, expression, _find(expression, payload))
            if value is None and native in ("cart.id", "order.id"):
                raise Unmappable([{"loc": expression, "msg": f"found nothing for {native}"}])
            draft.put(native, value, expression)


def _items(draft: Draft, native: str, paths: ItemPaths, payload: Any) -> None:
    found = _find(paths.each, payload)
    if not isinstance(found, list):  # never read "nothing found" as "cart emptied"
        what = "nothing" if found is None else type(found).__name__
        raise Unmappable([{"loc": paths.each, "msg": f"expected the list of items, found {what}"}])
    items = []
    for index, element in enumerate(found):
        item: dict[str, Any] = {}
        for name, expression in paths:
            if name == "each" or expression is None:
                continue
            value = _find(expression, element)
            origin = f"{paths.each}[{index}].{expression}"
            if value is None and name in REQUIRED_ITEM_FIELDS:
                raise Unmappable([{"loc": origin, "msg": f"found nothing for an item's {name}"}])
            if value is not None:
                item[name] = text_id(value) if name == "sku" else value
                draft.note(f"{native}.{index}.{name}", origin)
        items.append(item)
    draft.put(native, items, paths.each)


def map_payload(name: str, mapping: PayloadMap, payload: Any) -> Draft:
    """The draft of the native event ``mapping`` makes of ``payload``."""
    draft = Draft({"type": mapping.type, "source": f"door:{name}"})
    _fill(draft, "", mapping, payload)
    if "anonymous_id" not in draft.body and "customer_id" not in draft.body:
        said = [e for e in (mapping.anonymous_id, mapping.customer_id) if e]
        raise Unmappable(
            [{"loc": where, "msg": "found nothing: the event needs whose it is"} for where in said]
        )
    return draft


def add_generic_routes(
    app: FastAPI,
    engine: Engine,
    storing: Any,
    read: Callable[[Request], Awaitable[bytes | JSONResponse]],
) -> None:
    """Serve every generic door of the live configuration on ``app`` (reloads included)."""

    @app.post("/v1/doors/{name}", response_model=None, summary="A generic JSON door")
    async def generic_door(name: str, request: Request) -> JSONResponse:
        """A webhook for the door ``name`` of ``scenarios.yaml``, Standard Webhooks signed."""
        door: DoorSettings | None = engine.configs.current.settings.doors.get(name)
        if door is None:
            return problem(404, f"no door {name!r} in the configuration (doors: in scenarios.yaml)")
        if not door.secret:
            return problem(404, f"the door {name!r} is off: its secret is empty")
        raw = await read(request)
        if isinstance(raw, JSONResponse):
            return raw
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            message = verify_standard_webhook(raw, headers, door.secret, engine.now())
        except SignatureRefused as exc:
            return problem(401, f"door {name!r} refused the webhook: {exc}")
        body = json_body(raw)
        if isinstance(body, JSONResponse):
            return body
        kind = _find(door.type_from, body)
        mapping = door.payloads.get(str(kind)) if isinstance(kind, str | int) else None
        if mapping is None:
            reason = f"{door.type_from} is {kind!r}: no payload of that kind in the door"
            return ignore(request.app, name, str(kind)[:100], reason)
        what = str(kind)
        try:
            draft = map_payload(name, mapping, body)
            draft.body["id"] = f"{name}-{message.id}"
            events = finish([draft])
        except Unmappable as exc:
            return unmappable(name, what, exc)
        return await store(storing, name, what, events)
