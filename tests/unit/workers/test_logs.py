"""Production logs: JSON lines, step lines carry journey/cart/step ids, and no email
address or phone number ever reaches a line — even when a provider puts one in its error."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
import structlog

from engine.sending import SendResult
from engine.simulation import Simulation
from workers.logs import configure

from ..factories import T0, cart_updated


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure("json", stream=stream)
    yield stream
    structlog.reset_defaults()


def test_step_lines_are_json_with_ids_and_without_contact_data(
    sim: Simulation, recorder: object, json_logs: io.StringIO
) -> None:
    # Given a provider whose error message repeats the recipient's number and address
    recorder.scripted.append(  # type: ignore[attr-defined]
        SendResult.permanent("recording", "push refused for anna@example.com / +79991234567")
    )
    # When a journey runs
    sim.feed([cart_updated(T0)])
    sim.run_until(T0 + timedelta(days=2))
    # Then every line is JSON, step lines name journey, cart and step, and no contact leaks
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    steps = [line for line in lines if line["event"] in ("step_sent", "step_failed")]
    assert {line["step"] for line in steps} == {"push", "sms", "email"}
    assert all(line["journey_id"] and line["cart_id"] == "cart_1" for line in steps)
    text = json_logs.getvalue()
    assert "anna@example.com" not in text and "+79991234567" not in text
    assert "[email]" in text and "[phone]" in text
