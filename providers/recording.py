"""Keeps every attempt in memory (and each sent message in an optional JSONL file): the
fake for tests and ``cartflow simulate``.

It answers through a function, as httpx's ``MockTransport`` does: ``handler(message)``
returns the :class:`~cartflow.engine.sending.SendResult` (accepted by default), so a test can say
"fail only this number" or "time out on the third call"::

    RecordingProvider(handler=lambda m: SendResult.unknown("recording", "timeout")
                      if m.address == "+79990000000" else SendResult.accepted("recording"))

Every attempt is recorded, whatever the answer (:attr:`RecordingProvider.attempts`);
:attr:`RecordingProvider.sent` is the accepted messages. ``lookups`` (optional) answers
what became of an ``unknown`` send when the engine reconciles it; without it the
recorder cannot be asked, and an ``unknown`` send is final.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cartflow.engine.channels import CHANNELS
from cartflow.engine.sending import Message, SendResult, Sent
from cartflow.providers.base import Provider
from cartflow.providers.options import ProviderOptions, Text

#: Decides the answer to one message.
Handler = Callable[[Message], SendResult]
#: Answers what became of an ``unknown`` send (None: cannot tell yet).
LookupHandler = Callable[[Sent], SendResult | None]


@dataclass(frozen=True)
class Attempt:
    """One call to the provider: what it was given and what it answered."""

    message: Message
    result: SendResult


class RecordingOptions(ProviderOptions):
    #: A JSONL file each accepted message is appended to; default none.
    path: Text | None = None


def replies(*results: SendResult) -> Handler:
    """A handler answering ``results`` in order, then accepting everything."""
    waiting = deque(results)
    lock = threading.Lock()

    def handler(message: Message) -> SendResult:
        with lock:
            if waiting:
                return waiting.popleft()
        return SendResult.accepted("recording", f"rec-{message.delivery_id}")

    return handler


class RecordingProvider(Provider):
    name = "recording"
    channels = CHANNELS
    options_model = RecordingOptions
    options: RecordingOptions

    def __init__(
        self, handler: Handler | None = None, lookups: LookupHandler | None = None, **options: Any
    ) -> None:
        """``handler`` decides each answer (default: accept everything); ``lookups``
        what became of an ``unknown`` one (default: cannot be asked)."""
        super().__init__(**options)
        self.handler = handler
        self.lookups = lookups
        #: Every lookup asked, in order.
        self.looked_up: list[Sent] = []
        self.attempts: list[Attempt] = []
        self._lock = threading.Lock()

    @property
    def sent(self) -> list[Message]:
        """The messages accepted, in order."""
        with self._lock:
            return [a.message for a in self.attempts if a.result.status == "accepted"]

    def send(self, message: Message) -> SendResult:
        if self.handler is not None:
            result = self.handler(message)
        else:
            result = SendResult.accepted(self.name, f"rec-{message.delivery_id}")
        with self._lock:
            self.attempts.append(Attempt(message, result))
            if self.options.path and result.status == "accepted":
                with open(self.options.path, "a", encoding="utf-8") as handle:
                    handle.write(
                        json.dumps(
                            {
                                "delivery_id": message.delivery_id,
                                "channel": message.channel,
                                "parts": message.parts,
                                "metadata": message.metadata,
                            },
                            ensure_ascii=False,
                        )
                        + "\n"
                    )
        return result

    def can_look_up(self) -> bool:
        return self.lookups is not None

    def lookup(self, sent: Sent) -> SendResult | None:
        with self._lock:
            self.looked_up.append(sent)
        return self.lookups(sent) if self.lookups is not None else None
