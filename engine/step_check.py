"""What a send-time guard looks at (:class:`StepCheck`) and what it answers
(:class:`Verdict`); the guards themselves are in :mod:`cartflow.engine.guards` and
:mod:`cartflow.engine.pacing`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from cartflow.engine.links import Links
from cartflow.engine.outcomes import Outcome
from cartflow.engine.scenario.loader import CompiledScenario, Config
from cartflow.engine.scenario.model import Step
from cartflow.engine.store.models import Cart, Contact, Journey, Profile


@dataclass(frozen=True)
class Verdict:
    """A guard's answer: ``kind`` is one of :data:`~cartflow.engine.outcomes.VERDICTS`
    (``deferred`` comes with ``until``), recorded as the decision of the same name."""

    kind: Outcome
    reason: str
    until: datetime | None = None


def never_paused(channel: str) -> float | None:
    """No provider is ever paused (a sender without circuit breakers)."""
    return None


@dataclass
class StepCheck:
    session: Session
    config: Config
    scenario: CompiledScenario
    step: Step
    journey: Journey
    cart: Cart
    profile: Profile
    now: datetime
    context: dict[str, Any]
    #: The step's original due time: deferrals never push it past ``max_staleness``.
    due_at: datetime
    #: A retry of a pending delivery stays on its channel ...
    only_channel: str | None = None
    #: ... and does not count against the caps itself.
    own_delivery_id: str | None = None
    channel: str | None = None
    contact: Contact | None = None
    notes: list[str] = field(default_factory=list)
    #: Scenarios the live configuration has switched off (``enabled: false``).
    live_disabled: frozenset[str] = frozenset()
    #: Channels whose consent withdrawal is accepted but not applied yet.
    withdrawn: set[str] = field(default_factory=set)
    #: The provider that would send a channel (None: nobody is configured for it).
    provider_for: Callable[[str], str | None] = lambda channel: None
    #: Seconds until a channel's provider may be used again (its circuit breaker is
    #: open), None when it may be used now.
    paused_for: Callable[[str], float | None] = never_paused
    #: Signs the message's links (None: links go out as they are).
    links: Links | None = None


Guard = Callable[[StepCheck], Verdict | None]


_Subject = TypeVar("_Subject")


def first_verdict(
    guards: Sequence[Callable[[_Subject], Verdict | None]], subject: _Subject
) -> Verdict | None:
    """Run ``guards`` in order on ``subject``; the first verdict is the answer."""
    for guard in guards:
        verdict = guard(subject)
        if verdict is not None:
            return verdict
    return None
