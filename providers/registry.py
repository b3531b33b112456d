"""Provider types by name, and the :class:`ChannelRouter` the engine sends through."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.sending import Message, SendResult
from providers.base import Provider
from providers.console import ConsoleProvider
from providers.recording import RecordingProvider
from providers.webhook import WebhookProvider

#: Every provider type cartflow ships, by its ``type:`` name.
PROVIDERS: dict[str, type[Provider]] = {
    cls.name: cls for cls in (ConsoleProvider, RecordingProvider, WebhookProvider)
}


def validators() -> dict[str, Any]:
    """type → settings validator, for the configuration loader."""
    return {name: cls.validate for name, cls in PROVIDERS.items()}


class ChannelRouter:
    """One provider per channel, built from ``scenarios.yaml`` (or given directly)."""

    def __init__(self, by_channel: Mapping[str, Provider]) -> None:
        self.by_channel = dict(by_channel)

    @classmethod
    def from_settings(
        cls, settings: Mapping[Any, Any], override: str | None = None
    ) -> ChannelRouter:
        """``override`` replaces every provider type (``console`` for the demo)."""
        built: dict[str, Provider] = {}
        shared: dict[str, Provider] = {}
        for channel, spec in settings.items():
            kind = override or spec.type
            options = {} if override else spec.options()
            key = f"{kind}:{sorted(options.items())}"
            if key not in shared:
                shared[key] = PROVIDERS[kind](**options)
            built[channel] = shared[key]
        return cls(built)

    def provider_for(self, channel: str) -> str | None:
        provider = self.by_channel.get(channel)
        return provider.name if provider else None

    def send(self, message: Message) -> SendResult:
        provider = self.by_channel.get(message.channel)
        if provider is None:
            return SendResult.permanent("none", f"no provider configured for {message.channel}")
        return provider.send(message)

    def close(self) -> None:
        for provider in {id(p): p for p in self.by_channel.values()}.values():
            provider.close()
