"""A fast fake message provider for bench/reminders.py: a loopback HTTP/1.1 server
(asyncio, keep-alive) that answers every ``POST`` with 200 at once and records who was
sent to and when, so that the harness can count sends, duplicates and lost ones.

Every system under test posts JSON with an ``id`` (cartflow: the delivery id) and an
``idempotency_key``; a delivery is named by ``ref``: for cartflow the journey step
(``metadata.cart_id:metadata.step``), for the alternatives the reminder's own ``id``.

    python bench/fakeprovider.py            # prints "PORT <n>", serves until SIGTERM

``GET /stats`` → ``{"count": …, "unique": …}``; ``GET /dump`` → ``[[ref, key, unix time],
…]`` in arrival order; ``POST /reset`` forgets everything. Any other POST is a send.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from typing import Any

Record = tuple[str, str, float]


class Store:
    def __init__(self) -> None:
        self.records: list[Record] = []
        self.refs: set[str] = set()

    def send(self, body: bytes) -> bytes:
        now = time.time()
        try:
            data: Any = json.loads(body)
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        meta = data.get("metadata") or {}
        key = str(data.get("idempotency_key") or data.get("id") or "")
        if isinstance(meta, dict) and meta.get("cart_id"):
            ref = f"{meta['cart_id']}:{meta.get('step')}"
        else:
            ref = str(data.get("id") or key)
        self.records.append((ref, key, now))
        self.refs.add(ref)
        return json.dumps({"id": f"fake-{len(self.records)}"}).encode()


class Http(asyncio.Protocol):
    def __init__(self, store: Store) -> None:
        self.store = store
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            length = 0
            close = False
            for line in head[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value.strip() or 0)
                elif name == "connection" and value.strip().lower() == "close":
                    close = True
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            method, _, rest = head[0].partition(" ")
            path = rest.split(" ")[0]
            self.respond(self.handle(method, path, body), close)
            if close:
                return

    def handle(self, method: str, path: str, body: bytes) -> bytes:
        if method == "GET" and path == "/stats":
            count, unique = len(self.store.records), len(self.store.refs)
            return json.dumps({"count": count, "unique": unique}).encode()
        if method == "GET" and path == "/dump":
            return json.dumps(self.store.records).encode()
        if method == "POST" and path == "/reset":
            self.store.records.clear()
            self.store.refs.clear()
            return b"{}"
        return self.store.send(body)

    def respond(self, payload: bytes, close: bool) -> None:
        assert self.transport is not None
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n"
            f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
        )
        self.transport.write(head.encode() + payload)
        if close:
            self.transport.close()


async def serve(port: int) -> None:
    store = Store()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Http(store), "127.0.0.1", port, backlog=2048)
    stopped = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    bound = server.sockets[0].getsockname()[1]
    print(f"PORT {bound}", flush=True)
    async with server:
        await stopped.wait()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
