"""Native events built from a platform's payload, and what to say when one cannot be.

A door fills a :class:`Draft` field by field, noting where in the payload each value came
from (``put("cart.items.0.price", "199.00", "line_items.0.price")``). :func:`finish`
validates the drafts with the native models (docs/events.md): the events, or
:class:`Unmappable` whose errors name the **payload's** path (``line_items.0.price``), with
the native field in the message — what the platform's developer can look up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cartflow.engine.events import Event, EventError, parse_events


class Unmappable(Exception):
    """The payload does not map onto native events: a 422 listing ``errors``
    (``{"loc": payload path, "msg": why}``); nothing is stored."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['loc']}: {e['msg']}" for e in errors))
        self.errors = errors


@dataclass
class Draft:
    """One native event in the making: its body and, per native field, its payload path."""

    body: dict[str, Any]
    origins: dict[str, str] = field(default_factory=dict)

    def put(self, native: str, value: Any, origin: str) -> None:
        """Set the dotted ``native`` field (``cart.url``) to ``value``; ``None`` sets nothing."""
        if value is None:
            return
        *parents, leaf = native.split(".")
        target = self.body
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
        self.origins[native] = origin

    def note(self, native: str, origin: str) -> None:
        """Record where a field set inside a list (``cart.items.0.price``) came from."""
        self.origins[native] = origin

    def origin(self, native_loc: str) -> str:
        """The payload path behind a native field (its nearest recorded ancestor's)."""
        probe = native_loc
        while probe:
            if probe in self.origins:
                return self.origins[probe]
            probe = probe.rpartition(".")[0]
        return "body"


def finish(drafts: Iterable[Draft]) -> list[Event]:
    """Validate every draft: all the events, or :class:`Unmappable` with every problem."""
    events: list[Event] = []
    errors: list[dict[str, str]] = []
    for draft in drafts:
        try:
            events.extend(parse_events(draft.body))
        except EventError as exc:
            for error in exc.errors:
                native = error["loc"]
                where = draft.origin(native) if native != "body" else "body"
                said = f" (cartflow's {native})" if native != "body" else ""
                errors.append({"loc": where, "msg": f"{error['msg']}{said}"})
    if errors:
        raise Unmappable(errors)
    return events


def text_id(value: Any) -> str | None:
    """An id as text: ``123`` → ``"123"``; ``None``, ``""``, ``0`` and ``False`` → ``None``
    (platforms send ``0`` or ``null`` for "no customer")."""
    if value is None or value is False or value == "" or value == 0:
        return None
    if isinstance(value, bool | dict | list):
        return None
    return str(value).strip() or None


def gmt(value: Any) -> str | None:
    """A timestamp with an offset; one without (WooCommerce's ``*_gmt``) is taken as UTC.
    Anything else is passed on as it is, for the native model to refuse with its reason."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()
