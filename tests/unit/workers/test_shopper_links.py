"""The links shoppers open (workers/shopper_links.py): tracked clicks and one-click
unsubscribe, signed per delivery, served by the API with uvicorn on loopback."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
import uvicorn
from sqlalchemy import select

from cartflow.engine.clock import SimulatedClock
from cartflow.engine.configs import ConfigHolder
from cartflow.engine.links import Links
from cartflow.engine.sending import Message
from cartflow.engine.service import Engine
from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Consent, Database
from cartflow.engine.store.models import DeliveryEventRow, RawEvent
from cartflow.providers.registry import ChannelRouter
from cartflow.workers.api import ServerLimits, create_app, server_config

from ..factories import T0, ClockedRecorder, cart_updated, decisions, deliveries, write_config

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
SECRET = b"links-secret-for-tests-0123"
TEMPLATES = {
    "t/push.ru.j2": "{% block title %}Корзина{% endblock %}{% block body %}ждёт{% endblock %}"
    "{% block url %}{{ links.cart }}{% endblock %}",
    "t/sms.ru.j2": "{% block text %}Корзина ждёт: {{ links.cart }}{% endblock %}",
    "t/email.ru.j2": "{% block subject %}Корзина{% endblock %}"
    "{% block text %}Вернуться: {{ links.cart }}; отписаться: {{ unsubscribe_url }}{% endblock %}"
    '{% block html %}<a href="{{ "https://shop.example/sale" | link }}">sale</a>{% endblock %}',
}
#: Push, then an SMS only if the push was not clicked within 30 minutes.
ESCALATES = """\
scenario: escalates
trigger: {on: cart.abandoned, idle: 30m}
steps:
  - {id: push, after: 30m, channel: push, template: t/push}
  - {id: sms, after_previous: 30m, channel: sms, window: "00:00-23:59",
     escalate: {unless: clicked, within: 30m}, template: t/sms}
"""
#: Two emails a day apart.
TWO_EMAILS = """\
scenario: emails
trigger: {on: cart.abandoned, idle: 30m}
steps:
  - {id: first, after: 30m, channel: email, template: t/email}
  - {id: second, after: 1d, channel: email, template: t/email}
