"""Lint: mistakes that load fine but would misbehave with shoppers. It only warns.

It is :data:`LINTS`, one flat ordered list of small functions (STYLE §5), each looking at
a :class:`Plan` and yielding warnings with a hint::

    fires_at_abandonment → unreachable_steps → after_expiry → discount_expires_first
    → window_never_opens → window_outlasts_expiry → caps_leave_no_room → sms_too_long

(the two before the last are in :mod:`cartflow.engine.scenario.reachability`).

Lint reasons about the *nominal schedule*: a step with ``after`` is due that long after
the abandonment anchor (the cart's last activity), one with ``after_previous`` that long
after the previous step's nominal time. Windows, caps and browsing only ever defer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import TemplateError

from cartflow.engine.errors import Problem
from cartflow.engine.scenario.compiled import CompiledScenario
from cartflow.engine.scenario.model import Discount, Settings, Step
from cartflow.engine.scenario.reachability import WEEK_START as _WEEK_START
from cartflow.engine.scenario.reachability import as_schedule as _d
from cartflow.engine.scenario.reachability import caps_leave_no_room, window_outlasts_expiry
from cartflow.engine.scenario.yaml_source import Path_
from cartflow.engine.send_rules import send_rules
from cartflow.engine.tokens import CODE_LENGTH

#: Worst-case first name for the SMS length lint: 20 characters outside GSM-7 (UCS-2).
SAMPLE_FIRST_NAME = "Константин-Александр"
#: Worst-case cart link for the SMS length lint: 100 characters.
SAMPLE_CART_URL = (
    "https://shop.example.com/cart/restore?utm_source=cartflow&utm_medium=sms&c=".ljust(100, "7")
)


def template_uses(step: Step) -> Iterator[tuple[str, tuple[str, ...], Path_]]:
    """(reference, channels it serves, YAML path below the step) for every template."""
    refs: list[tuple[Any, Path_]] = [
        (v.template, ("variants", j, "template")) for j, v in enumerate(step.variants)
    ] or [(step.template, ("template",))]
    for ref, rest in refs:
        if isinstance(ref, dict):
            for channel, one in ref.items():
                yield str(one), (str(channel),), (*rest, str(channel))
        elif ref:
            yield str(ref), step.channels, rest


@dataclass(frozen=True)
class Plan:
    """One scenario as the lint sees it: its steps and their nominal times."""

    scenario: CompiledScenario
    settings: Settings
    templates: Any
    #: Nominal time of each step after the abandonment anchor.
    due: tuple[timedelta, ...]

    @classmethod
    def of(cls, scenario: CompiledScenario, settings: Settings, templates: Any) -> Plan:
        due: list[timedelta] = []
        for step in scenario.model.steps:
            if step.after_previous is not None:
                due.append((due[-1] if due else timedelta(0)) + step.after_previous)
            else:
                due.append(step.after or timedelta(0))
        return cls(scenario, settings, templates, tuple(due))

    @property
    def steps(self) -> tuple[Step, ...]:
        return self.scenario.model.steps

    @property
    def alive(self) -> int:
        """How many steps can run: scheduling the first one due at or after ``expires``
        ends the journey (one due exactly then meets the expiry check when it fires)."""
        expires = self.scenario.model.expires
        return next((i for i, due in enumerate(self.due) if due >= expires), len(self.due))

    def warn(self, index: int, rest: Path_, message: str) -> Problem:
        """A warning at ``rest`` below step ``index``."""
        line, column = self.scenario.source.where(self.scenario.step_loc(index, *rest))
        return Problem(self.scenario.source.path, line, column, message, "warning")

    def warn_timing(self, index: int, message: str) -> Problem:
        """A warning at the step's ``after`` / ``after_previous`` (or the step)."""
        step = self.steps[index]
        if step.after is not None:
            return self.warn(index, ("after",), message)
        at: Path_ = ("after_previous",) if step.after_previous is not None else ()
        return self.warn(index, at, message)


Lint = Callable[[Plan], Iterator[Problem]]


def fires_at_abandonment(plan: Plan) -> Iterator[Problem]:
    """A step due sooner than the trigger's ``idle``: the journey only starts when the cart
    has been idle that long, so the step goes out at that moment. Fine, but said, since
    ``after`` then promises a time it cannot keep; equal to ``idle`` is silent."""
    idle = plan.scenario.model.trigger.idle
    for i, step in enumerate(plan.steps[: plan.alive]):
        if plan.due[i] < idle:
            yield plan.warn_timing(
                i,
                f"step '{step.id}' is due {_d(plan.due[i])} after the last activity, before the "
                f"cart counts as abandoned: it fires at abandonment (idle {_d(idle)}); "
                f"write after: {_d(idle)} to say so",
            )


