"""Conditions that could not be evaluated fail closed, and say so.

A trigger, a step condition or a segment that raises while it is evaluated (a value
missing from the data, a division by zero, a limit passed) does not quietly count as
"false": :func:`evaluate` returns a :class:`Failed` with the reason, and the caller
decides the closed way — no journey, no message, not in the segment, *excluded* — and
records the decision. Each failure is logged once per scenario, condition and
configuration version (``condition_failed``, at warning) and counted in
:data:`FAILURES`, ready for ``/metrics``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import structlog

from cartflow.engine.conditions import Condition

log = structlog.get_logger("cartflow.conditions")


class ConditionKind(StrEnum):
    """Which condition of a configuration failed; one vocabulary for the decision log,
    the ``condition_failed`` log line and :data:`FAILURES`."""

    TRIGGER = "trigger"
    EXCLUDE = "exclude"
    STEP = "step"
    SEGMENT = "segment"


#: Evaluations that failed, by (scenario, kind); a segment's scenario is ``""`` (segments
#: belong to the whole configuration).
FAILURES: Counter[tuple[str, str]] = Counter()
#: Most (version, scenario, kind, condition) remembered as logged before starting over.
MAX_LOGGED = 10_000
_logged: set[tuple[str, str, str, str]] = set()


@dataclass(frozen=True)
class Failed:
    """A condition that could not be evaluated: ``which`` names it (a step or segment
    id, else the kind), ``reason`` is the error's class and message."""

    kind: ConditionKind
    which: str
    source: str
    reason: str

    def describe(self) -> str:
        """For the decision log: what failed, as written, and why."""
        return f"{self.kind} condition could not be evaluated ({self.source}): {self.reason}"


def evaluate(
    condition: Condition,
    context: Mapping[str, Any],
    *,
    kind: ConditionKind,
    version: str,
    scenario: str = "",
    which: str = "",
) -> bool | Failed:
    """``condition`` on ``context``, or :class:`Failed` when it raised (logged once per
    version, counted every time)."""
    try:
        return bool(condition.evaluate(context))
    except Exception as exc:
        failed = Failed(kind, which or str(kind), condition.source, _reason(exc))
    FAILURES[(scenario, str(kind))] += 1
    key = (version, scenario, str(kind), failed.which)
    if key not in _logged:
        if len(_logged) >= MAX_LOGGED:
            _logged.clear()
        _logged.add(key)
        log.warning(
            "condition_failed",
            scenario=scenario or None,
            condition=failed.which,
            kind=str(kind),
            source=failed.source,
            config_version=version,
            reason=failed.reason.split(":", 1)[0],
        )
    return failed


def _reason(exc: Exception) -> str:
    message = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
