"""A local fake provider: an HTTP server the :class:`~cartflow.providers.webhook.WebhookProvider`
posts to, recording every request and answering as the test scripts it.

Replies are taken first in first out from a script per channel (``push``, ``sms`` …) or
from the shared script, else the default (200 with ``{"id": ...}``)::

    fake.script("push", Reply.hang(60))      # the first push hangs, the rest are accepted
    fake.script(None, Reply.status(500), Reply.throttle(retry_after=1))

A hanging reply waits at most its seconds, or until :meth:`FakeProvider.close`, so a test
never leaves a thread behind.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    """How the fake answers one request."""

    status_code: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: Seconds to wait before answering (the request has arrived and is recorded).
    hang_for: float = 0.0

    @classmethod
    def ok(cls) -> Reply:
        return cls(200)

    @classmethod
    def status(cls, code: int) -> Reply:
        return cls(code, {"error": f"scripted {code}"})

    @classmethod
    def throttle(cls, retry_after: int | None = None) -> Reply:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        return cls(429, {"error": "slow down"}, headers)

    @classmethod
    def hang(cls, seconds: float) -> Reply:
        return cls(200, hang_for=seconds)


@dataclass(frozen=True)
class Received:
    """One recorded POST."""

    path: str
    body: dict[str, Any]
    at: float  # time.monotonic() on arrival

    @property
    def channel(self) -> str | None:
        return self.body.get("channel")

    @property
    def cart_id(self) -> str | None:
        return (self.body.get("metadata") or {}).get("cart_id")


class FakeProvider:
    """A threaded HTTP server on 127.0.0.1 with a random port. Use as a context manager
    or call :meth:`start` / :meth:`close`."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._scripts: dict[str | None, deque[Reply]] = {}
        self._changed = threading.Condition()
        self._release = threading.Event()
        self._ids = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-provider",
            daemon=True,
        )

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> FakeProvider:
        self._thread.start()
        return self

    def close(self) -> None:
        self._release.set()  # wake every hanging reply
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/send"

    # -- scripting and reading -----------------------------------------------------------
    def script(self, channel: str | None, *replies: Reply) -> None:
        """Queue replies for requests on ``channel`` (None: any channel)."""
        with self._changed:
            self._scripts.setdefault(channel, deque()).extend(replies)

    def requests(self, channel: str | None = None) -> list[Received]:
        with self._changed:
            return [r for r in self.received if channel is None or r.channel == channel]

    def channels(self) -> list[str | None]:
        return [r.channel for r in self.requests()]

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 30.0
    ) -> list[Received]:
        """Block until ``predicate(received)`` holds; AssertionError with what arrived if not."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(list(self.received)):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"fake provider: condition not met in {timeout}s; received "
                        f"{[(r.channel, r.cart_id) for r in self.received]}"
                    )
                self._changed.wait(left)
            return list(self.received)

    # -- the server side -------------------------------------------------------------------
    def _next_reply(self, channel: str | None) -> Reply:
        with self._changed:
            for key in (channel, None):
                queue = self._scripts.get(key)
                if queue:
                    return queue.popleft()
        return Reply.ok()

    def _record(self, path: str, body: dict[str, Any]) -> Reply:
        reply = self._next_reply(body.get("channel"))
        with self._changed:
            self.received.append(Received(path, body, time.monotonic()))
            self._changed.notify_all()
        return reply

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"_unparsed": raw.decode("utf-8", "replace")}
                reply = fake._record(self.path, body)
                if reply.hang_for:
                    fake._release.wait(reply.hang_for)
                payload = (
                    reply.body if reply.body is not None else {"id": f"fake-{next(fake._ids)}"}
                )
                data = json.dumps(payload).encode()
                try:
                    self.send_response(reply.status_code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client went away (a killed worker, a timeout): expected

            def log_message(self, format: str, *args: Any) -> None:
                del format, args

        return Handler
