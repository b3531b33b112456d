"""The retry policy (engine/retry.py): Retry-After honoured, backoff with a cap and
jitter, a per-provider override from scenarios.yaml."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from cartflow.engine.retry import DEFAULT_RETRY, RetryPolicy

policies = st.builds(
    RetryPolicy,
    attempts=st.integers(1, 20),
    wait=st.integers(1, 3600).map(lambda s: timedelta(seconds=s)),
    factor=st.floats(1.0, 10.0),
    max_wait=st.integers(3600, 86400).map(lambda s: timedelta(seconds=s)),
    jitter=st.floats(0.0, 1.0),
)


def _base(policy: RetryPolicy, attempt: int) -> float:
    """The backoff before jitter, in seconds."""
    grown = policy.wait.total_seconds() * policy.factor ** (attempt - 1)
    return min(grown, policy.max_wait.total_seconds())


@given(policies, st.integers(1, 25), st.text(max_size=20))
def test_a_wait_is_backoff_within_its_cap_and_jitter(
    policy: RetryPolicy, attempt: int, key: str
) -> None:
    wait = policy.wait_after(attempt, None, key)
    if attempt >= policy.attempts:
        assert wait is None  # that was the last try
        return
    assert wait is not None
    base = timedelta(seconds=_base(policy, attempt))
    assert base <= wait <= base * (1 + policy.jitter) + timedelta(seconds=1)
    assert wait == policy.wait_after(attempt, None, key)  # the same delivery waits the same


@given(policies, st.floats(0.001, 86400.0), st.text(max_size=20))
def test_retry_after_is_honoured_exactly(policy: RetryPolicy, retry_after: float, key: str) -> None:
    wait = policy.wait_after(1, retry_after, key)
    if policy.attempts == 1:
        assert wait is None
    else:
        assert wait == timedelta(seconds=retry_after)


@given(policies, st.text(max_size=20))
def test_waits_never_shrink_until_the_cap(policy: RetryPolicy, key: str) -> None:
    waits = [policy.wait_after(n, None, key) for n in range(1, policy.attempts)]
    bases = [_base(policy, n) for n in range(1, policy.attempts)]
    assert bases == sorted(bases)
    assert all(
        w is not None and w <= policy.max_wait * (1 + policy.jitter) + timedelta(seconds=1)
        for w in waits
    )


def test_the_documented_defaults() -> None:
    # three tries; five minutes, then ten, each with up to 10% added
    assert DEFAULT_RETRY.attempts == 3
    first = DEFAULT_RETRY.wait_after(1, None, "d")
    second = DEFAULT_RETRY.wait_after(2, None, "d")
    assert first is not None and timedelta(minutes=5) <= first <= timedelta(minutes=5.5)
    assert second is not None and timedelta(minutes=10) <= second <= timedelta(minutes=11)
    assert DEFAULT_RETRY.wait_after(3, None, "d") is None


def test_jitter_spreads_a_burst_of_refusals() -> None:
    waits = {DEFAULT_RETRY.wait_after(1, None, f"delivery-{n}") for n in range(200)}
    assert len(waits) > 20


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"attempts": 0}, "greater than or equal to 1"),
        ({"wait": "soon"}, "wait"),
        ({"wait": "2h", "max_wait": "1h"}, "'max_wait' must be at least 'wait'"),
        ({"tries": 3}, "tries"),
    ],
)
def test_a_bad_policy_is_refused_with_its_reason(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RetryPolicy.model_validate(settings)
    assert message in str(caught.value)
