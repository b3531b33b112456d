"""What a value in the scenario files may be: durations (``30m``), daily spans
(``mon-fri 10:00-20:00``), percentages (``10%``), each with the JSON Schema editors check
it with; and :class:`Strict`, the base of every model (unknown keys are errors)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, WithJsonSchema

from cartflow.engine.timing import DailySpan, format_duration, parse_duration


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("expected a duration such as '30m', '3h' or '2d'")
    if isinstance(value, int):
        if value == 0:
            return timedelta(0)
        raise ValueError(f"bare number {value}; add a unit: '{value}m', '{value}h' or '{value}d'")
    return parse_duration(value)


#: What an editor accepts as a duration (the loader says more when it is wrong).
DURATION_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "string", "pattern": r"^\s*(\d+\s*[wdhmsWDHMS]\s*)+$"}, {"const": 0}],
    "examples": ["30m", "3h", "2d", "1h30m"],
}
Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(DURATION_SCHEMA),
]


def _spans(value: Any, *, wrap: bool) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise ValueError("expected 'HH:MM-HH:MM' or a list of them, e.g. 'mon-fri 10:00-20:00'")
    for item in items:
        DailySpan.parse(str(item), wrap=wrap)
    return tuple(str(item) for item in items)


_SPAN = {"type": "string", "pattern": r"^[A-Za-z, -]*\d{1,2}:\d{2}\s*-\s*\d{1,2}:\d{2}\s*$"}
#: A ``[days] HH:MM-HH:MM`` span, or a list of them.
SPANS_SCHEMA: dict[str, Any] = {
    "anyOf": [_SPAN, {"type": "array", "items": _SPAN, "minItems": 1}],
    "examples": ["10:00-20:00", "mon-fri 10:00-20:00", ["sat,sun 12:00-18:00"]],
}
Windows = Annotated[
    tuple[str, ...],
    BeforeValidator(lambda v: _spans(v, wrap=False)),
    WithJsonSchema(SPANS_SCHEMA),
]
QuietHours = Annotated[
    tuple[str, ...],
    BeforeValidator(lambda v: _spans(v, wrap=True)),
    WithJsonSchema(SPANS_SCHEMA),
]


def _percent(value: Any) -> float:
    if isinstance(value, str) and value.strip().endswith("%"):
        value = value.strip()[:-1]
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a percentage such as '10%', got {value!r}") from None
    if not 0 <= number <= 100:
        raise ValueError(f"percentage {number} is outside 0..100")
    return number


#: A percentage: a number, or text ending in ``%``.
PERCENT_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "number", "minimum": 0, "maximum": 100},
        {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*%\s*$"},
    ],
    "examples": ["10%", 5],
}
Percent = Annotated[float, BeforeValidator(_percent), WithJsonSchema(PERCENT_SCHEMA)]


def _discount_percent(value: Any) -> Decimal:
    """``7``, ``7.5``, ``"7%"`` → Decimal; what the docs promise, in marketer words."""
    hint = 'discount percent must be more than 0 and at most 100, e.g. 7 or "7%"'
    text = str(value).strip()
    if isinstance(value, bool) or not text:
        raise ValueError(hint)
    text = text[:-1].strip() if text.endswith("%") else text
    try:
        number = Decimal(text)
    except ArithmeticError:
        raise ValueError(f"{hint}; got {value!r}") from None
    if not number.is_finite() or not 0 < number <= 100:
        raise ValueError(f"{hint}; got {value!r}")
    return number


DiscountPercent = Annotated[Decimal, BeforeValidator(_discount_percent)]
