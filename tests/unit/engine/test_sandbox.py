"""The sandbox's limits at run time (engine/sandbox.py): what only the data makes too big
is stopped while it runs, quickly, with the reason; and HTML parts are escaped
(engine/render.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from cartflow.engine.conditions import compile_condition
from cartflow.engine.render import RenderError, TemplateSet
from cartflow.engine.sandbox import (
    TEMPLATE_LIMITS,
    LimitError,
    Sandbox,
    TemplateLimitError,
    evaluation,
)
from cartflow.engine.scenario.loader import Config

#: A hang detector, not a speed claim (speed lives in bench/): unbounded, each of these runs
#: for hours or exhausts memory; stopped by its budget it takes milliseconds. The bound is
#: generous so that a loaded CI machine never turns it into a flaky timing assertion.
QUICK = 30.0


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        pytest.param("cart.value ** cart.item_count > 0", "digits", id="power"),
        pytest.param("'x' * cart.item_count != ''", "would build", id="repetition"),
        pytest.param("range(cart.item_count)|length > 0", "range()", id="range"),
        pytest.param("cart.id|center(cart.item_count) != ''", "a width of", id="padding"),
        pytest.param("cart.id.center(cart.item_count) != ''", "a width of", id="str-method"),
        pytest.param("('{:%d}' % cart.item_count).format(1) != ''", "would build", id="format"),
    ],
)
def test_a_condition_the_data_makes_too_big_stops_quickly(source: str, reason: str) -> None:
    # Given a condition that is fine as written, and a cart that makes it huge
    condition = compile_condition(source)
    context = {"cart": {"id": "c1", "value": 99, "item_count": 10**9}}

    # When it is evaluated, then it stops with the reason instead of computing
    started = time.monotonic()
    with pytest.raises(LimitError, match=reason):
        condition.evaluate(context)
    assert time.monotonic() - started < QUICK


def test_constant_expressions_are_not_folded_while_compiling() -> None:
    # Jinja folds constants at compile time: the sandbox refuses them before that
    started = time.monotonic()
    with pytest.raises(TemplateLimitError, match="would build 1,000,000,000"):
        Sandbox().from_string("{{ 'a' * 10**9 }}")
    with pytest.raises(TemplateLimitError, match="a width of 1,000,000,000"):
        Sandbox().from_string("{{ 'a'|center(1000000000) }}")
    assert time.monotonic() - started < QUICK


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(
            "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
            "steps",
            id="nested-loops",
        ),
        pytest.param(
            "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
            "{{ f(60) }}",
            "steps",
            id="exponential-macro",
        ),
        pytest.param(
            "{% set ns = namespace(s='ab') %}{% for i in range(64) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
            "'~' would build",
            id="doubling-text",
        ),
        pytest.param(
            "{% set x = 'x' * 100000 %}{% for i in range(10000) %}{{ x }}{% endfor %}",
            "output more than 1,000,000 characters",
            id="huge-output",
        ),
        pytest.param(
            "{% set x = 'x' * 100000 %}{% set l = [x, x, x, x] %}{{ l|length }}",
            "a list or mapping would build",
            id="shared-list",
        ),
        pytest.param("{{ lipsum(10**6) }}", "'lipsum' is undefined", id="lipsum"),
    ],
)
def test_a_runaway_template_is_a_render_error_not_a_hang(
    tmp_path: Path, body: str, reason: str
) -> None:
    # Given a template that is fine as written but runs away
    (tmp_path / "t.en.j2").write_text("{% block text %}" + body + "{% endblock %}\n")
    templates = TemplateSet(tmp_path)

    # When it is rendered, then it stops quickly with the reason
    started = time.monotonic()
    with pytest.raises(RenderError, match=reason):
        templates.render("t", "sms", "en", {})
    assert time.monotonic() - started < QUICK


def test_the_budget_is_per_evaluation() -> None:
    template = Sandbox().from_string("{% for i in range(6000) %}{% endfor %}done")
    for _ in range(3):  # each rendering starts afresh
        with evaluation(TEMPLATE_LIMITS):
            assert template.render() == "done"
    with evaluation(TEMPLATE_LIMITS), pytest.raises(LimitError, match="steps"):
        for _ in range(20):  # ... and one evaluation cannot go on for ever
            template.render()


# -- HTML ------------------------------------------------------------------------------------
@pytest.fixture
def templates(shipped_config: Config) -> TemplateSet:
    return shipped_config.templates  # type: ignore[no-any-return]


def _context(first_name: str, item: str) -> dict[str, Any]:
    return {
        "cart": {
            "value": 4990,
            "currency": "RUB",
            "item_count": 1,
            "items": [{"name": item, "price": 4990, "quantity": 1, "url": "https://s/p?a=1&b=2"}],
        },
        "customer": {"first_name": first_name},
        "discount": {"code": "CFABC23456", "percent": 5.0},
        "links": {"cart": "https://shop.example/cart/9"},
    }


@pytest.mark.parametrize("locale", ["en", "ru", "uk"])
def test_shopper_html_is_escaped_in_the_email_html_and_kept_in_the_text(
    templates: TemplateSet, locale: str
) -> None:
    # Given a shopper and a product whose names hold markup
    context = _context("<b>Anna</b>", "<script>alert(1)</script> & Co")

    # When the email is rendered
    parts = templates.render("abandoned_cart/email", "email", locale, context, "ru")

    # Then the HTML shows them as text, and the plain-text parts as they are
    html = parts["html"]
    assert "<b>Anna</b>" not in html and "&lt;b&gt;Anna&lt;/b&gt;" in html
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in html
    assert 'href="https://s/p?a=1&amp;b=2"' in html  # attributes too
    assert "<table>" in html and "<b>CFABC23456</b>" in html  # the template's own markup
    assert "<b>Anna</b>" in parts["text"]
    assert "<script>alert(1)</script> & Co" in parts["text"]
    assert parts["subject"].startswith("<b>Anna</b>")


def test_the_shipped_email_html_still_reads_right(templates: TemplateSet) -> None:
    parts = templates.render("abandoned_cart/email", "email", "ru", _context("Анна", "Кепка"), "ru")
    assert parts["html"].startswith("<p>Здравствуйте, Анна!</p>\n<p>В вашей корзине 1\u00a0товар")
    assert "4\u00a0990\u00a0₽" in parts["html"]
    assert "&amp;nbsp;" not in parts["html"] and "&amp;#" not in parts["html"]


def test_push_and_sms_are_not_escaped(templates: TemplateSet) -> None:
    context = _context("<b>Anna</b> & Co", "x")
    assert templates.render("abandoned_cart/push", "push", "en", context)["title"].startswith(
        "<b>Anna</b> & Co, you"
    )
    assert templates.render("abandoned_cart/sms", "sms", "en", context)["text"].startswith(
        "<b>Anna</b> & Co, your"
    )


def test_templates_are_read_when_the_configuration_loads(tmp_path: Path) -> None:
    # Given a loaded template set
    (tmp_path / "t.en.j2").write_text("{% block text %}first{% endblock %}\n")
    templates = TemplateSet(tmp_path)

    # When the file changes on disk (not yet validated, not reloaded)
    (tmp_path / "t.en.j2").write_text("{% block text %}{{ 9**(9**9) }}{% endblock %}\n")
    (tmp_path / "new.en.j2").write_text("{% block text %}new{% endblock %}\n")

    # Then the loaded configuration renders what it validated
    assert templates.render("t", "sms", "en", {})["text"] == "first"
    with pytest.raises(RenderError, match="no template 'new'"):
        templates.render("new", "sms", "en", {})


def _write(directory: Path, files: dict[str, str]) -> TemplateSet:
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return TemplateSet(directory)


EMAIL = "{% block subject %}S{% endblock %}{% block text %}T{% endblock %}"


def test_blocks_and_html_partials_inside_the_html_block_are_escaped(tmp_path: Path) -> None:
    templates = _write(
        tmp_path,
        {
            "e.en.j2": EMAIL + "{% block html %}<p>{{ customer.first_name }}</p>"
            "{% block inner %}<i>{{ customer.first_name }}</i>{% endblock %}"
            '{% include "row.html.j2" %}{% endblock %}\n',
            "row.html.j2": "<td>{{ customer.first_name }}</td>",
        },
    )
    html = templates.render("e", "email", "en", {"customer": {"first_name": "<b>x</b>"}})["html"]
    assert (
        html
        == "<p>&lt;b&gt;x&lt;/b&gt;</p><i>&lt;b&gt;x&lt;/b&gt;</i><td>&lt;b&gt;x&lt;/b&gt;</td>"
    )


@pytest.mark.parametrize(
    ("html", "reason"),
    [
        pytest.param('{% include "row.j2" %}', "can include only HTML templates", id="include"),
        pytest.param("<pre>{{ self.text() }}</pre>", "cannot print the block 'text'", id="self"),
    ],
)
def test_what_would_print_unescaped_in_the_html_block_is_refused(
    tmp_path: Path, html: str, reason: str
) -> None:
    templates = _write(
        tmp_path,
        {
            "e.en.j2": EMAIL + "{% block html %}" + html + "{% endblock %}\n",
            "row.j2": "{{ customer.first_name }}",
        },
    )
    with pytest.raises(RenderError, match=reason):
        templates.render("e", "email", "en", {"customer": {"first_name": "<b>x</b>"}})


def test_a_value_nested_past_what_is_measured_counts_as_too_big() -> None:
    # Given a template that doubles a list 16 times and hides it under 34 more levels
    # (a review found this measured as tiny, then printed 2**32 leaves for ever)
    from cartflow.engine.limits import LimitError, evaluation
    from cartflow.engine.render import TemplateSandbox

    round_ = (
        "{% for i in range(16) %}{% set ns.x = [ns.x, ns.x] %}{% endfor %}"
        "{% for i in range(34) %}{% set ns.x = [ns.x] %}{% endfor %}"
    )
    template = TemplateSandbox(autoescape=False).from_string(
        "{% set ns = namespace(x=1) %}" + round_ * 2 + "{{ ns.x }}"
    )
    # Then rendering stops at once with a limit error, not after printing it
    with pytest.raises(LimitError, match="limit is"), evaluation(TEMPLATE_LIMITS):
        template.render()
