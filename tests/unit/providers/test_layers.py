"""Layers in front of a provider run in the order given; ``Counted`` counts attempts."""

from __future__ import annotations

import pytest

from cartflow.engine.sending import Message, SendResult
from cartflow.providers.layers import Counted, Send, chain
from cartflow.providers.recording import RecordingProvider, replies

MESSAGE = Message("d1", "k1", "sms", "+79991234567", {"text": "hi"}, "en")


class Noting:
    """Writes down when it sees the message and the result."""

    def __init__(self, name: str, seen: list[str]) -> None:
        self.name, self.seen = name, seen

    def send(self, message: Message, next: Send) -> SendResult:
        self.seen.append(f"{self.name} >")
        result = next(message)
        self.seen.append(f"{self.name} <")
        return result


class Refusing:
    """Answers without asking the rest of the chain (a breaker that is open)."""

    def send(self, message: Message, next: Send) -> SendResult:
        return SendResult.retryable("breaker", "open")


def test_the_first_layer_sees_the_message_first_and_the_result_last() -> None:
    seen: list[str] = []
    provider = RecordingProvider()
    send = chain([Noting("outer", seen), Noting("inner", seen)], provider.send)

    assert send(MESSAGE).status == "accepted"
    assert seen == ["outer >", "inner >", "inner <", "outer <"]
    assert provider.sent == [MESSAGE]


def test_a_layer_can_answer_without_the_provider() -> None:
    seen: list[str] = []
    provider = RecordingProvider()
    send = chain([Noting("outer", seen), Refusing(), Noting("inner", seen)], provider.send)

    assert send(MESSAGE).provider == "breaker"
    assert seen == ["outer >", "outer <"] and provider.attempts == []


def test_no_layers_is_the_provider_itself() -> None:
    provider = RecordingProvider()
    assert chain([], provider.send) == provider.send


def test_counted_counts_attempts_by_provider_and_status() -> None:
    counted = Counted()
    provider = RecordingProvider(
        handler=replies(SendResult.retryable("recording", "HTTP 503"), SendResult.unknown("x", "t"))
    )
    send = chain([counted], provider.send)
    for _ in range(4):
        send(MESSAGE)
    assert counted.counts() == {
        ("recording", "retryable"): 1,
        ("x", "unknown"): 1,
        ("recording", "accepted"): 2,
    }


def test_counted_counts_a_raise_by_channel_and_lets_it_through() -> None:
    def broken(message: Message) -> SendResult:
        raise RuntimeError("bug")

    counted = Counted()
    with pytest.raises(RuntimeError):
        chain([counted], broken)(MESSAGE)
    assert counted.counts() == {("channel:sms", "raised"): 1}
