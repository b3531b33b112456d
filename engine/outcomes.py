"""One vocabulary for every answer the engine gives (architecture §5).

A guard's verdict, a step run's result and the row in the decision log use the same
:class:`Outcome`: a guard that says ``SKIPPED`` is recorded as ``skipped`` and the step
run returns ``skipped``. Which values appear where::

    Verdict.kind       DEFERRED  SKIPPED  EXITED
    decision log       the three above, STARTED  COMPLETED  SENT  RETRY  FALLBACK
                       UNKNOWN  FAILED
    StepResult         any of the above, and STALE (this firing was already done, or
                       another worker holds it) and CHECKED (an idle check ran)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Outcome(StrEnum):
    """What happened, in the words the decision log and ``cartflow simulate`` print."""

    STARTED = "started"  # a journey began
    COMPLETED = "completed"  # a journey ran out of steps
    EXITED = "exited"  # a journey ended early (order, emptied cart, expiry, …)
    SENT = "sent"  # a provider accepted the message
    DEFERRED = "deferred"  # not now: looked at again later (window, cap, browsing, …)
    SKIPPED = "skipped"  # this step will not send (condition, no channel, holdout, …)
    RETRY = "retry"  # the provider refused for now; tried again later
    FALLBACK = "fallback"  # a later channel was chosen, and why the earlier ones lost
    UNKNOWN = "unknown"  # the request may have left: reconciled, never resent
    FAILED = "failed"  # the provider refused for good (or the firing was given up)
    STALE = "stale"  # nothing to do: already done, or someone else's
    CHECKED = "checked"  # an idle check ran


class Reason(StrEnum):
    """Reasons with a fixed spelling, for code that must recognise them (a journey's
    ``exit_reason``, the start of a decision's reason)."""

    #: The same person already has a journey for the same items (docs/scenarios.md).
    SAME_INTENT = "same_intent"


#: The exit reason of a browse-abandonment journey that a cart took over: the shopper
#: carted something, or a cart journey started for the same person
#: (:mod:`cartflow.engine.browse_abandonment`). No browse message leaves after it.
SUPERSEDED = "superseded"

#: The outcomes a guard can answer with.
VERDICTS = frozenset({Outcome.DEFERRED, Outcome.SKIPPED, Outcome.EXITED})


@dataclass(frozen=True)
class StepResult:
    """What a timer's firing came to, and what becomes of the timer.

    :meth:`cartflow.engine.service.Engine.fire` releases the claim once, from this value:
    ``timer_set`` — the work already set the next timer (the journey moved on, or the
    firing belongs to someone else): leave it alone; otherwise move the timer to
    ``again``, or delete it when ``again`` is None.
    """

    decision: Outcome
    reason: str = ""
    delivery_id: str | None = None
    #: When to look at this again; None: this timer is done with.
    again: datetime | None = None
    #: The timer was moved by the work itself: the claim has nothing left to release.
    timer_set: bool = False

    @classmethod
    def moved_on(
        cls, decision: Outcome, reason: str = "", delivery_id: str | None = None
    ) -> StepResult:
        """The journey set its next step's timer (or ended, which deleted it)."""
        return cls(decision, reason, delivery_id, timer_set=True)

    @classmethod
    def later(
        cls, decision: Outcome, reason: str, again: datetime, delivery_id: str | None = None
    ) -> StepResult:
        """Look again at ``again``: the timer moves there."""
        return cls(decision, reason, delivery_id, again=again)

    @classmethod
    def done(
        cls, decision: Outcome, reason: str = "", delivery_id: str | None = None
    ) -> StepResult:
        """Nothing more for this timer: it is deleted."""
        return cls(decision, reason, delivery_id)
