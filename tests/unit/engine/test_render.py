"""Template rendering with the shipped templates, locale formatting, and SMS encoding
(engine/render.py)."""

from __future__ import annotations

from typing import Any

import pytest

from cartflow.engine.render import RenderError, SmsShape, TemplateSet
from cartflow.engine.scenario.loader import Config

NBSP = "\u00a0"


@pytest.fixture
def templates(shipped_config: Config) -> TemplateSet:
    return shipped_config.templates  # type: ignore[no-any-return]


def context(**cart: Any) -> dict[str, Any]:
    view = {
        "value": 9980.0,
        "currency": "RUB",
        "item_count": 2,
        "url": "https://s/c",
        "items": [{"name": "Кроссовки", "price": 4990, "quantity": 2}],
    }
    view.update(cart)
    return {
        "cart": view,
        "customer": {"first_name": "Анна"},
        "discount": {"code": "CFABC23456", "percent": 5.0},
        "links": {"cart": "https://shop.example/cart/9"},
    }


# -- the shipped templates ----------------------------------------------------------------------
def test_push_in_russian(templates: TemplateSet) -> None:
    parts = templates.render("abandoned_cart/push", "push", "ru", context(), "ru")
    assert parts == {
        "title": "Анна, вы кое-что забыли",
        "body": f"В корзине 2{NBSP}товара на 9{NBSP}980{NBSP}₽",
        "url": "https://shop.example/cart/9",
        "template": "abandoned_cart/push.ru.j2",
    }


def test_push_without_a_first_name(templates: TemplateSet) -> None:
    ctx = context()
    ctx["customer"] = {"first_name": None}
    assert templates.render("abandoned_cart/push", "push", "ru", ctx, "ru")["title"] == (
        "Вы кое-что забыли"
    )


@pytest.mark.parametrize(
    ("count", "word"),
    [
        (1, "товар"),
        (2, "товара"),
        (4, "товара"),
        (5, "товаров"),
        (11, "товаров"),
        (21, "товар"),
        (22, "товара"),
        (25, "товаров"),
        (111, "товаров"),
    ],
)
def test_russian_plurals(templates: TemplateSet, count: int, word: str) -> None:
    body = templates.render("abandoned_cart/push", "push", "ru", context(item_count=count), "ru")[
        "body"
    ]
    assert body.startswith(f"В корзине {count}{NBSP}{word} на")


def test_money_in_english_with_cents(templates: TemplateSet) -> None:
    body = templates.render(
        "abandoned_cart/push", "push", "en", context(value=19.5, currency="USD"), "ru"
    )["body"]
    assert "$19.50" in body


def test_sms_carries_the_discount_code_and_link(templates: TemplateSet) -> None:
    text = templates.render("abandoned_cart/sms", "sms", "ru", context(), "ru")["text"]
    assert text == (
        "Анна, ваша корзина ждёт. Скидка 5% по коду CFABC23456: https://shop.example/cart/9"
    )


def test_email_has_subject_text_and_escaped_html(templates: TemplateSet) -> None:
    ctx = context(
        items=[
            {
                "name": "<script>x</script>",
                "price": 10,
                "quantity": 1,
                "image": 'i.jpg" onerror="alert(1)',
            }
        ]
    )
    parts = templates.render("abandoned_cart/email", "email", "en", ctx, "ru")
    assert set(parts) == {"subject", "text", "html", "template"}
    assert parts["subject"] == "Анна, your cart is waiting — 5% off"
    assert "<script>" not in parts["html"]
    assert "&lt;script&gt;" in parts["html"]
    assert 'onerror="' not in parts["html"]


@pytest.mark.parametrize(
    ("locale", "file"),
    [
        ("ru", "abandoned_cart/push.ru.j2"),
        ("ru-RU", "abandoned_cart/push.ru.j2"),
        ("uk", "abandoned_cart/push.uk.j2"),
        ("en_GB", "abandoned_cart/push.en.j2"),
        ("de", "abandoned_cart/push.ru.j2"),  # no German: the shop default
        (None, "abandoned_cart/push.ru.j2"),
    ],
)
def test_template_lookup_by_locale(templates: TemplateSet, locale: str | None, file: str) -> None:
    assert templates.name_for("abandoned_cart/push", locale, "ru") == file


def test_fallback_template_is_formatted_in_its_own_language(templates: TemplateSet) -> None:
    body = templates.render("abandoned_cart/push", "push", "de", context(), "ru")["body"]
    assert body == f"В корзине 2{NBSP}товара на 9{NBSP}980{NBSP}₽"


def test_missing_template_is_a_render_error(templates: TemplateSet) -> None:
    with pytest.raises(RenderError, match="no template 'nope/push' for locale 'ru'"):
        templates.render("nope/push", "push", "ru", context(), "ru")


def test_missing_block_for_the_channel_is_a_render_error(templates: TemplateSet) -> None:
    with pytest.raises(RenderError, match=r"sms\.ru\.j2 has no \{% block subject %\}"):
        templates.render("abandoned_cart/sms", "email", "ru", context(), "ru")


def test_template_error_becomes_a_render_error(templates: TemplateSet) -> None:
    ctx = context()
    ctx["discount"] = None  # a step without a discount using a template that needs one
    with pytest.raises(RenderError, match="block text"):
        templates.render("abandoned_cart/sms", "sms", "ru", ctx, "ru")


# -- SMS encoding and parts ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "encoding", "length", "parts"),
    [
        ("", "GSM-7", 0, 0),
        ("Hello", "GSM-7", 5, 1),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("€" * 80, "GSM-7", 160, 1),  # extension characters cost two septets
        ("€" * 81, "GSM-7", 162, 2),
        ("я" * 70, "UCS-2", 70, 1),
        ("я" * 71, "UCS-2", 71, 2),
        ("я" * 134, "UCS-2", 134, 2),
        ("я" * 135, "UCS-2", 135, 3),
        ("😀" * 35, "UCS-2", 70, 1),  # outside the BMP: two UTF-16 units each
        ("😀" * 36, "UCS-2", 72, 2),
        ("a" * 159 + "я", "UCS-2", 160, 3),  # one Cyrillic letter switches the whole text
        # an escape pair is never split across parts: 152 + (€ would straddle) → 3 parts
        ("a" * 152 + "€" + "a" * 152, "GSM-7", 306, 3),
        ("a" * 151 + "€" + "a" * 153, "GSM-7", 306, 2),  # € fits at the end of part 1
        ("€" * 153, "GSM-7", 306, 3),  # 76 pairs per part, not 76.5
        ("€" * 152, "GSM-7", 304, 2),
        # a surrogate pair is never split either
        ("я" * 66 + "😀" + "я" * 66, "UCS-2", 134, 3),
        ("я" * 65 + "😀" + "я" * 67, "UCS-2", 134, 2),
        ("😀" * 67, "UCS-2", 134, 3),  # 33 emoji per 67-unit part
        ("😀" * 66, "UCS-2", 132, 2),
    ],
)
def test_sms_shape(text: str, encoding: str, length: int, parts: int) -> None:
    shape = SmsShape.of(text)
    assert (shape.encoding, shape.length, shape.parts) == (encoding, length, parts)
