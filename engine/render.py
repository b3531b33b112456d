"""Template rendering (sandboxed Jinja) and how each channel carries a message.

A template is one file per reference and locale, ``templates/<ref>.<locale>.j2``, with one
Jinja block per part of the message:

========= ===============================================
channel   blocks
========= ===============================================
push      ``title``, ``body``, optional ``url``
sms       ``text``
email     ``subject``, ``text``, optional ``html``
messenger ``text``
========= ===============================================

Filters for people's eyes, formatted per locale with Babel: ``money`` ("1 990 ₽"),
``plural`` ("3 товара"), ``number``, ``date``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime
from babel.numbers import format_currency, format_decimal
from jinja2 import ChainableUndefined, FileSystemLoader, TemplateNotFound, nodes, pass_context
from jinja2.runtime import Context

from engine.conditions import Sandbox

#: The blocks each channel needs, and the ones it may have.
REQUIRED_BLOCKS: Mapping[str, tuple[str, ...]] = {
    "push": ("title", "body"),
    "sms": ("text",),
    "email": ("subject", "text"),
    "messenger": ("text",),
}
OPTIONAL_BLOCKS: Mapping[str, tuple[str, ...]] = {"push": ("url",), "email": ("html",)}
#: Names a template may use (the render context).
CONTEXT_NAMES = (
    "cart",
    "customer",
    "visitor",
    "journey",
    "step",
    "discount",
    "locale",
    "now",
    "links",
)

# GSM 03.38 basic set plus the extension table (extension chars cost two septets).
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€\f")


@dataclass(frozen=True)
class SmsShape:
    """How an SMS text travels: encoding, length in units, and the number of parts."""

    encoding: str  # GSM-7 | UCS-2
    length: int
    parts: int
    per_part: int

    @classmethod
    def of(cls, text: str) -> SmsShape:
        if all(ch in _GSM_BASIC or ch in _GSM_EXTENDED for ch in text):
            length = sum(2 if ch in _GSM_EXTENDED else 1 for ch in text)
            single, multi, encoding = 160, 153, "GSM-7"
        else:
            # UTF-16 code units: characters outside the BMP (emoji) take two.
            length = sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)
            single, multi, encoding = 70, 67, "UCS-2"
        if length <= single:
            return cls(encoding, length, 1 if length else 0, single)
        return cls(encoding, length, math.ceil(length / multi), multi)


class TemplateSet:
    """The ``templates/`` directory: lookup by reference and locale, rendering by block."""

    def __init__(self, directory: Path, default_locale: str = "en") -> None:
        self.directory = Path(directory)
        self.default_locale = default_locale
        self.env = Sandbox(
            loader=FileSystemLoader(str(self.directory)),
            undefined=ChainableUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self.env.filters.update(money=_money, plural=_plural, number=_number, date=_date)

    def files(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(str(p) for p in self.directory.rglob("*.j2"))

    def name_for(
        self, ref: str, locale: str | None, default_locale: str | None = None
    ) -> str | None:
        """The file that serves ``ref`` in ``locale``: exact, then language, then default."""
        tried: list[str] = []
        for candidate in (
            locale,
            (locale or "").split("-")[0].split("_")[0],
            default_locale or self.default_locale,
        ):
            if candidate and candidate not in tried:
                tried.append(candidate)
                name = f"{ref}.{candidate}.j2"
                if (self.directory / name).is_file():
                    return name
        name = f"{ref}.j2"
        return name if (self.directory / name).is_file() else None

    def blocks(self, name: str) -> set[str]:
        source = self.env.loader.get_source(self.env, name)[0]  # type: ignore[union-attr]
        return {node.name for node in self.env.parse(source).find_all(nodes.Block)}

    def render(
        self,
        ref: str,
        channel: str,
        locale: str,
        context: Mapping[str, Any],
        default_locale: str | None = None,
    ) -> dict[str, str]:
        """Render every block of the channel; raises :class:`RenderError` with the reason."""
        name = self.name_for(ref, locale, default_locale)
        if name is None:
            raise RenderError(f"no template {ref!r} for locale {locale!r}")
        try:
            template = self.env.get_template(name)
        except TemplateNotFound:
            raise RenderError(f"no template file {name}") from None
        # Format numbers and plurals in the language the words are in: a German shopper
        # served the Russian fallback reads "2 товара", not "2 товаров".
        suffix = name[len(ref) + 1 : -len(".j2")] if name != f"{ref}.j2" else ""
        full = {**context, "locale": suffix or locale}
        ctx = template.new_context(full)
        parts: dict[str, str] = {}
        for block in (*REQUIRED_BLOCKS.get(channel, ()), *OPTIONAL_BLOCKS.get(channel, ())):
            if block not in template.blocks:
                if block in REQUIRED_BLOCKS.get(channel, ()):
                    raise RenderError(f"{name} has no {{% block {block} %}} needed for {channel}")
                continue
            try:
                text = "".join(template.blocks[block](ctx))
            except Exception as exc:  # a template bug must not take the worker down
                raise RenderError(f"{name} block {block}: {exc}") from None
            parts[block] = text.strip() if block != "html" else text
        parts["template"] = name
        return parts


class RenderError(Exception):
    """A message could not be rendered (missing template, block or name)."""


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
