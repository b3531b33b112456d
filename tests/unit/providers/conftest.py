"""What every provider's tests share: a port where nothing listens."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


@pytest.fixture
def nothing_listening() -> Iterator[str]:
    """A bound port nobody listens on: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