def unreachable_steps(plan: Plan) -> Iterator[Problem]:
    """A step that cannot keep its time: its ``after`` is not later than the previous
    step's due time (it would fire at the same time or before, so it goes out right after
    the previous one), or it follows a step at or after ``expires`` (the journey ends
    there, see :func:`after_expiry`, so it never runs)."""
    steps, alive = plan.steps, plan.alive
    for i in range(1, len(steps)):
        step, previous = steps[i], steps[i - 1]
        if i > alive:
            yield plan.warn_timing(
                i,
                f"step '{step.id}' is unreachable: it follows step '{steps[alive].id}', which "
                f"falls after the journey expires ({_d(plan.scenario.model.expires)}) and ends it; "
                "raise 'expires' or move the steps earlier",
            )
        elif i < alive and step.after is not None and step.after <= plan.due[i - 1]:
            yield plan.warn_timing(
                i,
                f"step '{step.id}' (after {_d(step.after)}) is not later than step "
                f"'{previous.id}' (due {_d(plan.due[i - 1])}): it would fire at the same time or "
                f"before, so it goes out right after '{previous.id}'; make 'after' later than "
                f"{_d(plan.due[i - 1])} or use 'after_previous'",
            )


def after_expiry(plan: Plan) -> Iterator[Problem]:
    """The first step due at or after ``expires``: scheduling it ends the journey."""
    if plan.alive < len(plan.steps):
        i, expires = plan.alive, plan.scenario.model.expires
        yield plan.warn_timing(
            i,
            f"step '{plan.steps[i].id}' is due {_d(plan.due[i])} after abandonment, not before "
            f"the journey expires ({_d(expires)}): it never runs and the journey ends there; "
            f"raise 'expires' above {_d(plan.due[i])} or move the step earlier",
        )


def discount_expires_first(plan: Plan) -> Iterator[Problem]:
    """A step without a discount of its own, due when every code sent earlier has expired:
    the shopper is reminded of a cart whose code no longer works. Code *j* expires at
    ``due[j] + ttl``; the warning names the code that lives longest and fires when it
    expires at or before the later step is due (nominal times: a deferral moves both)."""
    steps = plan.steps
    for i in range(plan.alive):
        codes = [(plan.due[j] + d.ttl, j) for j in range(i) if (d := steps[j].discount)]
        if steps[i].discount is not None or not codes:
            continue
        expiry, j = max(codes)
        discount = steps[j].discount
        assert discount is not None
        if expiry <= plan.due[i]:
            yield plan.warn_timing(
                i,
                f"the {_describe(discount, plan.settings)} code from step {steps[j].id} expires "
                f"{_d(discount.ttl)} after it is sent, before step {steps[i].id} at "
                f"{_d(plan.due[i])}, which has no discount of its own; give '{steps[i].id}' a "
                f"discount or make the ttl at least {_d(plan.due[i] - plan.due[j])}",
            )


def _describe(discount: Discount, settings: Settings) -> str:
    if discount.percent is not None:
        return f"{discount.percent.normalize():f}%"
    return f"{(discount.amount or Decimal(0)).normalize():f} {settings.defaults.currency}"


def window_never_opens(plan: Plan) -> Iterator[Problem]:
    """A channel on which the step can never send: its window (every day, every hour)
    lies inside quiet hours for that channel, so the send guard always skips it. Asks
    :meth:`SendRules.next_opening` for an opening within a week from a Monday; windows and
    quiet hours are both local wall-clock times, so one fixed zone (UTC) answers for all."""
    model = plan.scenario.model
    for i, step in enumerate(plan.steps[: plan.alive]):
        for channel in step.channels:
            rules = send_rules(plan.settings, model, step, channel)
            if rules.next_opening(_WEEK_START, ZoneInfo("UTC"), horizon_days=7) is not None:
                continue
            quiet = ", ".join(dict.fromkeys(q.text for q in rules.quiet))
            at: Path_ = ("window",) if step.window else ("quiet_hours",) if step.quiet_hours else ()
            what = f"its window {', '.join(step.window)}" if step.window else "the whole day"
            yield plan.warn(
                i,
                at,
                f"step '{step.id}' can never send on {channel}: {what} lies inside quiet hours "
                f"for {channel} ({quiet}), so it is always skipped; move the window out of them",
            )


def sms_too_long(plan: Plan) -> Iterator[Problem]:
    """An SMS template that can need more parts than the step's ``max_sms_parts`` (the send
    path skips such a message). Every template file the step can use for SMS, in every
    locale, is rendered with a worst-case sample — a 20-character non-GSM first name, the
    longest code the discount issues and a 100-character cart link — and measured with
    :class:`SmsShape`. Templates that do not load are left to the errors above."""
    from cartflow.engine.render import RenderError, SmsShape

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


#: The lint, in order.
LINTS: Sequence[Lint] = (
    fires_at_abandonment,
    unreachable_steps,
    after_expiry,
    discount_expires_first,
    window_never_opens,
    window_outlasts_expiry,
    caps_leave_no_room,
    sms_too_long,
)

__all__ = ["LINTS", "Lint", "Plan", "template_uses"]