"""


@dataclass
class Shop:
    db: Database
    sim: Simulation
    recorder: ClockedRecorder
    client: httpx.Client
    url: str

    def sent(self, channel: str) -> list[Message]:
        return [m for m in self.recorder.sent if m.channel == channel]


@pytest.fixture
def shop_for(
    db: Database, clock: SimulatedClock, tmp_path: Path
) -> Iterator[Callable[[str], Shop]]:
    """A shop on ``scenario`` with links set up, its API served on loopback."""
    servers: list[tuple[uvicorn.Server, threading.Thread, socket.socket]] = []
    with httpx.Client(timeout=10, follow_redirects=False) as client:

        def build(scenario: str) -> Shop:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            config = write_config(tmp_path / "config", scenario, templates=TEMPLATES)
            recorder = ClockedRecorder(clock)
            router = ChannelRouter({"push": recorder, "sms": recorder, "email": recorder})
            engine = Engine(db, clock, ConfigHolder(config), router, links=Links(url, SECRET))
            app = create_app(engine, lambda ids: None, ["key"])  # events stay unapplied
            server = uvicorn.Server(server_config(app, ServerLimits(), port=0))
            thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
            thread.start()
            while not server.started:
                threading.Event().wait(0.02)
            servers.append((server, thread, sock))
            return Shop(db, Simulation(engine, clock), recorder, client, url)

        yield build
    for server, thread, sock in servers:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


def events_of(db: Database, delivery_id: str) -> list[str]:
    with db.reading() as session:
        query = select(DeliveryEventRow.status).where(DeliveryEventRow.delivery_id == delivery_id)
        return list(session.scalars(query))


def test_a_click_on_the_cart_link_is_recorded_once_and_redirects_to_the_cart(
    shop_for: Callable[[str], Shop],
) -> None:
    # Given a push whose cart link goes through cartflow
    shop = shop_for(ESCALATES)
    shop.sim.feed([cart_updated(T0)])
    shop.sim.run_until(T0 + 31 * MINUTE)
    (push,) = shop.sent("push")
    link = push.parts["url"]
    assert link.startswith(f"{shop.url}/l/{push.delivery_id}/")
    target = parse_qs(urlsplit(link).query)["u"][0]
    assert target == "https://shop.example/cart_1"

    # When the shopper taps it twice
    first, second = shop.client.get(link), shop.client.get(link)

    # Then both go to the cart, and one click is on record
    assert (first.status_code, first.headers["location"]) == (302, target)
    assert second.status_code == 302
    assert events_of(shop.db, push.delivery_id).count("clicked") == 1


def _with(
    link: str,
    *,
    delivery: str | None = None,
    signature: str | None = None,
    target: str | None = None,
) -> str:
    """``link`` with one of its parts replaced."""
    split = urlsplit(link)
    _, kind, old_delivery, old_signature = split.path.split("/")
    query = f"u={quote(target, safe='')}" if target is not None else split.query
    path = f"/{kind}/{delivery or old_delivery}/{signature or old_signature}"
    return f"{split.scheme}://{split.netloc}{path}?{query}"


@pytest.mark.parametrize(
    "alter",
    [
        pytest.param(lambda link: _with(link, target="https://evil.example/"), id="target"),
        pytest.param(lambda link: _with(link, target="https://shop.example/cart_2"), id="cart"),
        pytest.param(lambda link: _with(link, delivery="someone-else"), id="delivery"),
        pytest.param(lambda link: _with(link, signature="A" * 22), id="signature"),
    ],
)
def test_a_forged_or_altered_link_redirects_nowhere_and_records_nothing(
    shop_for: Callable[[str], Shop], alter: Callable[[str], str]
) -> None:
    shop = shop_for(ESCALATES)
    shop.sim.feed([cart_updated(T0)])
    shop.sim.run_until(T0 + 31 * MINUTE)
    (push,) = shop.sent("push")

    answer = shop.client.get(alter(push.parts["url"]))

    assert answer.status_code == 404 and "location" not in answer.headers
    assert "not valid" in answer.text
    assert "clicked" not in events_of(shop.db, push.delivery_id)


@pytest.mark.parametrize(("clicked", "sms_sent"), [(True, False), (False, True)])
def test_push_then_sms_only_if_the_push_was_not_clicked_within_30_minutes(
    shop_for: Callable[[str], Shop], clicked: bool, sms_sent: bool
) -> None:
    # Given a push went out
    shop = shop_for(ESCALATES)
    shop.sim.feed([cart_updated(T0)])
    shop.sim.run_until(T0 + 31 * MINUTE)

    # When the shopper taps it (or not) 10 minutes later
    shop.sim.run_until(T0 + 40 * MINUTE)
    if clicked:
        assert shop.client.get(shop.sent("push")[0].parts["url"]).status_code == 302

    # Then the SMS goes only when no click came
    shop.sim.run_until(T0 + 3 * HOUR)
    assert bool(shop.sent("sms")) is sms_sent
    if clicked:
        (skipped,) = [d for d in decisions(shop.db, "skipped") if d.step_id == "sms"]
        assert skipped.reason == "previous message was clicked; no need to escalate"


def test_one_click_unsubscribe_stops_the_next_email_before_the_event_is_applied(
    shop_for: Callable[[str], Shop],
) -> None:
    # Given the first of two emails went out, with its unsubscribe link in the text and
    # in the message's metadata (the SMTP provider's List-Unsubscribe header)
    shop = shop_for(TWO_EMAILS)
    shop.sim.feed([cart_updated(T0)])
    shop.sim.run_until(T0 + HOUR)
    (first,) = shop.sent("email")
    unsubscribe = first.metadata["unsubscribe_url"]
    assert unsubscribe == f"{shop.url}/u/{first.delivery_id}/" + unsubscribe.rsplit("/", 1)[1]
    assert f"отписаться: {unsubscribe}" in first.parts["text"]
    assert first.parts["html"].startswith(f'<a href="{shop.url}/l/{first.delivery_id}/')

    # When a mail scanner fetches the link: a page with a button, nothing changes
    page = shop.client.get(unsubscribe)
    assert page.status_code == 200 and "<form method='post'" in page.text
    with shop.db.reading() as session:
        assert not session.scalars(select(RawEvent)).all() or all(
            e.type != "consent.updated" for e in session.scalars(select(RawEvent))
        )

    # ... and then the mail client posts the RFC 8058 one-click request
    done = shop.client.post(unsubscribe, content="List-Unsubscribe=One-Click")
    assert done.status_code == 200 and "unsubscribed" in done.text
    assert "unsubscribed" in events_of(shop.db, first.delivery_id)

    # Then the second email never goes, though the consent event is not applied yet
    shop.sim.run_until(T0 + timedelta(days=2))
    assert len(shop.sent("email")) == 1
    with shop.db.reading() as session:
        (stored,) = [e for e in session.scalars(select(RawEvent)) if e.type == "consent.updated"]
        assert stored.applied_at is None
        assert session.get(Consent, (deliveries(shop.db)[0].profile_id, "email")).granted
    second = [d for d in decisions(shop.db) if d.step_id == "second"]
    assert any("email: consent withdrawn (accepted, being applied)" in d.reason for d in second)


def test_an_unsubscribe_link_of_another_delivery_or_forged_is_refused(
    shop_for: Callable[[str], Shop],
) -> None:
    shop = shop_for(TWO_EMAILS)
    shop.sim.feed([cart_updated(T0)])
    shop.sim.run_until(T0 + HOUR)
    (first,) = shop.sent("email")
    forged = first.metadata["unsubscribe_url"].rsplit("/", 1)[0] + "/AAAAAAAAAAAAAAAAAAAAAA"

    assert shop.client.post(forged).status_code == 404
    assert shop.client.get(forged).status_code == 404
    assert "unsubscribed" not in events_of(shop.db, first.delivery_id)
