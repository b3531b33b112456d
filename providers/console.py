"""Prints each message, as the channel would carry it, for the demo and trials."""

from __future__ import annotations

import sys
import threading
from typing import Any, ClassVar, TextIO

from engine.sending import Message, SendResult
from providers.base import Provider

_lock = threading.Lock()


def mask(address: str) -> str:
    """``anna@example.com`` → ``a***@example.com``; ``+79991234567`` → ``+7999***67``."""
    if "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    if address.startswith("+") and len(address) > 7:
        return f"{address[:5]}***{address[-2:]}"
    return address[:6] + "…" if len(address) > 8 else "***"


class ConsoleProvider(Provider):
    name = "console"
    channels = ("push", "sms", "email", "messenger")
    settings: ClassVar[dict[str, bool]] = {"stream": False, "show_address": False}

    def __init__(self, stream: TextIO | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.stream = stream or sys.stdout

    def send(self, message: Message) -> SendResult:
        parts = message.parts
        meta = message.metadata
        where = f"{meta.get('scenario')}/{meta.get('step')}"
        head = f"[{message.channel.upper():5}] cart {meta.get('cart_id')} · {where}"
        if message.channel == "push":
            title, text = parts.get("title", ""), parts.get("body", "")
            body = f"{title} — {text}  {parts.get('url', '')}".rstrip()
        elif message.channel == "email":
            body = f"Subject: {parts.get('subject', '')}\n        {parts.get('text', '')[:300]}"
        else:
            shape = f"({parts.get('encoding', '')}, {parts.get('segments', '1')} part(s))"
            body = f"{parts.get('text', '')}  {shape}"
        with _lock:
            print(f"{head} → {mask(message.address)}\n        {body}", file=self.stream, flush=True)
        return SendResult.accepted(self.name, f"console-{message.delivery_id}")
