"""A small client for shops that post native events to cartflow (docs/client.md).

>>> from cartflow.client import Client
>>> with Client("https://cartflow.example", "<api key>") as cartflow:  # doctest: +SKIP
...     cartflow.track("cart.updated", customer_id="c42", cart={"id": "9", "items": [...]})

* **Batching**: events queue in memory and go ``batch_size`` (≤ 1000) per request — when a
  batch is full, every ``flush_interval`` seconds from a background thread (``0``: only
  when you call :meth:`Client.flush`), and on :meth:`Client.close`.
* **Idempotent ids**: each event gets its id once, when it is queued (``id`` you give is
  kept), so a batch sent again after a lost answer is deduplicated by cartflow.
* **Retries** with exponential backoff and full jitter on 429, 5xx and connection errors,
  honouring ``Retry-After``; never on another 4xx (the batch is recorded in
  :attr:`Client.failed` with cartflow's answer — fix the event, do not resend blindly).
* **Bounded**: at most ``max_queue`` events wait; :meth:`Client.send` beyond that raises
  :class:`QueueFull` (and counts it in :attr:`Client.dropped`) instead of growing.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import httpx

#: What cartflow accepts in one request.
MAX_BATCH = 1000
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class QueueFull(Exception):
    """The client holds ``max_queue`` events already: flush, or slow down."""


@dataclass
class Failed:
    """A batch cartflow refused for good (a 4xx other than 429), or gave up on."""

    ids: list[str]
    status: int | None
    answer: str


@dataclass
class Stats:
    accepted: int = 0
    duplicates: int = 0
    requests: int = 0
    retries: int = 0
    failed: list[Failed] = field(default_factory=list)


class Client:
    """Post native events to ``url`` (``/v1/events``) with ``api_key``."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        batch_size: int = 100,
        flush_interval: float = 1.0,
        max_queue: int = 10_000,
        retries: int = 6,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be 1–{MAX_BATCH}")
        self.batch_size, self.max_queue, self.retries = batch_size, max_queue, retries
        self.backoff, self.max_backoff = backoff, max_backoff
        self.stats = Stats()
        self.dropped = 0
        self._queue: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()  # the queue
        self._sending = threading.Lock()  # one batch on the wire at a time
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            transport=transport,
        )
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        if flush_interval > 0:
            self._thread = threading.Thread(
                target=self._run, args=(flush_interval,), name="cartflow-client", daemon=True
            )
            self._thread.start()

    @property
    def failed(self) -> list[Failed]:
        return self.stats.failed

    def send(self, event: dict[str, Any]) -> str:
        """Queue one native event (docs/events.md); returns its id."""
        event = dict(event)
        event.setdefault("id", f"cf-{uuid.uuid4().hex}")
        event.setdefault("at", datetime.now(UTC).isoformat())
        with self._lock:
            if self._closed:
                raise RuntimeError("the client is closed")
            if len(self._queue) >= self.max_queue:
                self.dropped += 1
                raise QueueFull(f"{self.max_queue} events are waiting already")
            self._queue.append(event)
            full = len(self._queue) >= self.batch_size
        if full:
            self._wake.set()
        return str(event["id"])

    def track(self, type: str, **fields: Any) -> str:
        """Queue an event of ``type`` with ``fields`` (``customer_id=…``, ``cart={…}``)."""
        return self.send({"type": type, **fields})

    def flush(self) -> Stats:
        """Send everything queued now, batch by batch; returns the running totals."""
        while True:
            with self._lock:
                batch = [
                    self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))
                ]
            if not batch:
                return self.stats
            with self._sending:
                self._post(batch)

    def close(self) -> None:
        """Flush what is queued, stop the background thread, close the connection."""
        with self._lock:
            self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _run(self, interval: float) -> None:
        while True:
            self._wake.wait(interval)
            self._wake.clear()
            self.flush()
            with self._lock:
                if self._closed:
                    return

    def _post(self, batch: list[dict[str, Any]]) -> None:
        ids = [str(e["id"]) for e in batch]
        for attempt in range(self.retries + 1):
            self.stats.requests += 1
            try:
                answer = self._http.post("/v1/events", json={"events": batch})
            except httpx.TransportError as exc:
                status, text, wait = None, f"{type(exc).__name__}: {exc}", None
            else:
                if answer.status_code == 202:
                    body = answer.json()
                    self.stats.accepted += int(body.get("accepted", 0))
                    self.stats.duplicates += int(body.get("duplicates", 0))
                    return
                status, text = answer.status_code, answer.text[:2000]
                if status not in RETRY_STATUSES:
                    self.stats.failed.append(Failed(ids, status, text))
                    return
                wait = _retry_after(answer.headers.get("retry-after"))
            if attempt == self.retries:
                self.stats.failed.append(Failed(ids, status, text))
                return
            self.stats.retries += 1
            ceiling = min(self.max_backoff, self.backoff * 2**attempt)
            time.sleep(wait if wait is not None else random.uniform(0, ceiling))


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (cartflow sends seconds), capped at five minutes."""
    try:
        return min(max(float(value), 0.0), 300.0) if value is not None else None
    except ValueError:
        return None
