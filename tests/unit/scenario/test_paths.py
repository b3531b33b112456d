"""Every dotted path is checked at load (engine/paths.py against engine/context_schema.py):
a misspelt attribute in a condition, a segment, an exclusion or any block of a template is
an error at its file:line:column with a did-you-mean hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from .sample_config import Edit, problems, write_config

X = "scenarios/x.yaml"
MAIN = "scenarios.yaml"
PUSH, SMS, EMAIL = (f"templates/cart/{kind}.ru.j2" for kind in ("push", "sms", "email"))
TRIGGER = '"cart.value > 0"'
EXCLUDE = ("{segments: [hesitant]}", '{segments: [hesitant], exclude: "customer.ordrs_total > 3"}')
STEP_WHEN = ("    channel: sms\n", '    channel: sms\n    when: "journey.snet < 2"\n')
HTML = (
    "{% block subject %}Your cart{% endblock %}\n"
    "{% block text %}Code {{ discount.code }}: {{ links.cart }}{% endblock %}\n"
    "{% block html %}\n"
    "{% for item in cart.items %}<p>{{ item.name }}: {{ item.price.huor }}</p>{% endfor %}\n"
    "{% set total = cart.value %}<p>{{ total.rael }} {{ cart.valu|money }}</p>\n"
    "{% endblock %}\n"
)


def _attr(name: str, of: str, hint: str) -> str:
    return f"unknown attribute '{name}' of '{of}' — did you mean '{hint}'?"


CASES = [
    pytest.param(
        {X: (TRIGGER, '"cart.valeu > 0"')}, X, 3, 34, _attr("valeu", "cart", "value"), id="trigger"
    ),
    pytest.param(
        {X: (TRIGGER, '"cart.value > 0 and customer.orders30d == 0"')},
        X,
        3,
        57,
        _attr("orders30d", "customer", "orders_30d"),
        id="trigger-second-term",
    ),
    pytest.param(
        {X: (TRIGGER, '"now.huor >= 10"')},
        X,
        3,
        33,
        _attr("huor", "now", "hour"),
        id="trigger-time",
    ),
    pytest.param(
        {X: (TRIGGER, "\"cart['itmes']|length > 0\"")},
        X,
        3,
        35,
        _attr("itmes", "cart", "items"),
        id="trigger-subscript",
    ),
    pytest.param(
        {X: (TRIGGER, '"journey.started_at.yaer > 2000"')},
        X,
        3,
        48,
        _attr("yaer", "journey.started_at", "year"),
        id="trigger-nested",
    ),
    pytest.param(
        {X: EXCLUDE}, X, 4, 53, _attr("ordrs_total", "customer", "orders_total"), id="exclude"
    ),
    pytest.param({X: STEP_WHEN}, X, 15, 20, _attr("snet", "journey", "sent"), id="step-when"),
    pytest.param(
        {MAIN: ('"visitor.sessions >= 2"', '"cart.item_cout >= 2"')},
        MAIN,
        9,
        19,
        "segment 'hesitant': " + _attr("item_cout", "cart", "item_count"),
        id="segment",
    ),
    pytest.param(
        {MAIN: ('"visitor.sessions >= 2"', '"session.cuont >= 2"')},
        MAIN,
        9,
        22,
        "segment 'hesitant': " + _attr("cuont", "session", "count"),
        id="segment-session",
    ),
    pytest.param(
        {PUSH: ("Your cart", "{{ customer.frist_name }}")},
        PUSH,
        1,
        30,
        _attr("frist_name", "customer", "first_name"),
        id="push-title",
    ),
    pytest.param(
        {PUSH: ("cart.item_count", "cart.item_cuont")},
        PUSH,
        2,
        25,
        _attr("item_cuont", "cart", "item_count"),
        id="push-body",
    ),
    pytest.param(
        {PUSH: ("{{ links.cart }}", "{{ links.crat }}")},
        PUSH,
        3,
        25,
        _attr("crat", "links", "cart"),
        id="push-url",
    ),
    pytest.param(
        {SMS: ("discount.percent", "discount.percnt")},
        SMS,
        1,
        29,
        _attr("percnt", "discount", "percent"),
        id="sms-text",
    ),
    pytest.param(
        {EMAIL: ("{% block subject %}Your cart", "{% block subject %}{{ step.chanel }}")},
        EMAIL,
        1,
        28,
        _attr("chanel", "step", "channel"),
        id="email-subject",
    ),
    pytest.param(
        {EMAIL: ("discount.code", "discount.cdoe")},
        EMAIL,
        2,
        34,
        _attr("cdoe", "discount", "code"),
        id="email-text",
    ),
    pytest.param(
        {EMAIL: HTML},
        EMAIL,
        4,
        63,
        "unknown attribute 'huor' of 'item.price' ('item.price' is a number)",
        id="email-html-loop-variable",
    ),
    pytest.param(
        {EMAIL: HTML}, EMAIL, 5, 41, _attr("rael", "total", "real"), id="email-html-set-name"
    ),
    pytest.param(
        {EMAIL: HTML}, EMAIL, 5, 57, _attr("valu", "cart", "value"), id="email-html-filtered"
    ),
    pytest.param(
        {SMS: ("{{ links.cart }}", "{{ now.weekdya() }}")},
        SMS,
        1,
        57,
        _attr("weekdya", "now", "weekday"),
        id="sms-method",
    ),
]


@pytest.mark.parametrize(("edits", "file", "line", "column", "message"), CASES)
def test_a_misspelt_attribute_is_refused_at_its_position(
    tmp_path: Path, edits: dict[str, Edit], file: str, line: int, column: int, message: str
) -> None:
    found = [(p.file, p.line, p.column, p.message) for p in problems(write_config(tmp_path, edits))]
    assert (file, line, column, message) in found, found


def test_every_misspelling_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(write_config(tmp_path, {EMAIL: HTML}))
    assert [(p.file, p.line, p.column) for p in found] == [
        (EMAIL, 4, 63),
        (EMAIL, 5, 41),
        (EMAIL, 5, 57),
    ]


def test_a_shops_own_data_is_not_guessed_at(tmp_path: Path) -> None:
    # an item's own fields and a visitor's features are open: not checked, not refused
    edits: dict[str, Edit] = {
        X: (TRIGGER, '"visitor.loyalty_tier == 2"'),
        PUSH: ("cart.item_count", "cart.items[0].colour ~ cart['items'][0].size"),
    }
    assert problems(write_config(tmp_path, edits)) == []


def test_a_segment_cannot_use_segments(tmp_path: Path) -> None:
    found = problems(
        write_config(tmp_path, {MAIN: ('"visitor.sessions >= 2"', "\"'vip' in segments\"")})
    )
    assert [(p.file, p.line, p.column) for p in found] == [(MAIN, 9, 23)]
    assert found[0].message.startswith("segment 'hesitant': unknown name 'segments' in condition")


def test_a_template_reading_a_discount_its_step_does_not_have_is_refused(tmp_path: Path) -> None:
    # Given the push (a step without 'discount:') printing a code
    edits: dict[str, Edit] = {PUSH: ("{{ cart.item_count }} items", "Code {{ discount.code }}")}

    # Then validate refuses it at the template's position, naming the step
    found = problems(write_config(tmp_path, {**edits, PUSH.replace(".ru.", ".en."): edits[PUSH]}))
    assert [(p.file, p.line, p.column, p.message) for p in found] == [
        (
            f"templates/cart/push.{locale}.j2",
            2,
            25,
            "template uses 'discount.code', but step 'push' of scenario 'cart' has no "
            "'discount:' (it would print nothing); give the step a discount or write "
            "{% if discount %}…{% endif %}",
        )
        for locale in ("en", "ru")
    ]


@pytest.mark.parametrize(
    "guarded",
    [
        "{% if discount %}Code {{ discount.code }}{% endif %}",
        "{{ discount.code if discount else '' }}",
        "{{ discount and discount.code }}",
        "{% if not discount %}no code{% else %}{{ discount.code }}{% endif %}",
    ],
)
def test_a_discount_read_under_a_test_of_it_is_fine(tmp_path: Path, guarded: str) -> None:
    edit = ("{{ cart.item_count }} items", guarded)
    assert problems(write_config(tmp_path, {PUSH: edit, PUSH.replace(".ru.", ".en."): edit})) == []
