"""Telegram end to end on loopback: the shop asks for a shopper's ``t.me`` link, the shopper
opens it (Telegram posts ``/start <token>`` to the updates webhook), the chat becomes a
``messenger`` contact with consent and the messenger step goes to it; ``/stop``, blocking
the bot, or Telegram answering "bot was blocked" withdraws that consent and the step goes
by email. A fake Bot API, the API served by uvicorn, the real engine on a simulated clock."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uvicorn
from sqlalchemy import select

from cartflow.engine.clock import SimulatedClock
from cartflow.engine.configs import ConfigHolder
from cartflow.engine.links import Links
from cartflow.engine.service import Engine
from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Database
from cartflow.engine.store.models import Consent, Contact, RawEvent
from cartflow.providers.registry import ChannelRouter
from cartflow.providers.telegram import TelegramProvider
from cartflow.workers.api import ServerLimits, create_app, server_config

from ..factories import (
    SETTINGS_YAML,
    T0,
    ClockedRecorder,
    cart_updated,
    decisions,
    deliveries,
    write_config,
)
from ..providers.fake_vendor import FakeVendor, serve
from ..providers.test_telegram import BOT_TOKEN, SECRET, refused, sent

CHAT = "987654321"
SCENARIO = """\
scenario: telegram
trigger: {on: cart.abandoned, idle: 30m}
reentry: 0m
exit_on: [order.completed, cart.emptied, unsubscribed]
steps:
  - {id: remind, after: 30m, channel: messenger, fallback: [email],
     discount: {percent: 5, ttl: 48h},
     template: {messenger: abandoned_cart/sms, email: abandoned_cart/email}}
"""
SETTINGS = SETTINGS_YAML.replace(
    "  email: {{type: recording}}", "  email: {{type: recording}}\n  messenger: {{type: recording}}"
)


@pytest.fixture
def bot() -> Iterator[FakeVendor]:
    yield from serve(sent)


@pytest.fixture
def shop(
    tmp_path: Path, db: Database, clock: SimulatedClock, bot: FakeVendor
) -> Iterator[dict[str, Any]]:
    """A shop with a messenger step (falling over to email) and Telegram behind it; the
    shopper's cart is in, with email consent only."""
    config = write_config(
        tmp_path / "config", SCENARIO, SETTINGS.format(templates=tmp_path / "config" / "templates")
    )
    telegram = TelegramProvider(
        bot_token=BOT_TOKEN,
        bot_username="shop_bot",
        webhook_secret=SECRET,
        base_url=bot.url,
        timeout=2,
    )
    recorder = ClockedRecorder(clock)
    links = Links("https://cf.shop.example", b"a-link-secret-of-32-bytes-000000")
    engine = Engine(
        db,
        clock,
        ConfigHolder(config),
        ChannelRouter({"messenger": telegram, "email": recorder}),
        links=links,
    )
    sim = Simulation(engine, clock)
    sim.feed([cart_updated(T0, consent={"email": True})])
    app = create_app(engine, engine.apply_events, ["key"])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(server_config(app, ServerLimits(), port=0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.02)
    with httpx.Client(base_url=base, timeout=10) as client:
        yield {"sim": sim, "client": client, "db": db, "bot": bot, "recorder": recorder}
    server.should_exit = True
    thread.join(timeout=5)
    sock.close()
    telegram.close()


def start_link(shop: dict[str, Any], customer_id: str = "cust_1") -> httpx.Response:
    return shop["client"].get(
        "/v1/providers/telegram/link",
        params={"customer_id": customer_id},
        headers={"Authorization": "Bearer key"},
    )


def post_update(shop: dict[str, Any], body: dict[str, Any], secret: str = SECRET) -> httpx.Response:
    return shop["client"].post(
        "/v1/providers/telegram/inbound",
        content=json.dumps(body),
        headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": secret},
    )


def said(text: str, update_id: int) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "from": {"id": int(CHAT), "is_bot": False, "first_name": "Анна"},
            "chat": {"id": int(CHAT), "type": "private"},
            "date": int(T0.timestamp()) + update_id,
            "text": text,
        },
    }


def blocked(update_id: int) -> dict[str, Any]:
    member = {"user": {"id": 1, "is_bot": True, "first_name": "Shop"}}
    return {
        "update_id": update_id,
        "my_chat_member": {
            "chat": {"id": int(CHAT), "type": "private"},
            "from": {"id": int(CHAT), "is_bot": False},
            "date": int(T0.timestamp()) + update_id,
            "old_chat_member": {**member, "status": "member"},
            "new_chat_member": {**member, "status": "kicked"},
        },
    }


