"""A provider's rate limit and circuit breaker hold across worker processes: two OS
processes sending through the Throttle layer on one real Redis, counted at a loopback
fake provider."""

from __future__ import annotations

import multiprocessing

import pytest
import redis as redis_lib
from dramatiq.rate_limits.backends import RedisBackend

from cartflow.engine.sending import Message
from cartflow.providers.throttle import Policy, RedisStore, Throttle
from cartflow.providers.webhook import WebhookProvider

from .fake_provider import FakeProvider, Reply

pytestmark = pytest.mark.redis


def policy(rate: tuple[int, int] | None) -> Policy:
    return Policy("webhook", "sms:webhook", rate, failures=3, within=60.0, open_for=30.0)


def worker(redis_url: str, url: str, rate: tuple[int, int] | None, count: int, name: str) -> None:
    """One worker process: ``count`` SMS through the layer as fast as it can."""
    provider = WebhookProvider(url=url, timeout=5)
    client = redis_lib.Redis.from_url(redis_url)
    layer = Throttle(
        lambda channel: policy(rate),
        RedisStore(client),
        RedisBackend(client=client),  # type: ignore[no-untyped-call]
        max_wait=30.0,
    )
    for n in range(count):
        message = Message(f"{name}-{n}", f"{name}-{n}", "sms", "+79990000000", {"text": "x"}, "ru")
        result = layer.send(message, provider.send)
        assert result.status == "accepted", result


def run_two(redis_url: str, url: str, rate: tuple[int, int] | None, count: int) -> None:
    spawn = multiprocessing.get_context("spawn")
    processes = [
        spawn.Process(target=worker, args=(redis_url, url, rate, count, f"w{i}")) for i in (1, 2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0


def test_a_rate_limit_holds_across_two_worker_processes(
    redis_url: str, fake_provider: FakeProvider
) -> None:
    # Given two worker processes sharing one limit of 10 SMS a second, 20 each to send
    run_two(redis_url, f"{fake_provider.url}/sms", (10, 1), 20)

    # Then the 40 reached the provider over four seconds' buckets, over 2 s (10 a
    # second in all; with a limit per process, 20 a second, two buckets: under 2 s)
    arrived = sorted(r.at for r in fake_provider.requests())
    assert len(arrived) == 40
    assert arrived[-1] - arrived[0] > 2.0, arrived[-1] - arrived[0]
    # ... and no second-long stretch saw more than the limit plus the boundary's
    for i, start in enumerate(arrived):
        within = [t for t in arrived[i:] if t - start < 1.0]
        assert len(within) <= 20


def test_without_a_limit_the_same_sends_take_under_two_seconds(
    redis_url: str, fake_provider: FakeProvider
) -> None:
    run_two(redis_url, f"{fake_provider.url}/sms", None, 20)
    arrived = sorted(r.at for r in fake_provider.requests())
    assert len(arrived) == 40 and arrived[-1] - arrived[0] < 2.0


def test_a_breaker_opened_by_one_process_holds_the_other(
    redis_url: str, fake_provider: FakeProvider
) -> None:
    # Given a provider that answers 500 three times, seen by one process's layer
    fake_provider.script(None, *[Reply.status(500)] * 3)
    client = redis_lib.Redis.from_url(redis_url)
    provider = WebhookProvider(url=f"{fake_provider.url}/sms", timeout=5)
    first, second = (
        Throttle(lambda c: policy(None), RedisStore(client), RedisBackend(client=client))  # type: ignore[no-untyped-call]
        for _ in range(2)
    )
    message = Message("d", "k", "sms", "+79990000000", {"text": "x"}, "ru")
    assert [first.send(message, provider.send).status for _ in range(3)] == ["retryable"] * 3

    # Then another worker's layer (same Redis) holds its send without calling the provider
    assert second.paused_for("sms") is not None and 25 < second.paused_for("sms") <= 30
    held = second.send(message, provider.send)
    assert held.reason == "circuit open: webhook is failing"
    assert len(fake_provider.requests()) == 3
    client.close()
