"""Provider types by name, and the :class:`ChannelRouter` the engine sends through.

Settings are checked twice before a process sends anything: by :func:`validators` when
the configuration loads (each provider's own settings model: names, required ones and the
type of each value, so that a mistake is a ``file:line:column`` problem and not a crash at
start-up), and by :meth:`ChannelRouter.from_settings`, which refuses to build a provider
from settings it rejects with :class:`ProviderSettingsError`. Neither ever prints a
setting's value (it may be a secret from the environment).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import structlog

from cartflow.engine.sending import Message, SendResult
from cartflow.providers.base import Provider, ProviderSettingsError
from cartflow.providers.console import ConsoleProvider
from cartflow.providers.fcm import FcmProvider
from cartflow.providers.file import FileProvider
from cartflow.providers.infobip import InfobipProvider
from cartflow.providers.postmark import PostmarkProvider
from cartflow.providers.recording import RecordingProvider
from cartflow.providers.smsru import SmsRuProvider
from cartflow.providers.smtp import SmtpProvider
from cartflow.providers.telegram import TelegramProvider
from cartflow.providers.twilio import TwilioProvider
from cartflow.providers.webhook import WebhookProvider
from cartflow.providers.webpush import WebPushProvider

__all__ = [
    "BUILT_IN",
    "GROUP",
    "ChannelRouter",
    "ProviderSettingsError",
    "available",
    "validators",
]

log = structlog.get_logger("cartflow.providers")

#: The entry-point group a distribution registers provider types in (name → class).
GROUP = "cartflow.providers"
#: The distribution whose entry points are the built-in types.
OWN_DISTRIBUTION = "cartflow"

#: Every provider type cartflow ships, by its ``type:`` name (used as they are when the
#: installed cartflow predates its entry points: re-run ``make install``).
BUILT_IN: Mapping[str, type[Provider]] = {
    cls.name: cls
    for cls in (
        ConsoleProvider,
        RecordingProvider,
        FileProvider,
        WebhookProvider,
        TwilioProvider,
        InfobipProvider,
        SmsRuProvider,
        SmtpProvider,
        PostmarkProvider,
        FcmProvider,
        WebPushProvider,
        TelegramProvider,
    )
}


def available() -> dict[str, type[Provider]]:
    """Every provider type this process can build, by its ``type:`` name: cartflow's own
    first, then those other installed distributions register under :data:`GROUP` (a name
    already taken keeps its first owner). Found again when ``sys.path`` changes."""
    return dict(_discover(tuple(sys.path)))


@functools.lru_cache(maxsize=4)
def _discover(path: tuple[str, ...]) -> Mapping[str, type[Provider]]:
    points = list(entry_points(group=GROUP))
    own = [p for p in points if _distribution(p) == OWN_DISTRIBUTION]
    mine: dict[str, type[Provider]] = {}
    for point in own:
        loaded = _load(point)
        if loaded is not None:
            mine.setdefault(point.name, loaded)
    # in BUILT_IN's order whatever order the install wrote (setuptools sorts by name);
    # BUILT_IN's class when the install predates an entry point
    found = {name: mine.pop(name, cls) for name, cls in BUILT_IN.items()}
    found.update(mine)
    for point in sorted((p for p in points if p not in own), key=lambda p: p.name):
        if point.name in found:
            if found[point.name] is not _load(point, quiet=True):
                log.warning(
                    "provider_type_taken", type=point.name, distribution=_distribution(point)
                )
            continue
        loaded = _load(point)
        if loaded is not None:
            found[point.name] = loaded
    return found


def _distribution(point: EntryPoint) -> str | None:
    return point.dist.name if point.dist is not None else None


def _load(point: EntryPoint, quiet: bool = False) -> type[Provider] | None:
    """The class ``point`` names, or None (logged) when it cannot be imported or is not a
    :class:`Provider` — a broken plug-in never stops the others."""
    try:
        loaded = point.load()
    except Exception as exc:  # any import failure: the type only, never a value
        if not quiet:
            log.error(
                "provider_type_broken",
                type=point.name,
                distribution=_distribution(point),
                error=type(exc).__name__,
            )
        return None
    if isinstance(loaded, type) and issubclass(loaded, Provider):
        return loaded
    if not quiet:
        log.error(
            "provider_type_broken",
            type=point.name,
            distribution=_distribution(point),
            error=f"{point.value} is not a Provider subclass",
        )
    return None


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

    def named(self, name: str) -> Provider | None:
        """The configured provider of type ``name`` (its callbacks go to it), if any."""
        return next((p for p in self.by_channel.values() if p.name == name), None)

    def send(self, message: Message) -> SendResult:
        provider = self.by_channel.get(message.channel)
        if provider is None:
            return SendResult.permanent("none", f"no provider configured for {message.channel}")
        return provider.send(message)

    def close(self) -> None:
        for provider in {id(p): p for p in self.by_channel.values()}.values():
            provider.close()
