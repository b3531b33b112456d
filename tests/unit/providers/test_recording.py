"""The recording provider answers through a handler and records every attempt."""

from __future__ import annotations

import json
from pathlib import Path

from cartflow.engine.sending import Message, SendResult
from cartflow.providers.recording import Attempt, RecordingProvider, replies


def _message(n: int, address: str = "+79991234567") -> Message:
    return Message(f"d{n}", f"k{n}", "sms", address, {"text": f"hi {n}"}, "en")


def test_the_handler_decides_each_answer_and_every_attempt_is_kept() -> None:
    # Given a provider that times out for one number only
    def handler(message: Message) -> SendResult:
        if message.address == "+70000000000":
            return SendResult.unknown("recording", "read timeout")
        return SendResult.accepted("recording", f"id-{message.delivery_id}")

    provider = RecordingProvider(handler=handler)

    # When three messages go out
    results = [provider.send(_message(1)), provider.send(_message(2, "+70000000000"))]
    results.append(provider.send(_message(3)))

    # Then each attempt is recorded with its answer; only accepted ones count as sent
    assert [r.status for r in results] == ["accepted", "unknown", "accepted"]
    assert provider.attempts == [
        Attempt(_message(1), results[0]),
        Attempt(_message(2, "+70000000000"), results[1]),
        Attempt(_message(3), results[2]),
    ]
    assert provider.sent == [_message(1), _message(3)]


def test_replies_answers_in_order_then_accepts() -> None:
    provider = RecordingProvider(handler=replies(SendResult.permanent("recording", "blocked")))
    assert [provider.send(_message(n)).status for n in range(3)] == [
        "permanent",
        "accepted",
        "accepted",
    ]


def test_without_a_handler_everything_is_accepted_and_written(tmp_path: Path) -> None:
    path = tmp_path / "sent.jsonl"
    provider = RecordingProvider(
        handler=replies(SendResult.retryable("recording", "HTTP 503")), path=str(path)
    )
    provider.send(_message(1))
    assert provider.send(_message(2)) == SendResult.accepted("recording", "rec-d2")
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [line["delivery_id"] for line in lines] == ["d2"]  # the file holds what was sent
    assert len(provider.attempts) == 2
