"""Replies that are no keyword (engine/replies.py, engine/reply_forwarding.py): a question
the shopper sends the bot is handed to the shop's support — a signed webhook, an email —
with their cart and the message they answered, and their reminders wait until support
says it is handled or the pause ends. On loopback: a fake Bot API, a fake support
service, the API served by uvicorn, the real engine on a simulated clock."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from cartflow.engine.clock import SimulatedClock
from cartflow.engine.configs import ConfigHolder
from cartflow.engine.links import Links
from cartflow.engine.service import Engine
from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Database
from cartflow.engine.store.models import ShopperReply
from cartflow.providers.registry import ChannelRouter
from cartflow.providers.telegram import TelegramProvider
from cartflow.workers.api import ServerLimits, create_app, server_config

from ..factories import (
    SETTINGS_YAML,
    T0,
    ClockedRecorder,
    cart_updated,
    decisions,
    journeys,
    write_config,
)
from ..providers.fake_vendor import FakeVendor, Reply, Seen, serve
from ..providers.test_telegram import BOT_TOKEN, SECRET, sent

CHAT = "555000111"
SUPPORT_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)
#: A Telegram message 30 minutes after abandonment, then an email 3 hours later.
SCENARIO = """\
scenario: replies
trigger: {on: cart.abandoned, idle: 30m}
reentry: 0m
exit_on: [order.completed, cart.emptied, unsubscribed]
steps:
  - {id: first, after: 30m, channel: messenger, discount: {percent: 5, ttl: 48h},
     template: abandoned_cart/sms}
  - {id: second, after_previous: 3h, channel: email, discount: {percent: 10, ttl: 72h},
     template: abandoned_cart/email}
"""
QUESTION = "Можно оплатить картой при получении?"


def settings(replies: str) -> str:
    base = SETTINGS_YAML.replace(
        "  email: {{type: recording}}",
        "  email: {{type: recording}}\n  messenger: {{type: recording}}",
    )
    return base + replies


@dataclass
class Shop:
    db: Database
    sim: Simulation
    clock: SimulatedClock
    client: httpx.Client
    support: FakeVendor
    recorder: ClockedRecorder

    def reply(self, text: str, update_id: int = 501, chat: str = CHAT) -> httpx.Response:
        body = {
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "from": {"id": int(chat), "is_bot": False, "first_name": "Анна"},
                "chat": {"id": int(chat), "type": "private"},
                "date": int(self.clock.now().timestamp()),
                "text": text,
            },
        }
        return self.client.post(
            "/v1/providers/telegram/inbound",
            content=json.dumps(body),
            headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
        )

    def handled(self, reply_id: str, body: Any = None, key: str = "key") -> httpx.Response:
        return self.client.post(
            f"/v1/replies/{reply_id}/handled",
            content=b"" if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {key}"},
        )

    def replies(self) -> list[ShopperReply]:
        with self.db.reading() as session:
            return list(session.scalars(select(ShopperReply)))

    def emails(self) -> list[str]:
        return [m.address for m in self.recorder.sent if m.channel == "email"]


@pytest.fixture
def support() -> Iterator[FakeVendor]:
    yield from serve(lambda seen: Reply(200, {"ok": True}))


@pytest.fixture
def bot() -> Iterator[FakeVendor]:
    yield from serve(sent)


@pytest.fixture
def shop_with(
    tmp_path: Path, db: Database, clock: SimulatedClock, bot: FakeVendor, support: FakeVendor
) -> Iterator[Callable[[str], Shop]]:
    """A shop whose ``replies:`` settings are the text given; the cart is in and the shopper
    connected their Telegram chat."""
    running: list[tuple[uvicorn.Server, threading.Thread, socket.socket, TelegramProvider]] = []
    with httpx.Client(timeout=10) as client:

        def build(replies: str) -> Shop:
            directory = tmp_path / "config"
            text = settings(replies.format(support=support.url))
            config = write_config(
                directory, SCENARIO, text.format(templates=directory / "templates")
            )
            telegram = TelegramProvider(
                bot_token=BOT_TOKEN, webhook_secret=SECRET, base_url=bot.url, timeout=2
            )
            recorder = ClockedRecorder(clock)
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            base = f"http://127.0.0.1:{sock.getsockname()[1]}"
            engine = Engine(
                db,
                clock,
                ConfigHolder(config),
                ChannelRouter({"messenger": telegram, "email": recorder}),
                links=Links(base, b"replies-link-secret-0123456789"),
            )
            sim = Simulation(engine, clock)
            contact = {"email": "a@example.com", "messenger": CHAT, "locale": "ru"}
            consent = {"email": True, "messenger": True}
            cart = cart_updated(T0, contact=contact, with_contact=False)
            sim.feed([cart.model_copy(update={"consent": consent})])
            app = create_app(engine, engine.apply_events, ["key"])
            server = uvicorn.Server(server_config(app, ServerLimits(), port=0))
            thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
            thread.start()
            while not server.started:
                threading.Event().wait(0.02)
            running.append((server, thread, sock, telegram))
            client.base_url = httpx.URL(base)
            return Shop(db, sim, clock, client, support, recorder)

        yield build
    for server, thread, sock, telegram in running:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()
        telegram.close()


WEBHOOK = f"""\
replies:
  webhook: "{{support}}/cartflow/replies"
  secret: "{SUPPORT_SECRET}"
  pause: 6h
