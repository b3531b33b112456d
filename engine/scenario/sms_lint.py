"""Lint: an SMS that can need more parts than its step allows (``max_sms_parts``), which
the send path would skip. Each SMS template is rendered with a worst-case sample context
(:func:`_sample`) and measured with :class:`~cartflow.engine.sms.SmsShape`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import TemplateError

from cartflow.engine.errors import Problem, RenderError
from cartflow.engine.scenario.lint_plan import Plan, template_uses
from cartflow.engine.scenario.model import Settings, Step
from cartflow.engine.sms import SmsShape
from cartflow.engine.tokens import CODE_LENGTH

#: Worst-case first name for the SMS length lint: 20 characters outside GSM-7 (UCS-2).
SAMPLE_FIRST_NAME = "Константин-Александр"
#: Worst-case cart link for the SMS length lint: 100 characters.
SAMPLE_CART_URL = (
    "https://shop.example.com/cart/restore?utm_source=cartflow&utm_medium=sms&c=".ljust(100, "7")
)


def sms_too_long(plan: Plan) -> Iterator[Problem]:
    """An SMS template that can need more parts than the step's ``max_sms_parts`` (the send
    path skips such a message). Every template file the step can use for SMS, in every
    locale, is rendered with a worst-case sample — a 20-character non-GSM first name, the
    longest code the discount issues and a 100-character cart link — and measured with
    :class:`SmsShape`. Templates that do not load are left to the errors above."""
    templates = plan.templates
    for step in plan.steps[: plan.alive]:
        refs = {ref for ref, channels, _ in template_uses(step) if "sms" in channels}
        for ref, name, locale in sorted(_template_files(templates, plan.settings, refs)):
            try:
                text = templates.render(
                    ref, "sms", locale, _sample(plan, step, locale), plan.settings.defaults.locale
                )["text"]
            except (RenderError, TemplateError):  # reported as an error by _check_template
                continue
            shape = SmsShape.of(text)
            if shape.parts > step.max_sms_parts:
                source = templates.source(name)
                code = f", a {len(_sample_code(step))}-character code" if step.discount else ""
                yield Problem(
                    str(templates.directory / name),
                    *_block_position(source, "text"),
                    f"SMS of step '{step.id}' ({locale}) can need {shape.parts} parts "
                    f"({shape.encoding}, {shape.length} characters, {shape.per_part} per part) "
                    f"with a {len(SAMPLE_FIRST_NAME)}-character non-GSM name{code} and a "
                    f"{len(SAMPLE_CART_URL)}-character cart link; the step allows "
                    f"{step.max_sms_parts} (max_sms_parts) and skips longer ones: shorten the "
                    "text or raise max_sms_parts",
                    "warning",
                )


def _template_files(
    templates: Any, settings: Settings, refs: set[str]
) -> Iterator[tuple[str, str, str]]:
    """(reference, file name, locale) for every locale a reference has a file in, and
    every locale the configuration requires."""
    defaults = settings.defaults
    for ref in refs:
        base = templates.directory / ref
        found = {
            p.name.removesuffix(".j2").rsplit(".", 1)[-1]
            for p in base.parent.glob(f"{base.name}.*.j2")
        }
        served: set[str] = set()
        for locale in sorted({defaults.locale, *defaults.locales, *found}):
            name = templates.name_for(ref, locale, defaults.locale)
            if name is not None and name not in served:
                served.add(name)
                yield ref, name, locale


def _sample(plan: Plan, step: Step, locale: str) -> dict[str, Any]:
    """A worst-case message context for measuring an SMS."""
    defaults = plan.settings.defaults
    now = datetime(2026, 11, 22, 10, 0, tzinfo=ZoneInfo(defaults.timezone))
    items = [
        {
            "sku": f"SKU-{n}",
            "name": f"Item number {n} with a fairly long name",
            "price": 99999.99,
            "quantity": 99,
            "url": SAMPLE_CART_URL,
            "image": SAMPLE_CART_URL,
        }
        for n in range(3)
    ]
    discount = step.discount
    return {
        "cart": {
            "id": "c_" + "7" * 30,
            "value": 1234567.89,
            "currency": defaults.currency,
            "item_count": 297,
            "items": items,
            "url": SAMPLE_CART_URL,
            "status": "abandoned",
            "created_at": now,
        },
        "customer": {
            "id": "p_1",
            "first_name": SAMPLE_FIRST_NAME,
            "locale": locale,
            "orders_30d": 0,
            "orders_total": 12,
        },
        "visitor": {"sessions": 12, "last_seen_at": now, "is_known": True},
        "session": {"id": "s_1", "started_at": now, "last_seen_at": now, "count": 12},
        "segments": set(plan.settings.segments),
        "journey": {
            "scenario": plan.scenario.id,
            "step": 0,
            "group": "treatment",
            "started_at": now,
            "sent": 2,
        },
        "step": {"id": step.id, "channel": "sms"},
        "discount": None
        if discount is None
        else {
            "code": _sample_code(step),
            "percent": float(discount.percent) if discount.percent is not None else None,
            "amount": float(discount.amount) if discount.amount is not None else None,
            "currency": None if discount.percent is not None else defaults.currency,
            "expires_at": now + discount.ttl,
        },
        "links": {"cart": SAMPLE_CART_URL},
        "now": now,
    }


def _sample_code(step: Step) -> str:
    """The longest code the step's discount issues: its prefix and the random part."""
    return (step.discount.prefix if step.discount else "") + "W" * CODE_LENGTH


def _block_position(source: str, block: str) -> tuple[int, int]:
    match = re.search(rf"\{{%-?\s*block\s+{block}\b", source)
    if match is None:
        return 1, 1
    line = source.count("\n", 0, match.start()) + 1
    return line, match.start() - (source.rfind("\n", 0, match.start()) + 1) + 1
