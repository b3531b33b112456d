"""Provider types by name, and the :class:`ChannelRouter` the engine sends through.

Settings are checked twice before a process sends anything: by :func:`validators` when
the configuration loads (each provider's own settings model: names, required ones and the
type of each value, so that a mistake is a ``file:line:column`` problem and not a crash at
start-up), and by :meth:`ChannelRouter.from_settings`, which refuses to build a provider
from settings it rejects with :class:`ProviderSettingsError`. Neither ever prints a
setting's value (it may be a secret from the environment).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine.sending import Message, SendResult
from providers.base import Provider, ProviderSettingsError
from providers.console import ConsoleProvider
from providers.recording import RecordingProvider
from providers.webhook import WebhookProvider

__all__ = ["BUILT_IN", "ChannelRouter", "ProviderSettingsError", "available", "validators"]

#: Every provider type cartflow ships, by its ``type:`` name.
BUILT_IN: Mapping[str, type[Provider]] = {
    cls.name: cls for cls in (ConsoleProvider, RecordingProvider, WebhookProvider)
}


def available() -> dict[str, type[Provider]]:
    """Every provider type this process can build, by its ``type:`` name."""
    return dict(BUILT_IN)


def validators() -> dict[str, Callable[[dict[str, Any]], list[str]]]:
    """type → settings validator, for the configuration loader."""
    return {name: cls.validate for name, cls in available().items()}


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
        types = available()
        for channel, spec in settings.items():
            kind = override or spec.type
            options = {} if override else spec.options()
            if kind not in types:
                raise ProviderSettingsError(
                    f"provider for {channel}: unknown type (known: {', '.join(sorted(types))})"
                )
            problems = types[kind].validate(options)
            if problems:
                raise ProviderSettingsError(f"provider for {channel}: {'; '.join(problems)}")
            key = f"{kind}:{sorted(options.items())}"
            if key not in shared:
                try:
                    shared[key] = types[kind](**options)
                except Exception as exc:
                    raise ProviderSettingsError(
                        f"provider for {channel} ({kind}) cannot start: {type(exc).__name__}"
                    ) from None
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
