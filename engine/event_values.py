"""The rules for every value of an event, whatever field it is in (docs/events.md, "Rules
for every value"): the value types the models use (amounts, short texts, links) and
:func:`find_bad_text`, which looks through a whole request body, unknown fields
included, for what no database would store.

Links end up in messages, so :data:`WebUrl` accepts only absolute ``http(s)`` URLs with a
host: never ``javascript:``, ``data:`` or a relative path; ``""`` means "no link".
"""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from cartflow.engine.clock import as_utc

#: How deeply unknown fields may nest.
MAX_DEPTH = 32
#: The only URL schemes a link in an event may use (a message links to it).
URL_SCHEMES = ("http", "https")
#: The longest link accepted (``carts.url`` holds 2000 characters).
MAX_URL_LENGTH = 2000


def _web_url(value: str) -> str:
    """``value`` if it is an absolute http(s) URL with a host ("" means "no link")."""
    if not value:
        return value
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise ValueError("only http(s) URLs are accepted; this one contains control characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError("only http(s) URLs are accepted; this one cannot be parsed") from None
    scheme = parts.scheme.lower()
    if scheme not in URL_SCHEMES:
        what = f"not {scheme[:20]}:" if scheme else "this one has no scheme"
        raise ValueError(f"only http(s) URLs are accepted, {what} (e.g. https://shop.example/)")
    if not parts.hostname:
        raise ValueError("only http(s) URLs with a host are accepted, e.g. https://shop.example/")
    return value


#: What :func:`_web_url` accepts, as a JSON Schema pattern for ``/openapi.json`` (a little
#: stricter than the validator: printable ASCII after the host).
WEB_URL_PATTERN = r"^$|^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9.-]+(:[0-9]{1,4})?(/[!-~]*)?$"

Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=4)]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]
#: A link shown to a shopper: absolute ``http(s)`` only.
WebUrl = Annotated[
    str,
    Field(max_length=MAX_URL_LENGTH, json_schema_extra={"pattern": WEB_URL_PATTERN}),
    AfterValidator(_web_url),
]


def find_bad_text(value: Any, path: str, depth: int) -> tuple[str, str] | None:
    """The first place (dotted path, reason) no database would store: a NUL, a lone UTF-16
    surrogate, ``NaN`` / ``Infinity`` (Python's json accepts them, and ``1e999`` becomes
    infinity; JSON has neither, and storing would turn them into null), or nesting deeper
    than :data:`MAX_DEPTH` — a client mistake to report with a 4xx, not a storage failure
    to retry. Unknown fields are searched too."""
    if depth > MAX_DEPTH:
        return path, f"nested deeper than {MAX_DEPTH} levels"
    if isinstance(value, float) and not math.isfinite(value):
        name = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        return path or "body", f"{name} is not a JSON number; send a finite number or null"
    if isinstance(value, str):
        if "\x00" in value:
            return path, "text contains a NUL character (\\u0000); remove it"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path, "text contains a lone UTF-16 surrogate; send valid Unicode"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            found = find_bad_text(str(key), here, depth) or find_bad_text(item, here, depth + 1)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = find_bad_text(item, f"{path}.{index}" if path else str(index), depth + 1)
            if found is not None:
                return found
    return None


def aware_utc(value: datetime | None) -> datetime | None:
    """A timestamp field's rule: it must carry an offset, and is kept in UTC (one that
    leaves the calendar once converted is refused, not a crash)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("timestamp needs a time zone offset, e.g. 2026-11-22T10:00:00Z")
    try:
        return as_utc(value)
    except OverflowError:
        raise ValueError("timestamp out of range once converted to UTC") from None
