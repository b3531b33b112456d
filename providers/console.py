"""Prints each message, as the channel would carry it, for the demo and trials."""

from __future__ import annotations

import sys
import textwrap
import threading
from collections.abc import Callable
from typing import Any, TextIO

from cartflow.engine.channels import CHANNELS
from cartflow.engine.sending import Message, SendResult
from cartflow.providers.base import Provider
from cartflow.providers.options import Flag, InCode, ProviderOptions

_lock = threading.Lock()
#: Where a message's text starts under its heading line.
INDENT = " " * 8
#: The gutter in front of each line of an email body, so it reads as one block.
EMAIL_GUTTER = "│ "
#: The most of an email's text shown.
EMAIL_CHARS = 300


def mask(address: str) -> str:
    """``anna@example.com`` → ``a***@example.com``; ``+79991234567`` → ``+7999***67``."""
    if "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    if address.startswith("+") and len(address) > 7:
        return f"{address[:5]}***{address[-2:]}"
    return address[:6] + "…" if len(address) > 8 else "***"


class ConsoleOptions(ProviderOptions):
    #: Where to print: code only (``ConsoleProvider(stream)``); standard output by default.
    stream: InCode = None
    #: Show the whole address instead of a masked one; default false.
    show_address: Flag = False


class ConsoleProvider(Provider):
    name = "console"
    channels = CHANNELS
    options_model = ConsoleOptions

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        stamp: Callable[[Message], str] | None = None,
        **options: Any,
    ) -> None:
        """``stamp`` (the demo's: the shopper's local time) puts a word of context after
        the channel tag on each message's heading line; default none."""
        super().__init__(**options)
        self.stream = stream or sys.stdout
        self.stamp = stamp

    def send(self, message: Message) -> SendResult:
        parts = message.parts
        meta = message.metadata
        where = f"{meta.get('scenario')}/{meta.get('step')}"
        stamp = f" {self.stamp(message)} ·" if self.stamp is not None else ""
        head = f"[{message.channel.upper():5}]{stamp} cart {meta.get('cart_id')} · {where}"
        if message.channel == "push":
            title, text = parts.get("title", ""), parts.get("body", "")
            body = f"{title} — {text}  {parts.get('url', '')}".rstrip()
        elif message.channel == "email":
            text = parts.get("text", "")
            shown = text[:EMAIL_CHARS].rstrip() + ("…" if len(text) > EMAIL_CHARS else "")
            gutter = EMAIL_GUTTER.rstrip()
            block = "\n".join(
                f"{EMAIL_GUTTER}{line}" if line.strip() else gutter for line in shown.splitlines()
            )
            body = f"Subject: {parts.get('subject', '')}\n{block}"
        else:
            shape = f"({parts.get('encoding', '')}, {parts.get('segments', '1')} part(s))"
            body = f"{parts.get('text', '')}  {shape}"
        with _lock:
            print(
                f"{head} → {mask(message.address)}\n{textwrap.indent(body, INDENT)}",
                file=self.stream,
                flush=True,
            )
        return SendResult.accepted(self.name, f"console-{message.delivery_id}")
