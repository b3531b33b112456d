"""Lint: mistakes that load fine but would misbehave with shoppers. It only warns.

It is :data:`LINTS`, one flat ordered list of small functions (STYLE §5), each looking at
a :class:`Plan` and yielding warnings with a hint::

    fires_at_abandonment → unreachable_steps → after_expiry → discount_expires_first
    → window_never_opens → window_outlasts_expiry → caps_leave_no_room → sms_too_long

The first four, on the schedule itself, are here; the windows and caps that take a step
away are in :mod:`cartflow.engine.scenario.reachability`, the SMS length in
:mod:`cartflow.engine.scenario.sms_lint`; :class:`Plan` is
:mod:`cartflow.engine.scenario.lint_plan`'s.

Lint reasons about the *nominal schedule*: a step with ``after`` is due that long after
the abandonment anchor (the cart's last activity), one with ``after_previous`` that long
after the previous step's nominal time. Windows, caps and browsing only ever defer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal

from cartflow.engine.errors import Problem
from cartflow.engine.scenario.lint_plan import Lint, Plan, template_uses
from cartflow.engine.scenario.model import Discount, Settings
from cartflow.engine.scenario.reachability import as_schedule as _d
from cartflow.engine.scenario.reachability import (
    caps_leave_no_room,
    window_never_opens,
    window_outlasts_expiry,
)
from cartflow.engine.scenario.sms_lint import SAMPLE_CART_URL, SAMPLE_FIRST_NAME, sms_too_long


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

#: Defined here before the split, and still imported from here.
__all__ = [
    "LINTS",
    "SAMPLE_CART_URL",
    "SAMPLE_FIRST_NAME",
    "Lint",
    "Plan",
    "after_expiry",
    "caps_leave_no_room",
    "discount_expires_first",
    "fires_at_abandonment",
    "sms_too_long",
    "template_uses",
    "unreachable_steps",
    "window_never_opens",
    "window_outlasts_expiry",
]
