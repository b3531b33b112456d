"""Provider types by name, and the :class:`ChannelRouter` the engine sends through.

Settings are checked twice before a process sends anything: by :func:`validators` when
the configuration loads (names, required ones, and the type of each value, so that a
mistake is a ``file:line:column`` problem and not a crash at start-up), and by
:meth:`ChannelRouter.from_settings`, which refuses to build a provider from settings it
rejects with :class:`ProviderSettingsError`. Neither ever prints a setting's value (it
may be a secret from the environment).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from engine.sending import Message, SendResult
from providers.base import Provider
from providers.console import ConsoleProvider
from providers.recording import RecordingProvider
from providers.webhook import WebhookProvider

#: Every provider type cartflow ships, by its ``type:`` name.
PROVIDERS: dict[str, type[Provider]] = {
    cls.name: cls for cls in (ConsoleProvider, RecordingProvider, WebhookProvider)
}


#: What a setting's value must be: a test, and what to say when it fails.
SettingType = tuple[Callable[[Any], bool], str]


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _seconds(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return 0 < number <= 600


#: The kinds of value the shipped providers' settings take.
TEXT: SettingType = (_text, "must be text")
URL: SettingType = (_url, "must be an http:// or https:// URL")
SECONDS: SettingType = (_seconds, "must be a number of seconds between 0 and 600, e.g. 10")
FLAG: SettingType = (lambda v: isinstance(v, bool), "must be true or false")
IN_CODE: SettingType = (lambda v: False, "can only be given in code, not in scenarios.yaml")

#: The type of every setting of every shipped provider (a provider's ``settings`` names
#: them; their values are checked here, before any provider is built).
SETTING_TYPES: Mapping[str, Mapping[str, SettingType]] = {
    "console": {"stream": IN_CODE, "show_address": FLAG},
    "recording": {"path": TEXT},
    "webhook": {"url": URL, "token": TEXT, "timeout": SECONDS},
}


def validators() -> dict[str, Callable[[dict[str, Any]], list[str]]]:
    """type → settings validator, for the configuration loader."""
    return {name: _validator(cls) for name, cls in PROVIDERS.items()}


def _validator(cls: type[Provider]) -> Callable[[dict[str, Any]], list[str]]:
    types = SETTING_TYPES.get(cls.name, {})

    def validate(options: dict[str, Any]) -> list[str]:
        problems = list(cls.validate(options))
        for key, value in options.items():
            check = types.get(key)
            unset = isinstance(value, str) and "${" in value  # reported by the loader
            if check is not None and value is not None and not unset and not check[0](value):
                problems.append(f"setting '{key}' of provider '{cls.name}' {check[1]}")
        return problems

    return validate


class ProviderSettingsError(ValueError):
    """A provider was given settings it rejects (its values are never in the message)."""


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
        checks = validators()
        for channel, spec in settings.items():
            kind = override or spec.type
            options = {} if override else spec.options()
            if kind not in PROVIDERS:
                raise ProviderSettingsError(
                    f"provider for {channel}: unknown type (known: {', '.join(sorted(PROVIDERS))})"
                )
            problems = checks[kind](options)
            if problems:
                raise ProviderSettingsError(f"provider for {channel}: {'; '.join(problems)}")
            key = f"{kind}:{sorted(options.items())}"
            if key not in shared:
                try:
                    shared[key] = PROVIDERS[kind](**options)
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
