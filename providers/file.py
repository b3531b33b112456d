"""Appends each message to a JSON-lines file — for development: run the engine on real
traffic and read what it would have sent (``tail -f``), nothing leaves the machine.

One line per message, written whole under a lock (``{"id", "idempotency_key", "channel",
"to", "locale", "parts", "metadata"}``, the same object the webhook provider posts).
Always accepted (id ``file-<delivery>``); a file that cannot be written is retryable, so a
full disk holds messages instead of losing them.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from cartflow.engine.channels import CHANNELS
from cartflow.engine.sending import Message, SendResult
from cartflow.providers.base import Provider
from cartflow.providers.options import ProviderOptions, Text
from cartflow.providers.webhook import as_json


class FileOptions(ProviderOptions):
    #: The JSON-lines file messages are appended to (required; its folder must exist).
    path: Text


class FileProvider(Provider):
    name = "file"
    channels = CHANNELS
    options_model = FileOptions
    options: FileOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.path = Path(self.options.path)
        self.lock = threading.Lock()

    def send(self, message: Message) -> SendResult:
        line = json.dumps(as_json(message), ensure_ascii=False, default=str)
        try:
            with self.lock, self.path.open("a", encoding="utf-8") as out:
                out.write(line + "\n")
        except OSError as exc:
            return SendResult.retryable(self.name, f"cannot write the file: {exc.strerror}")
        return SendResult.accepted(self.name, f"file-{message.delivery_id}")
