"""Fixtures for the doors' tests (``test_doors_*.py``).

``serve``     a function: ``serve(engine, door_secrets)`` serves the API app built on
              ``engine`` with uvicorn on a free loopback port, and returns an
              :class:`Api` (``client``, ``url``, the ``queued`` event ids the app asked to
              apply, ``app``); every server is stopped at teardown.

Applying is left to the test (``api.apply()``), so a test reads what was *stored* before
anything acts on it, and then moves the simulated clock itself.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from cartflow.engine.service import Engine
from cartflow.workers.api import ServerLimits, create_app, server_config

#: Payloads copied from the platforms' documentation (their README says from where).
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "doors"


@dataclass
class Api:
    client: httpx.Client
    url: str
    app: Any
    engine: Engine
    queued: list[str] = field(default_factory=list)

    def apply(self) -> int:
        """Apply what the API stored since the last call (as the event worker would)."""
        ids, self.queued[:] = list(self.queued), []
        return self.engine.apply_events(ids)


@pytest.fixture
def serve() -> Iterator[Callable[..., Api]]:
    stops: list[Callable[[], None]] = []

    def start(engine: Engine, door_secrets: Mapping[str, Sequence[str]] | None = None) -> Api:
        queued: list[str] = []
        app = create_app(engine, queued.extend, ["key"], door_secrets)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        server = uvicorn.Server(server_config(app, ServerLimits(), port=0))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            threading.Event().wait(0.02)
        client = httpx.Client(base_url=url, timeout=10)

        def stop() -> None:
            client.close()
            server.should_exit = True
            thread.join(timeout=5)
            sock.close()

        stops.append(stop)
        return Api(client=client, url=url, app=app, engine=engine, queued=queued)

    yield start
    for stop in reversed(stops):
        stop()
