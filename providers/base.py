"""The provider protocol.

A provider sends one :class:`~engine.sending.Message` on one channel and answers with a
:class:`~engine.sending.SendResult` — accepted, retryable (with retry-after), permanent
(with the reason) or unknown (the request may have left) — never a bare bool.

A provider declares its settings (``settings``: name → required?) and which of them are
secret (``secret``): secrets are masked in ``repr`` and logs and must come from the
environment (``${ENV_VAR}`` in YAML).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from engine.sending import Message, SendResult


class Provider:
    #: Registry name, used as ``type:`` in scenarios.yaml.
    name: ClassVar[str] = "base"
    #: Channels this provider can carry.
    channels: ClassVar[tuple[str, ...]] = ()
    #: Setting name → required.
    settings: ClassVar[Mapping[str, bool]] = {}
    #: Settings never to print.
    secret: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, **options: Any) -> None:
        self.options = options

    @classmethod
    def validate(cls, options: dict[str, Any]) -> list[str]:
        """Problems with ``options``: unknown keys (with a hint) and missing required ones."""
        import difflib

        problems = []
        for key in options:
            if key not in cls.settings:
                close = difflib.get_close_matches(key, list(cls.settings), n=1)
                hint = (
                    f" — did you mean '{close[0]}'?"
                    if close
                    else (f" (known: {', '.join(cls.settings) or 'none'})")
                )
                problems.append(f"unknown setting '{key}' for provider '{cls.name}'{hint}")
        for key, required in cls.settings.items():
            if required and not options.get(key):
                problems.append(f"provider '{cls.name}' needs setting '{key}'")
        return problems

    def send(self, message: Message) -> SendResult:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections; called when the process stops."""

    def __repr__(self) -> str:
        shown = {k: ("***" if k in self.secret else v) for k, v in self.options.items()}
        return f"{type(self).__name__}({shown})"
