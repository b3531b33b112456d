"""cartflow.client against the real API on loopback, behind a scripted proxy for failures
(503, 429 with Retry-After, a dropped connection, 422)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from cartflow.client import Client, QueueFull
from cartflow.engine.service import Engine
from cartflow.engine.store import Database
from cartflow.engine.store.models import RawEvent

from ..factories import T0
from .conftest import Api


class Proxy:
    """Answers the next scripted statuses itself, then forwards to the real API."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.script: list[tuple[int, dict[str, str]] | str] = []
        self.seen: list[list[str]] = []  # event ids per request
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                proxy.seen.append([e["id"] for e in json.loads(body)["events"]])
                step = proxy.script.pop(0) if proxy.script else None
                if step == "drop":  # the request arrived; the answer never comes back
                    httpx.post(proxy.upstream + self.path, content=body, headers=_fwd(self.headers))
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if step is not None:
                    status, headers = step
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                    return
                answer = httpx.post(
                    proxy.upstream + self.path, content=body, headers=_fwd(self.headers)
                )
                self.send_response(answer.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _fwd(headers: Any) -> dict[str, str]:
    return {"Authorization": headers["Authorization"], "Content-Type": "application/json"}


@pytest.fixture
def api(serve: Callable[..., Api], engine: Engine) -> Api:
    return serve(engine)


@pytest.fixture
def proxy(api: Api) -> Iterator[Proxy]:
    p = Proxy(api.url)
    yield p
    p.server.shutdown()
    p.server.server_close()


def event(n: int) -> dict[str, Any]:
    return {"type": "page.viewed", "anonymous_id": f"a{n}", "at": T0.isoformat()}


def stored(db: Database) -> int:
    with db.reading() as session:
        return int(session.scalar(select(func.count()).select_from(RawEvent)) or 0)


def client(url: str, **options: Any) -> Client:
    return Client(url, "key", flush_interval=0, backoff=0.01, **options)


def test_events_go_in_batches_and_are_stored(api: Api, proxy: Proxy, db: Database) -> None:
    with client(proxy.url, batch_size=4) as cartflow:
        ids = [cartflow.send(event(n)) for n in range(10)]
    assert [len(batch) for batch in proxy.seen] == [4, 4, 2]
    assert [i for batch in proxy.seen for i in batch] == ids and len(set(ids)) == 10
    assert cartflow.stats.accepted == 10 and stored(db) == 10


def test_503_and_429_are_retried_with_the_same_ids(api: Api, proxy: Proxy, db: Database) -> None:
    proxy.script = [(503, {}), (429, {"Retry-After": "0"})]
    with client(proxy.url) as cartflow:
        cartflow.send(event(1))
    assert len(proxy.seen) == 3 and proxy.seen[0] == proxy.seen[1] == proxy.seen[2]
    assert cartflow.stats.retries == 2 and cartflow.stats.accepted == 1 and stored(db) == 1


def test_a_lost_answer_is_retried_and_deduplicated_by_cartflow(
    api: Api, proxy: Proxy, db: Database
) -> None:
    proxy.script = ["drop"]  # stored upstream, but the client never hears so
    with client(proxy.url) as cartflow:
        cartflow.send(event(1))
    assert len(proxy.seen) == 2 and cartflow.stats.duplicates == 1 and stored(db) == 1


def test_a_refusal_is_not_retried_and_is_recorded(api: Api, proxy: Proxy, db: Database) -> None:
    with client(proxy.url) as cartflow:
        bad = cartflow.send({"type": "cart.updated", "anonymous_id": "a1"})  # no cart
    assert len(proxy.seen) == 1 and stored(db) == 0
    assert [(f.ids, f.status) for f in cartflow.failed] == [([bad], 422)]
    assert "cart" in cartflow.failed[0].answer


def test_giving_up_after_the_retries_records_the_batch(api: Api, proxy: Proxy) -> None:
    proxy.script = [(503, {})] * 3
    with client(proxy.url, retries=2) as cartflow:
        sent = cartflow.send(event(1))
    assert len(proxy.seen) == 3 and [(f.ids, f.status) for f in cartflow.failed] == [([sent], 503)]


def test_the_queue_is_bounded(api: Api) -> None:
    cartflow = client(api.url, max_queue=2)
    cartflow.send(event(1))
    cartflow.send(event(2))
    with pytest.raises(QueueFull):
        cartflow.send(event(3))
    assert cartflow.dropped == 1
    cartflow.close()
    assert cartflow.stats.accepted == 2


def test_the_background_thread_sends_a_full_batch(api: Api, db: Database) -> None:
    cartflow = Client(api.url, "key", batch_size=2, flush_interval=30)
    cartflow.send(event(1))
    cartflow.send(event(2))  # a full batch wakes the thread
    for _ in range(200):
        if cartflow.stats.accepted == 2:
            break
        threading.Event().wait(0.02)
    assert cartflow.stats.accepted == 2 and stored(db) == 2
    cartflow.close()
