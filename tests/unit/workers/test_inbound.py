"""Replies shoppers text back (engine/inbound.py, ``POST /v1/providers/{name}/inbound``):
STOP withdraws SMS consent before the next send — even one already due — START gives it
back; the webhook is checked the vendor's way. On loopback: a fake Twilio, the API served
by uvicorn, Twilio's inbound webhook signed as Twilio documents."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from sqlalchemy import select

from cartflow.engine.clock import SimulatedClock
from cartflow.engine.configs import ConfigHolder
from cartflow.engine.inbound import keyword
from cartflow.engine.service import Engine
from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Database
from cartflow.engine.store.models import RawEvent
from cartflow.providers.registry import ChannelRouter
from cartflow.providers.twilio import TwilioProvider
from cartflow.workers.api import ServerLimits, create_app, server_config

from ..factories import T0, ClockedRecorder, cart_updated, decisions
from ..providers.test_twilio import SENDER, SID, TOKEN, FakeTwilio, twilio_signature

pytest_plugins = ["tests.unit.providers.test_twilio"]  # the `twilio` fake's fixture

PHONE = "+79991234567"  # the factories' shopper


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("STOP", "stop"),
        (" stop ", "stop"),
        ("Stop.", "stop"),
        ("СТОП", "stop"),
        ("отписка!", "stop"),
        ("STOPALL", "stop"),
        ("unsubscribe", "stop"),
        ("START", "start"),
        ("старт", "start"),
        ("please stop texting me", None),
        ("Can I pay by card?", None),
        ("", None),
    ],
)
def test_only_a_reply_that_is_a_keyword_counts(text: str, word: str | None) -> None:
    assert keyword(text) == word


@pytest.fixture
def shop(
    db: Database, clock: SimulatedClock, configs: ConfigHolder, twilio: FakeTwilio
) -> Iterator[dict[str, Any]]:
    """The shipped scenario with Twilio behind SMS; the push has gone out."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1/providers/twilio/inbound"
    sms = TwilioProvider(
        account_sid=SID, auth_token=TOKEN, sender=SENDER, base_url=twilio.url, inbound_url=url
    )
    recorder = ClockedRecorder(clock)
    engine = Engine(
        db, clock, configs, ChannelRouter({"push": recorder, "sms": sms, "email": recorder})
    )
    sim = Simulation(engine, clock)
    sim.feed([cart_updated(T0)])
    sim.run_until(T0 + timedelta(hours=1))
    app = create_app(engine, lambda ids: None, ["key"])  # accepted events stay unapplied
    server = uvicorn.Server(server_config(app, ServerLimits(), port=0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.02)
    with httpx.Client(timeout=10) as client:
        yield {"sim": sim, "client": client, "url": url, "twilio": twilio, "db": db}
    server.should_exit = True
    thread.join(timeout=5)
    sock.close()
    sms.close()


def text_back(
    shop: dict[str, Any], body: str, sid: str = "SMin1", token: str = TOKEN
) -> httpx.Response:
    """What Twilio posts when the shopper texts the number: a signed form."""
    params = {"MessageSid": sid, "AccountSid": SID, "From": PHONE, "To": SENDER, "Body": body}
    return shop["client"].post(
        shop["url"],
        content=urlencode(params),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(token, shop["url"], params),
        },
    )


def consent_events(db: Database) -> list[RawEvent]:
    with db.reading() as session:
        return [e for e in session.scalars(select(RawEvent)) if e.type == "consent.updated"]


def test_stop_before_the_sms_is_due_means_no_sms_even_before_it_is_applied(
    shop: dict[str, Any],
) -> None:
    # When the shopper texts STOP an hour after the push
    answer = text_back(shop, "STOP")

    # Then Twilio is answered with empty TwiML and a consent event is stored
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/xml")
    assert answer.text.endswith("<Response></Response>")
    (stored,) = consent_events(shop["db"])
    assert stored.payload["consent"] == {"sms": False} and stored.applied_at is None

    # ... and when the SMS comes due, nothing goes to Twilio: the step goes by email
    shop["sim"].run_until(T0 + timedelta(hours=5))
    assert not [s for s in shop["twilio"].seen if s.method == "POST"]
    fallback = [d for d in decisions(shop["db"], "fallback") if d.step_id == "sms"]
    assert fallback and "sms: consent withdrawn (accepted, being applied)" in fallback[0].reason


def test_the_same_webhook_twice_is_one_event_and_start_gives_consent_back(
    shop: dict[str, Any],
) -> None:
    assert text_back(shop, "СТОП", sid="SM1").status_code == 200
    assert text_back(shop, "СТОП", sid="SM1").status_code == 200  # Twilio retried
    assert text_back(shop, "Start", sid="SM2").status_code == 200
    consents = [e.payload["consent"] for e in consent_events(shop["db"])]
    assert sorted(map(str, consents)) == ["{'sms': False}", "{'sms': True}"]


@pytest.mark.parametrize("body", ["When does the sale end?", "stop by the shop later"])
def test_a_reply_that_is_not_a_keyword_changes_nothing(shop: dict[str, Any], body: str) -> None:
    assert text_back(shop, body).status_code == 200
    assert consent_events(shop["db"]) == []


def test_a_forged_webhook_is_refused_and_changes_nothing(shop: dict[str, Any]) -> None:
    answer = text_back(shop, "STOP", token="not-the-auth-token")
    assert answer.status_code == 401
    assert "X-Twilio-Signature does not match" in answer.json()["error"]
    assert consent_events(shop["db"]) == []
    # ... nor does one without a signature
    unsigned = shop["client"].post(shop["url"], content="From=%2B7999&Body=STOP")
    assert unsigned.status_code == 401 and consent_events(shop["db"]) == []


def test_a_type_not_configured_is_404(shop: dict[str, Any]) -> None:
    url = shop["url"].replace("/twilio/", "/infobip/")
    assert shop["client"].post(url, content="x").status_code == 404
