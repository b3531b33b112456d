"""A fake vendor HTTP API on loopback (real sockets, no patching), for providers' tests:
answers from a script in order, then a default answer; records every request.

A script entry is a :class:`Reply`, or :data:`CLOSE` (read the request, close without an
answer) or :data:`HANG` (read the request, answer nothing until the test ends)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

#: Read the request, then close the connection without answering.
CLOSE = "close"
#: Read the request, then answer nothing until the test ends.
HANG = "hang"


@dataclass
class Seen:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class FakeVendor:
    """Answers from ``script`` in order, then ``default(seen)``; records every request."""

    def __init__(self, default: Callable[[Seen], Reply]) -> None:
        self.seen: list[Seen] = []
        self.script: list[Reply | str] = []
        self.default = default
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                seen = Seen(
                    self.command,
                    parts.path,
                    dict(parse_qsl(parts.query)),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                fake.seen.append(seen)
                reply = fake.script.pop(0) if fake.script else fake.default(seen)
                if reply == HANG:
                    fake.release.wait(10)
                if isinstance(reply, str):  # CLOSE, or HANG once released
                    self.close_connection = True
                    return
                body = reply.body
                data = (
                    body.encode()
                    if isinstance(body, str)
                    else json.dumps(body, ensure_ascii=False).encode()
                )
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def posts(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST"]

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + 5
        while len(self.seen) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.seen) >= count


def serve(default: Callable[[Seen], Reply]) -> Iterator[FakeVendor]:
    """Run a :class:`FakeVendor` for one test (use from a fixture with ``yield from``)."""
    fake = FakeVendor(default)
    fake.thread.start()
    try:
        yield fake
    finally:
        fake.release.set()
        fake.server.shutdown()
        fake.server.server_close()