"""


def signed(seen: Seen) -> bool:
    """Whether the support request carries a valid Standard Webhooks signature."""
    when = datetime.fromtimestamp(int(seen.headers["webhook-timestamp"]), UTC)
    expected = Webhook(SUPPORT_SECRET).sign(seen.headers["webhook-id"], when, seen.body.decode())
    return seen.headers["webhook-signature"] == expected


def test_a_question_reaches_support_signed_and_the_reminders_wait_until_it_is_handled(
    shop_with: Callable[[str], Shop],
) -> None:
    # Given the Telegram reminder went out 30 minutes after abandonment
    shop = shop_with(WEBHOOK)
    shop.sim.run_until(T0 + 61 * MINUTE)

    # When the shopper answers it with a question
    assert shop.reply(QUESTION).status_code == 200
    (reply,) = shop.replies()
    assert (reply.status, reply.channel, reply.text) == ("pending", "messenger", QUESTION)

    # Then support gets it, signed, with the cart, its link and the message answered
    shop.sim.run_until(T0 + 62 * MINUTE)
    (seen,) = shop.support.posts()
    assert seen.path == "/cartflow/replies" and signed(seen)
    body = seen.json()
    assert body["type"] == "reply.received" and body["id"] == reply.id
    assert (body["text"], body["from"], body["channel"]) == (QUESTION, CHAT, "messenger")
    assert body["shopper"]["customer_id"] == "cust_1"
    assert body["cart"]["id"] == "cart_1" and body["cart"]["url"] == "https://shop.example/cart_1"
    assert body["in_reply_to"]["step"] == "first" and "корзина" in body["in_reply_to"]["text"]
    assert body["handled_url"].endswith(f"/v1/replies/{reply.id}/handled")
    assert shop.replies()[0].status == "forwarded"

    # ... and the email due 3 hours after the first message waits
    shop.sim.run_until(T0 + 5 * HOUR)
    assert shop.emails() == []
    waiting = [d for d in decisions(shop.db, "deferred") if d.step_id == "second"]
    assert waiting and waiting[-1].reason == "the shopper replied; waiting for support to answer"

    # When support says it is handled, the email goes at once
    answer = shop.handled(reply.id)
    assert answer.json() == {"id": reply.id, "status": "handled", "journeys": 1}
    shop.sim.run_until(T0 + 5 * HOUR + MINUTE)
    assert shop.emails() == ["a@example.com"]


def test_unhandled_the_reminders_go_on_when_the_pause_ends(
    shop_with: Callable[[str], Shop],
) -> None:
    shop = shop_with(WEBHOOK)
    shop.sim.run_until(T0 + 61 * MINUTE)
    shop.reply(QUESTION)
    paused_until = T0 + 61 * MINUTE + 6 * HOUR

    shop.sim.run_until(paused_until - MINUTE)
    assert shop.emails() == []
    shop.sim.run_until(paused_until + MINUTE)
    assert shop.emails() == ["a@example.com"]


def test_handled_with_resume_false_ends_the_journey(shop_with: Callable[[str], Shop]) -> None:
    shop = shop_with(WEBHOOK)
    shop.sim.run_until(T0 + 61 * MINUTE)
    shop.reply(QUESTION)
    (reply,) = shop.replies()
    assert shop.handled(reply.id, {"resume": False}).status_code == 200
    shop.sim.run_until(T0 + 2 * timedelta(days=1))
    assert shop.emails() == []
    (journey,) = journeys(shop.db)
    assert (journey.status, journey.exit_reason) == (
        "exited",
        "support answered the shopper's reply",
    )


def test_support_down_is_tried_again_and_the_reply_arrives_once(
    shop_with: Callable[[str], Shop], support: FakeVendor
) -> None:
    shop = shop_with(WEBHOOK)
    shop.sim.run_until(T0 + 61 * MINUTE)
    support.script = [Reply(503, {"error": "down"}), Reply(500, {})]
    shop.reply(QUESTION)

    shop.sim.run_until(T0 + 70 * MINUTE)  # 1 and 5 minutes later

    assert len(support.posts()) == 3
    ids = {seen.headers["webhook-id"] for seen in support.posts()}
    assert len(ids) == 1  # the receiver can deduplicate
    (reply,) = shop.replies()
    assert (reply.status, reply.attempts) == ("forwarded", 2)


def test_a_webhook_delivered_twice_is_one_reply(shop_with: Callable[[str], Shop]) -> None:
    shop = shop_with(WEBHOOK)
    shop.sim.run_until(T0 + 61 * MINUTE)
    assert shop.reply(QUESTION, update_id=9).status_code == 200
    assert shop.reply(QUESTION, update_id=9).status_code == 200
    shop.sim.run_until(T0 + 70 * MINUTE)
    assert len(shop.replies()) == 1 and len(shop.support.posts()) == 1


def test_a_reply_from_nobody_known_is_forwarded_and_pauses_nothing(
    shop_with: Callable[[str], Shop],
) -> None:
    shop = shop_with(WEBHOOK)
    shop.sim.run_until(T0 + 61 * MINUTE)
    shop.reply("who is this?", chat="777")
    shop.sim.run_until(T0 + 5 * HOUR)
    (seen,) = shop.support.posts()
    assert seen.json()["shopper"] is None and seen.json()["cart"] is None
    assert shop.emails() == ["a@example.com"]  # on schedule


def test_by_email_support_gets_the_reply_and_the_cart(shop_with: Callable[[str], Shop]) -> None:
    shop = shop_with("replies:\n  email: support@shop.example\n  pause: 2h\n")
    shop.sim.run_until(T0 + 61 * MINUTE)
    shop.reply(QUESTION)
    shop.sim.run_until(T0 + 62 * MINUTE)
    (mail,) = [m for m in shop.recorder.sent if m.address == "support@shop.example"]
    assert mail.parts["subject"].startswith("Shopper reply: Можно оплатить")
    assert f"> {QUESTION}" in mail.parts["text"]
    assert "https://shop.example/cart_1" in mail.parts["text"]


def test_without_support_configured_replies_are_kept_and_nothing_waits(
    shop_with: Callable[[str], Shop],
) -> None:
    shop = shop_with("")
    shop.sim.run_until(T0 + 61 * MINUTE)
    shop.reply(QUESTION)
    shop.sim.run_until(T0 + 5 * HOUR)
    assert [r.status for r in shop.replies()] == ["kept"]
    assert shop.support.posts() == []
    assert shop.emails() == ["a@example.com"]


def test_the_handled_endpoint_refuses_what_it_cannot_act_on(
    shop_with: Callable[[str], Shop],
) -> None:
    shop = shop_with(WEBHOOK)
    shop.sim.run_until(T0 + 61 * MINUTE)
    shop.reply(QUESTION)
    (reply,) = shop.replies()
    assert shop.handled(reply.id, key="wrong").status_code == 401
    assert shop.handled("no-such-reply").status_code == 404
    bad = shop.handled(reply.id, {"resume": "yes"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == "resume"
    assert shop.handled(reply.id).json()["journeys"] == 1
    assert shop.handled(reply.id).json()["journeys"] == 0  # the same answer, nothing more
