"""Lint: steps the frequency caps or the send window take away from shoppers, with the
arithmetic that shows it.

* :func:`window_never_opens` — on a channel, the step's window lies inside quiet hours,
  so it can never send there;
* :func:`caps_leave_no_room` — the step would pass a cap for everyone who got the earlier
  steps, and the room the cap makes comes too late (after ``max_staleness``, after the
  journey expires, or never with ``on_cap: skip``);
* :func:`window_outlasts_expiry` — for a shopper who abandons at the wrong hour, the
  step's ``window`` (with the quiet hours) holds it back past the journey's expiry.

They reason on the nominal schedule of :class:`~cartflow.engine.scenario.lint_plan.Plan`
(this journey's own messages; other scenarios' only make it worse).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cartflow.engine.errors import Problem
from cartflow.engine.scenario.lint_plan import Plan
from cartflow.engine.scenario.yaml_source import Path_
from cartflow.engine.send_rules import send_rules
from cartflow.engine.timing import SendRules, format_duration

#: A Monday, where the window lint starts looking (a week ahead).
WEEK_START = datetime(2026, 1, 5, tzinfo=UTC)


def as_schedule(delta: timedelta) -> str:
    """A duration as a schedule reads it: hours from one hour up to a week (``48h``)."""
    if delta < timedelta(hours=1) or delta >= timedelta(days=7):
        return format_duration(delta)
    hours, rest = divmod(int(delta.total_seconds()), 3600)
    return f"{hours}h" + (format_duration(timedelta(seconds=rest)) if rest else "")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def caps_leave_no_room(plan: Plan) -> Iterator[Problem]:
    """A step that would be one message too many for a cap, counting only the earlier
    steps of the same journey on their nominal times, and that the cap's room comes too
    late for: ``on_cap: skip``, or the oldest counted message leaves the cap's period
    after ``max_staleness`` or after the journey expires."""
    model, steps = plan.scenario.model, plan.steps
    for i, step in enumerate(steps[: plan.alive]):
        for cap in plan.settings.caps:
            if cap.channel not in ("any", step.channel):
                continue
            counted = [
                j
                for j in range(i)
                if cap.channel in ("any", steps[j].channel) and plan.due[i] - plan.due[j] < cap.per
            ]
            if len(counted) < cap.max:
                continue
            frees_at = plan.due[counted[len(counted) - cap.max]] + cap.per
            if step.on_cap == "skip":
                why = "and the step has on_cap: skip"
            elif frees_at > plan.due[i] + model.max_staleness:
                why = (
                    f"and room opens only at +{as_schedule(frees_at)}, more than max_staleness "
                    f"{as_schedule(model.max_staleness)} after it is due"
                )
            elif frees_at >= model.expires:
                why = (
                    f"and room opens only at +{as_schedule(frees_at)}, when the journey has "
                    f"expired ({as_schedule(model.expires)})"
                )
            else:
                continue  # deferred, not lost
            earlier = ", ".join(f"{steps[j].id} +{as_schedule(plan.due[j])}" for j in counted)
            cap_text = f"{cap.channel} {cap.max}/{format_duration(cap.per)}"
            yield plan.warn_timing(
                i,
                f"step {step.id} (+{as_schedule(plan.due[i])}) would be the "
                f"{_ordinal(len(counted) + 1)} message within {format_duration(cap.per)} "
                f"({earlier}), cap {cap_text} allows {cap.max}, {why}: everyone who got the "
                "earlier steps misses it; raise the cap, space the steps out or drop one",
            )
            break  # one cap is reason enough


def window_never_opens(plan: Plan) -> Iterator[Problem]:
    """A channel on which the step can never send: its window (every day, every hour)
    lies inside quiet hours for that channel, so the send guard always skips it. Asks
    :meth:`SendRules.next_opening` for an opening within a week from a Monday; windows and
    quiet hours are both local wall-clock times, so one fixed zone (UTC) answers for all."""
    model = plan.scenario.model
    for i, step in enumerate(plan.steps[: plan.alive]):
        for channel in step.channels:
            rules = send_rules(plan.settings, model, step, channel)
            if rules.next_opening(WEEK_START, ZoneInfo("UTC"), horizon_days=7) is not None:
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


def window_outlasts_expiry(plan: Plan) -> Iterator[Problem]:
    """A step whose window and quiet hours can hold it back past the journey's expiry.
    The longest wait starts where sending closes (a window's end, quiet hours' start);
    each closing moment of a week is tried (windows and quiet hours are local times, so
    one zone, UTC, answers for every shopper)."""
    model, zone = plan.scenario.model, ZoneInfo("UTC")
    for i, step in enumerate(plan.steps[: plan.alive]):
        if not step.window:
            continue  # quiet hours alone hold a step back half a day at most
        rules = send_rules(plan.settings, model, step, step.channel)
        worst: tuple[timedelta, datetime, datetime] | None = None
        for closing in _closings(rules):
            if rules.allows(closing, zone):
                continue
            opening = rules.next_opening(closing, zone)
            if opening is None:
                break  # never opens: window_never_opens says so
            if worst is None or opening - closing > worst[0]:
                worst = (opening - closing, closing, opening)
        if worst is None or plan.due[i] + worst[0] < model.expires:
            continue
        wait, closing, opening = worst
        yield plan.warn(
            i,
            ("window",),
            f"step {step.id} is due +{as_schedule(plan.due[i])}, and its window "
            f"{', '.join(step.window)} with the quiet hours can hold it "
            f"back {as_schedule(wait)} (due {closing:%a %H:%M}, sent {opening:%a %H:%M}): "
            f"+{as_schedule(plan.due[i] + wait)} is not before the journey expires "
            f"({as_schedule(model.expires)}), so shoppers who abandon at that hour never get "
            f"it; raise 'expires' above {as_schedule(plan.due[i] + wait)} or widen the window",
        )


def _closings(rules: SendRules) -> Iterator[datetime]:
    """Every moment of a week where sending closes: a window's end, quiet hours' start."""
    for offset in range(7):
        day = WEEK_START + timedelta(days=offset)
        for span in rules.windows:
            yield day.replace(hour=span.end.hour, minute=span.end.minute)
        for span in rules.quiet:
            yield day.replace(hour=span.start.hour, minute=span.start.minute)
