"""The sender a running process uses: the layers, then a :class:`ChannelRouter` that is
rebuilt when the configuration's ``providers:`` section changes (no restart).

A new router goes live at once; the one it replaces is closed when the last send still
using it has finished (a request in flight is never cut). A section that cannot be built
is refused with a logged reason and the live router stays — the loader has already
checked it, so this is a provider that cannot start (say, a bad TLS setting).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog

from cartflow.engine.sending import Message, SendResult
from cartflow.providers.base import Provider
from cartflow.providers.layers import SenderLayer, chain
from cartflow.providers.registry import ChannelRouter, ProviderSettingsError

log = structlog.get_logger("cartflow.providers")

#: Builds a router from a ``providers:`` section (channel → its settings).
Build = Callable[[Mapping[Any, Any]], ChannelRouter]


class LiveRouter:
    """A :class:`~cartflow.engine.sending.Sender`: ``layers`` in front of the current router."""

    def __init__(
        self, build: Build, providers: Mapping[Any, Any], layers: Sequence[SenderLayer] = ()
    ) -> None:
        self._build = build
        self._providers = dict(providers)
        self._router = build(providers)
        self.layers = tuple(layers)
        self._lock = threading.Lock()
        self._swap = threading.Lock()  # one rebuild at a time
        self._busy: dict[ChannelRouter, int] = {}  # sends in flight per router
        self._retired: list[ChannelRouter] = []  # replaced, closed when idle

    @property
    def router(self) -> ChannelRouter:
        """The router sends go through now."""
        return self._router

    def send(self, message: Message) -> SendResult:
        with self._lock:
            router = self._router
            self._busy[router] = self._busy.get(router, 0) + 1
        try:
            return chain(self.layers, router.send)(message)
        finally:
            self._release(router)

    def _release(self, router: ChannelRouter) -> None:
        with self._lock:
            self._busy[router] -= 1
            if self._busy[router]:
                return
            del self._busy[router]
            if router not in self._retired:
                return
            self._retired.remove(router)
        router.close()

    def provider_for(self, channel: str) -> str | None:
        return self._router.provider_for(channel)

    def paused_for(self, channel: str) -> float | None:
        """Seconds until ``channel``'s provider may be used again (a layer's circuit
        breaker is open); None when it may be used now."""
        waits = [
            wait
            for layer in self.layers
            if (paused := getattr(layer, "paused_for", None)) is not None
            and (wait := paused(channel)) is not None
        ]
        return max(waits) if waits else None

    def named(self, name: str) -> Provider | None:
        """The live provider of type ``name``, for its callbacks."""
        return self._router.named(name)

    def reconfigure(self, providers: Mapping[Any, Any]) -> bool:
        """Go live with ``providers`` if they differ from the live ones; True if so."""
        with self._swap:
            if dict(providers) == self._providers:
                return False
            try:
                router = self._build(providers)
            except ProviderSettingsError as exc:  # names settings, never values
                log.error("providers_not_rebuilt", problem=str(exc))
                return False
            with self._lock:
                old, self._router, self._providers = self._router, router, dict(providers)
                idle = old not in self._busy
                if not idle:
                    self._retired.append(old)
            if idle:
                old.close()
            log.info(
                "providers_rebuilt",
                providers={str(c): router.provider_for(str(c)) for c in sorted(providers)},
            )
            return True

    def on_reload(self, old: Any, new: Any) -> None:
        """A :attr:`cartflow.engine.configs.ConfigHolder.on_reload` listener."""
        self.reconfigure(new.settings.providers)

    def close(self) -> None:
        with self._lock:
            routers = [self._router, *self._retired]
            self._retired.clear()
        for router in routers:
            router.close()
