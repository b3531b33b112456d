"""The live router swaps its providers when the configuration changes, without cutting
a send in flight, and keeps the live ones when the new ones cannot start."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from structlog.testing import capture_logs

from cartflow.engine.scenario.model import ProviderSettings
from cartflow.engine.sending import Message, SendResult
from cartflow.providers.layers import Counted
from cartflow.providers.live import LiveRouter
from cartflow.providers.recording import RecordingProvider
from cartflow.providers.registry import ChannelRouter, ProviderSettingsError

MESSAGE = Message("d1", "k1", "sms", "+79991234567", {"text": "hi"}, "en")


class Closing(RecordingProvider):
    """A recording provider that notes when it is closed."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.closed = False

    def close(self) -> None:
        self.closed = True


class Builder:
    """Builds one :class:`Closing` provider per section, by its ``path`` (a label here)."""

    def __init__(self) -> None:
        self.built: dict[str, Closing] = {}

    def __call__(self, providers: Mapping[Any, Any]) -> ChannelRouter:
        by_channel: dict[str, Closing] = {}
        for channel, spec in providers.items():
            if spec.type != "recording":
                raise ProviderSettingsError(f"provider for {channel}: cannot start")
            label = str(spec.options()["path"])
            by_channel[channel] = self.built[label] = Closing(path=None)
        return ChannelRouter(by_channel)


def _section(label: str, kind: str = "recording") -> dict[str, ProviderSettings]:
    return {"sms": ProviderSettings.model_validate({"type": kind, "path": label})}


def test_a_changed_section_goes_live_and_the_old_providers_close() -> None:
    build = Builder()
    live = LiveRouter(build, _section("a"))
    live.send(MESSAGE)

    assert live.reconfigure(_section("a")) is False  # the same section: nothing rebuilt
    assert live.reconfigure(_section("b")) is True
    live.send(MESSAGE)

    assert len(build.built["a"].attempts) == 1 and build.built["a"].closed
    assert len(build.built["b"].attempts) == 1 and not build.built["b"].closed
    live.close()
    assert build.built["b"].closed


def test_a_send_in_flight_finishes_before_its_provider_closes() -> None:
    # Given a send that is still waiting for the provider's answer
    build = Builder()
    live = LiveRouter(build, _section("a"))
    entered, release = threading.Event(), threading.Event()

    def slow(message: Message) -> SendResult:
        entered.set()
        release.wait(5)
        return SendResult.accepted("recording")

    build.built["a"].handler = slow
    sending = threading.Thread(target=live.send, args=(MESSAGE,))
    sending.start()
    assert entered.wait(5)

    # When the providers change meanwhile
    assert live.reconfigure(_section("b")) is True

    # Then the old provider stays open until that send is done, new sends use the new one
    assert not build.built["a"].closed
    live.send(MESSAGE)
    assert len(build.built["b"].attempts) == 1
    release.set()
    sending.join(5)
    assert build.built["a"].closed and len(build.built["a"].attempts) == 1


def test_providers_that_cannot_start_are_refused_and_the_live_ones_stay() -> None:
    build = Builder()
    live = LiveRouter(build, _section("a"))
    with capture_logs() as logs:
        assert live.reconfigure(_section("b", kind="broken")) is False
    assert [e["event"] for e in logs] == ["providers_not_rebuilt"]
    live.send(MESSAGE)
    assert len(build.built["a"].attempts) == 1 and not build.built["a"].closed


def test_layers_stay_across_a_rebuild() -> None:
    counted = Counted()
    live = LiveRouter(Builder(), _section("a"), layers=[counted])
    live.send(MESSAGE)
    live.reconfigure(_section("b"))
    live.send(MESSAGE)
    assert counted.counts() == {("recording", "accepted"): 2}
