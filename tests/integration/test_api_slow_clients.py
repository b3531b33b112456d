"""Slow and vanishing clients can neither hold the API nor flood its log (issue 13).

A real API — uvicorn on a free port, configured by ``workers.api.server_config`` through
``Runtime.start_api`` — with short deadlines, talked to over raw sockets: a client that
sends nothing, one that trickles its headers, one that trickles its body (with and without
a valid key), one that hangs up mid-body, and 250 of them at once. The last test starts
``cartflow api`` itself, so the command is shown to serve the same limits.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

from cartflow.workers.api import BODY_GRACE
from cartflow.workers.runtime import Runtime

from .conftest import (
    API_KEY,
    PostgresServer,
    RedisServer,
    auth,
    cart_event,
    cartflow_process,
    free_port,
    fresh_database,
    make_settings,
    wait_until,
    write_config,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

#: The test API's deadlines (the defaults are 10 s; short ones keep the module quick).
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.5
#: How late a deadline may fire on a busy two-core machine.
SLACK = 1.5
#: A trickling client sends one byte this often: never idle, never done.
TRICKLE = 0.1

HEAD = (
    b"POST /v1/events HTTP/1.1\r\nHost: cartflow\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100000\r\n"
)
AUTHORISED_HEAD = HEAD + f"Authorization: Bearer {API_KEY}\r\n\r\n".encode()
UNAUTHORISED_HEAD = HEAD + b"Authorization: Bearer wrong\r\n\r\n"
#: When the shop's events happened.
AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
#: Headers that never end: each trickled byte is one more header character.
ENDLESS_HEADERS = HEAD + b"X-Padding: " + b"a" * 10_000


@pytest.fixture(scope="module")
def api(
    postgres: PostgresServer, redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    """The port of one API for the module, with :data:`HEADER_TIMEOUT` / :data:`BODY_TIMEOUT`."""
    config = write_config(tmp_path_factory.mktemp("slow-config"), "http://127.0.0.1:9/send")
    with fresh_database(postgres) as url:
        settings = make_settings(
            url,
            redis.url,
            config,
            api_header_timeout=HEADER_TIMEOUT,
            api_body_timeout=BODY_TIMEOUT,
            api_keep_alive=5,
        )
        runtime = Runtime(settings, embedded=False)
        try:
            yield runtime.start_api("127.0.0.1", 0)
        finally:
            runtime.stop()


# -- a client that keeps a connection busy ----------------------------------------------------
@dataclass
class Client:
    """One connection: ``send_first`` at once, then ``trickle`` one byte per :data:`TRICKLE`."""

    sock: socket.socket
    trickle: bytes = b""
    reply: bytes = b""
    #: "closed" (FIN), "reset" (RST) or "open" when the test gave up waiting.
    ended: str = "open"
    #: Seconds from the start until the server ended the connection.
    seconds: float = 0.0
    sent: int = field(default=0)


def connect(port: int, send_first: bytes = b"", trickle: bytes = b"") -> Client:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setblocking(False)
    if send_first:
        sock.sendall(send_first)
    return Client(sock, trickle)


def hold(clients: list[Client], limit: float) -> float:
    """Keep every client trickling until the server ends its connection (or ``limit``
    seconds pass); returns the seconds taken. Everything the server sends is kept."""
    start = time.monotonic()
    selector = selectors.DefaultSelector()
    for client in clients:
        selector.register(client.sock, selectors.EVENT_READ, client)
    open_ = set(range(len(clients)))
    next_byte = start
    try:
        while open_ and time.monotonic() - start < limit:
            now = time.monotonic()
            if now >= next_byte:
                for index in list(open_):
                    client = clients[index]
                    if client.sent < len(client.trickle):
                        try:
                            client.sock.send(client.trickle[client.sent : client.sent + 1])
                            client.sent += 1
                        except (BrokenPipeError, ConnectionResetError):
                            pass  # the read below sees the end
                next_byte = now + TRICKLE
            for key, _ in selector.select(timeout=max(0.0, next_byte - time.monotonic())):
                client = key.data
                try:
                    data = client.sock.recv(65536)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    data, client.ended = b"", "reset"
                if data:
                    client.reply += data
                    continue
                client.ended = "closed" if client.ended == "open" else client.ended
                client.seconds = time.monotonic() - start
                selector.unregister(client.sock)
                open_.discard(clients.index(client))
    finally:
        selector.close()
        for client in clients:
            client.sock.close()
    return time.monotonic() - start


def status(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else 0


# -- one client at a time -----------------------------------------------------------------------
def test_a_connection_that_sends_nothing_is_closed_at_the_header_timeout(api: int) -> None:
    client = connect(api)
    hold([client], limit=HEADER_TIMEOUT + SLACK + 5)
    assert client.ended == "closed"
    assert client.reply == b""  # nothing asked, nothing answered
    assert HEADER_TIMEOUT - 0.1 <= client.seconds <= HEADER_TIMEOUT + SLACK


def test_trickled_headers_are_answered_408_and_closed(api: int) -> None:
    # Given a client that sends a header byte every 0.1 s and never finishes the head
    client = connect(api, trickle=ENDLESS_HEADERS)
    with structlog.testing.capture_logs() as logs:
        hold([client], limit=HEADER_TIMEOUT + SLACK + 5)
    # Then it is told 408 and cut off at the header timeout, though it never paused
    assert client.ended in ("closed", "reset")
    assert HEADER_TIMEOUT - 0.1 <= client.seconds <= HEADER_TIMEOUT + SLACK
    assert status(client.reply) == 408, client.reply
    assert b"request head not received within 1 s" in client.reply
    (line,) = [entry for entry in logs if entry["event"] == "header_timeout"]
    # what the server read: every byte sent, but one may still be in flight at the cut
    assert client.sent - 1 <= line["received"] <= client.sent


def test_a_kept_alive_connection_gets_a_new_header_deadline_per_request(api: int) -> None:
    # Given a connection that served one request and stays open
    client = connect(api, send_first=b"GET /healthz HTTP/1.1\r\nHost: cartflow\r\n\r\n")
    deadline = time.monotonic() + 5
    while b'"ok"' not in client.reply and time.monotonic() < deadline:
        try:
            client.reply += client.sock.recv(65536)
        except BlockingIOError:
            time.sleep(0.01)
    assert status(client.reply) == 200, client.reply
    # When, some time later, the next request's head trickles in
    time.sleep(HEADER_TIMEOUT / 2)
    client.reply = b""
    client.trickle = ENDLESS_HEADERS
    hold([client], limit=HEADER_TIMEOUT + SLACK + 5)
    # Then its deadline counts from its own first byte, and it is cut off all the same
    assert status(client.reply) == 408, client.reply
    assert HEADER_TIMEOUT - 0.1 <= client.seconds <= HEADER_TIMEOUT + SLACK


def test_a_trickled_body_is_answered_408_and_closed(api: int) -> None:
    # Given an authorised request whose body arrives a byte every 0.1 s
    client = connect(api, send_first=AUTHORISED_HEAD, trickle=b"x" * 100_000)
    with structlog.testing.capture_logs() as logs:
        hold([client], limit=BODY_TIMEOUT + BODY_GRACE + SLACK + 5)
    # Then it gets a 408 at the body timeout, and the connection is closed
    assert client.ended in ("closed", "reset")
    assert BODY_TIMEOUT - 0.1 <= client.seconds <= BODY_TIMEOUT + SLACK
    assert status(client.reply) == 408, client.reply
    assert b"connection: close" in client.reply.lower()
    assert b'"request body not received within 1.5 s"' in client.reply
    (line,) = [entry for entry in logs if entry["event"] == "body_timeout"]
    assert 0 < line["received"] <= client.sent


def test_a_trickled_body_after_a_401_is_cut_off(api: int) -> None:
    # Given a request without a valid key, answered 401 before its body is read
    client = connect(api, send_first=UNAUTHORISED_HEAD, trickle=b"x" * 100_000)
    hold([client], limit=BODY_TIMEOUT + BODY_GRACE + SLACK + 5)
    # Then the client cannot keep the connection by trickling the body it still owes
    assert status(client.reply) == 401, client.reply
    assert client.ended in ("closed", "reset")
    assert client.seconds <= BODY_TIMEOUT + BODY_GRACE + SLACK


def test_a_head_left_half_sent_after_a_body_is_cut_off(api: int) -> None:
    # Given a request answered 401 before its five body bytes arrived
    client = connect(
        api,
        send_first=b"POST /v1/events HTTP/1.1\r\nHost: cartflow\r\nContent-Length: 5\r\n\r\n",
    )
    deadline = time.monotonic() + 5
    while b"\r\n\r\n" not in client.reply and time.monotonic() < deadline:
        with contextlib.suppress(BlockingIOError):
            client.reply += client.sock.recv(65536)
    assert status(client.reply) == 401, client.reply
    # When the body comes with half of the next request's head (one packet), then nothing
    client.sock.send(b"xxxxxGET /healthz HTTP/1.1\r\nHost: cartflow\r\n")
    client.reply = b""
    hold([client], limit=HEADER_TIMEOUT + SLACK + 5)
    # Then the half head has its deadline like any other
    assert b"HTTP/1.1 408 Request Timeout\r\n" in client.reply, client.reply
    assert client.seconds <= HEADER_TIMEOUT + SLACK


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_client_gone_mid_body_is_one_log_line_without_traceback(api: int) -> None:
    uvicorn_log = Records()
    logging.getLogger("uvicorn").addHandler(uvicorn_log)
    try:
        with structlog.testing.capture_logs() as logs:
            # Given a client that sends its head and 100 bytes of body
            client = connect(api, send_first=AUTHORISED_HEAD + b"x" * 100)
            time.sleep(0.3)
            # When it hangs up
            client.sock.close()
            wait_until(lambda: logs, timeout=5, message="a log line")
            time.sleep(0.5)  # anything else it would log
    finally:
        logging.getLogger("uvicorn").removeHandler(uvicorn_log)
    # Then that is one line with the bytes received, and nothing from uvicorn
    assert logs == [{"event": "client_disconnected", "log_level": "info", "received": 100}]
    assert [record.getMessage() for record in uvicorn_log.records] == []


# -- many at once --------------------------------------------------------------------------------
def test_250_slow_clients_are_cut_off_and_others_are_served_meanwhile(api: int) -> None:
    base = f"http://127.0.0.1:{api}"
    with httpx.Client(base_url=base, timeout=10) as shop:
        assert shop.get("/healthz").status_code == 200  # warm: worker threads exist
        threads_before = threading.active_count()
        # Given 150 clients trickling bodies and 100 trickling headers
        slow_body = [connect(api, AUTHORISED_HEAD, b"x" * 100_000) for _ in range(150)]
        slow_head = [connect(api, trickle=ENDLESS_HEADERS) for _ in range(100)]
        clients = slow_body + slow_head
        took: list[float] = []
        attack = threading.Thread(
            target=lambda: took.append(hold(clients, limit=BODY_TIMEOUT + BODY_GRACE + 10))
        )
        attack.start()
        # When the shop sends events meanwhile
        latencies: list[float] = []
        threads_during = 0
        try:
            for index in range(5):
                started = time.monotonic()
                event = cart_event(f"cart_{index}", at=AT, zone="Etc/UTC")
                response = shop.post("/v1/events", json=event, headers=auth())
                latencies.append(time.monotonic() - started)
                assert response.status_code == 202, response.text
                threads_during = max(threads_during, threading.active_count())
                time.sleep(0.1)
        finally:
            attack.join()
    # Then the shop was served promptly, no thread was spent per slow connection
    assert max(latencies) < 1.0, latencies
    assert threads_during - threads_before <= 5, (threads_before, threads_during)
    # ... and every slow client was cut off at its deadline: the whole attack lasts as long
    # as one slow client does
    assert all(client.ended in ("closed", "reset") for client in clients)
    assert max(client.seconds for client in slow_head) <= HEADER_TIMEOUT + SLACK
    assert max(client.seconds for client in slow_body) <= BODY_TIMEOUT + SLACK
    answered = [status(client.reply) for client in clients if client.reply]
    assert set(answered) <= {408}, answered
    assert took[0] <= BODY_TIMEOUT + SLACK


# -- ``cartflow api`` serves the same limits ------------------------------------------------------
def test_the_cartflow_api_command_serves_the_configured_limits(
    pg_url: str, redis_url: str, config_path: Path, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        "CARTFLOW_DATABASE_URL": pg_url,
        "CARTFLOW_REDIS_URL": redis_url,
        "CARTFLOW_CONFIG": str(config_path),
        "CARTFLOW_API_KEYS": API_KEY,
        "CARTFLOW_API_HOST": "127.0.0.1",
        "CARTFLOW_API_PORT": str(port),
        "CARTFLOW_API_HEADER_TIMEOUT": "1",
        "CARTFLOW_API_MAX_CONNECTIONS": "4",
    }
    log_path = tmp_path / "api.log"
    with (
        cartflow_process(["api"], env, log_path) as process,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client,
    ):

        def up() -> Any:
            assert process.poll() is None, log_path.read_text()
            try:
                return client.get("/healthz").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, timeout=60, message="cartflow api to answer")
        # a wrong method is told which one is right
        response = client.get("/v1/events")
        assert (response.status_code, response.headers["allow"]) == (405, "POST")
        # an idle connection is closed at CARTFLOW_API_HEADER_TIMEOUT
        idle = connect(port)
        hold([idle], limit=10)
        assert idle.ended == "closed" and idle.seconds <= 1 + SLACK
        # beyond CARTFLOW_API_MAX_CONNECTIONS open connections, a request is turned away
        others = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
        try:
            time.sleep(0.1)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as fresh:
                assert fresh.get("/healthz").status_code == 503
        finally:
            for sock in others:
                sock.close()
        wait_until(up, timeout=5, message="the API to serve again")
