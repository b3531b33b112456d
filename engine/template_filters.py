"""The filters a template formats values with for people's eyes, per the message's locale
with Babel: ``money`` ("1 990 ₽"), ``plural`` ("3 товара"), ``number``, ``date``; and
``link``, a URL through cartflow's click-tracking redirect (:mod:`cartflow.engine.links`).

The locale is the one the template's words are in (``locale`` in the render context,
set by :meth:`~cartflow.engine.render.TemplateSet.render`); one Babel does not know
formats as English.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime
from babel.numbers import format_currency, format_decimal
from jinja2 import pass_context
from jinja2.runtime import Context


def _locale(ctx: Context) -> Locale:
    code = str(ctx.get("locale") or "en")
    try:
        return Locale.parse(code.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en")


@pass_context
def _money(ctx: Context, amount: Any, currency: str | None = None) -> str:
    cart = ctx.get("cart")
    code = currency or (cart.get("currency") if isinstance(cart, Mapping) else None) or "USD"
    value = Decimal(str(amount))
    pattern_digits = 0 if value == value.to_integral_value() else 2
    return format_currency(
        value,
        code,
        locale=_locale(ctx),
        currency_digits=False,
        format=None if pattern_digits else _integer_currency_pattern(_locale(ctx)),
    )


def _integer_currency_pattern(locale: Locale) -> str:
    pattern = str(locale.currency_formats["standard"].pattern)
    return pattern.split(";")[0].replace(".00", "").replace(",00", "")


@pass_context
def _plural(
    ctx: Context,
    count: Any,
    one: str = "",
    few: str = "",
    many: str = "",
    other: str = "",
    with_number: bool = True,
) -> str:
    locale = _locale(ctx)
    form = locale.plural_form(abs(int(count)))
    word = {"one": one, "few": few, "many": many}.get(form) or other or many or few or one
    if not with_number:
        return word
    return f"{format_decimal(int(count), locale=locale)}\u00a0{word}"


@pass_context
def _number(ctx: Context, value: Any) -> str:
    return format_decimal(Decimal(str(value)), locale=_locale(ctx))


@pass_context
def _date(ctx: Context, value: Any, fmt: str = "medium") -> str:
    return format_datetime(value, format=fmt, locale=_locale(ctx))


#: The context's hidden name for the message's link maker (set by the composer).
TRACK = "_track"


@pass_context
def _link(ctx: Context, url: Any) -> str:
    """``url`` as a tracked link of this message (as it is when links are not set up)."""
    track = ctx.get(TRACK)
    return track(str(url)) if callable(track) else str(url)


#: The filters, by the name a template calls them with.
FILTERS: Mapping[str, Callable[..., str]] = {
    "link": _link,
    "money": _money,
    "plural": _plural,
    "number": _number,
    "date": _date,
}
