"""Keeps every message in memory (and optionally a JSONL file): the fake for tests and
``cartflow simulate``. Can be told to fail, to exercise the engine's error handling."""

from __future__ import annotations

import json
import threading
from collections import deque
from typing import Any, ClassVar

from engine.sending import Message, SendResult
from providers.base import Provider


class RecordingProvider(Provider):
    name = "recording"
    channels = ("push", "sms", "email", "messenger")
    settings: ClassVar[dict[str, bool]] = {"path": False}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.sent: list[Message] = []
        self._lock = threading.Lock()
        #: Results to return instead of "accepted", first in first out.
        self.scripted: deque[SendResult] = deque()

    def send(self, message: Message) -> SendResult:
        with self._lock:
            result = self.scripted.popleft() if self.scripted else None
            if result is None or result.status == "accepted":
                self.sent.append(message)
            path = self.options.get("path")
            if path and (result is None or result.status == "accepted"):
                with open(path, "a", encoding="utf-8") as handle:
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
        return result or SendResult.accepted(self.name, f"rec-{message.delivery_id}")