def connect(shop: dict[str, Any]) -> None:
    """The shopper opens the shop's t.me link and presses Start."""
    answer = start_link(shop)
    assert answer.status_code == 200, answer.text
    url = answer.json()["url"]
    assert url.startswith("https://t.me/shop_bot?start=")
    (token,) = parse_qs(urlsplit(url).query)["start"]
    assert post_update(shop, said(f"/start {token}", 10)).status_code == 200


def messenger_consent(db: Database) -> bool | None:
    with db.reading() as session:
        row = session.scalar(select(Consent).where(Consent.channel == "messenger"))
        return row.granted if row is not None else None


def test_a_chat_opened_from_the_link_gets_the_messenger_step(shop: dict[str, Any]) -> None:
    # When the shopper connects their chat, then the cart is abandoned
    connect(shop)
    with shop["db"].reading() as session:
        (contact,) = session.scalars(select(Contact).where(Contact.channel == "messenger"))
        assert contact.address == CHAT
    assert messenger_consent(shop["db"]) is True
    shop["sim"].run_until(T0 + timedelta(hours=2))

    # Then the reminder went to that chat on Telegram, not by email
    (seen,) = shop["bot"].posts()
    assert seen.path == f"/bot{BOT_TOKEN}/sendMessage"
    assert seen.json()["chat_id"] == CHAT and "cf.shop.example/l/" in seen.json()["text"]
    (delivery,) = deliveries(shop["db"])
    assert (delivery.channel, delivery.status, delivery.provider_message_id) == (
        "messenger",
        "accepted",
        f"{CHAT}:321",
    )
    assert shop["recorder"].calls == []


@pytest.mark.parametrize("withdraw", ["/stop", "СТОП", "blocked"])
def test_stop_or_a_block_before_the_step_sends_it_by_email(
    shop: dict[str, Any], withdraw: str
) -> None:
    connect(shop)
    update = blocked(11) if withdraw == "blocked" else said(withdraw, 11)
    assert post_update(shop, update).status_code == 200
    assert messenger_consent(shop["db"]) is False

    shop["sim"].run_until(T0 + timedelta(hours=2))

    assert shop["bot"].posts() == []
    assert [c for c, _, s in shop["recorder"].calls] == ["email"]
    (fallback,) = decisions(shop["db"], "fallback")
    assert fallback.reason.startswith("messenger:")


def test_start_alone_after_stop_gives_consent_back(shop: dict[str, Any]) -> None:
    connect(shop)
    post_update(shop, said("/stop", 11))
    post_update(shop, said("/start", 12))
    assert messenger_consent(shop["db"]) is True


def test_telegram_saying_the_bot_was_blocked_withdraws_consent_and_falls_over(
    shop: dict[str, Any],
) -> None:
    connect(shop)
    shop["bot"].script = [refused(403, "Forbidden: bot was blocked by the user")]

    shop["sim"].run_until(T0 + timedelta(hours=2))

    assert len(shop["bot"].posts()) == 1
    assert [c for c, _, s in shop["recorder"].calls] == ["email"]
    assert messenger_consent(shop["db"]) is False


def test_a_forged_token_connects_nothing(shop: dict[str, Any]) -> None:
    answer = start_link(shop)
    token = parse_qs(urlsplit(answer.json()["url"]).query)["start"][0]
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert post_update(shop, said(f"/start {forged}", 10)).status_code == 200
    with shop["db"].reading() as session:
        assert session.scalars(select(Contact).where(Contact.channel == "messenger")).all() == []
        types = [e.type for e in session.scalars(select(RawEvent))]
    assert "consent.updated" not in types


def test_an_update_with_a_wrong_secret_is_401_and_changes_nothing(shop: dict[str, Any]) -> None:
    connect(shop)
    answer = post_update(shop, said("/stop", 11), secret="not-the-secret")
    assert answer.status_code == 401
    assert messenger_consent(shop["db"]) is True


def test_the_link_endpoint_needs_the_key_and_a_known_shopper(shop: dict[str, Any]) -> None:
    client = shop["client"]
    assert client.get("/v1/providers/telegram/link?customer_id=cust_1").status_code == 401
    assert start_link(shop, "nobody").status_code == 404
    missing = client.get("/v1/providers/telegram/link", headers={"Authorization": "Bearer key"})
    assert missing.status_code == 422 and missing.json()["errors"][0]["loc"] == "query.customer_id"
    other = client.get(
        "/v1/providers/twilio/link?customer_id=cust_1", headers={"Authorization": "Bearer key"}
    )
    assert other.status_code == 404
