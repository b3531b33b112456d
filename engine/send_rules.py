"""Which windows and quiet hours one send obeys: the engine's own night, the defaults,
the scenario's and the step's (architecture §5). The arithmetic is
:mod:`cartflow.engine.timing`'s."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cartflow.engine.timing import DEFAULT_QUIET_HOURS, QUIET_CHANNELS, DailySpan, SendRules

if TYPE_CHECKING:  # the model imports engine.timing; this module stays below both
    from cartflow.engine.scenario.model import Scenario, Settings, Step


def send_rules(settings: Settings, scenario: Scenario, step: Step, channel: str) -> SendRules:
    """Windows of the step; quiet hours of the engine ∪ defaults ∪ scenario ∪ step.

    The engine's own night (21:00-09:00 for push, SMS and messengers, architecture §5) is always
    there: configuration can make nights longer or cover more channels, never shorter.
    """
    defaults = settings.defaults
    quiet: list[DailySpan] = []
    if channel in QUIET_CHANNELS:
        quiet.append(DailySpan.parse(DEFAULT_QUIET_HOURS, wrap=True))
    if channel in defaults.quiet_channels or channel in QUIET_CHANNELS:
        quiet += [DailySpan.parse(q, wrap=True) for q in defaults.quiet_hours]
    for extra in (scenario.quiet_hours, step.quiet_hours):
        quiet += [DailySpan.parse(q, wrap=True) for q in extra or ()]
    windows = tuple(DailySpan.parse(w, wrap=False) for w in step.window or ())
    return SendRules(windows=windows, quiet=tuple(quiet))
