"""``POST /v1/providers/{name}/status``: a vendor's signed receipts become delivery events,
once; a callback that fails the vendor's check is a 401 and changes nothing.

End to end on loopback: the engine sends a cart's SMS through the Twilio client to a fake
Twilio (tests/unit/providers/test_twilio.py), then Twilio's status callback — signed the
way Twilio documents it — is posted to cartflow's API served by uvicorn.
"""

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
from cartflow.engine.service import Engine
from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Database
from cartflow.engine.store.models import Delivery, DeliveryEventRow
from cartflow.providers.registry import ChannelRouter
from cartflow.providers.twilio import TwilioProvider
from cartflow.workers.api import ServerLimits, create_app, server_config

from ..factories import T0, ClockedRecorder, cart_updated
from ..providers.test_twilio import SENDER, SID, TOKEN, FakeTwilio, twilio_signature

pytest_plugins = ["tests.unit.providers.test_twilio"]  # the `twilio` fake's fixture


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


@pytest.fixture
def shop(
    db: Database,
    clock: SimulatedClock,
    configs: ConfigHolder,
    twilio: FakeTwilio,
    listening: socket.socket,
) -> Iterator[dict[str, Any]]:
    """The engine with Twilio behind SMS, its API served on loopback, one SMS sent."""
    port = listening.getsockname()[1]
    callback = f"http://127.0.0.1:{port}/v1/providers/twilio/status"
    sms = TwilioProvider(
        account_sid=SID,
        auth_token=TOKEN,
        sender=SENDER,
        base_url=twilio.url,
        status_callback=callback,
        timeout=2,
    )
    recorder = ClockedRecorder(clock)
    router = ChannelRouter({"push": recorder, "sms": sms, "email": recorder})
    engine = Engine(db, clock, configs, router)
    sim = Simulation(engine, clock)
    sim.feed([cart_updated(T0)])
    sim.run_until(T0 + timedelta(days=2))
    server = uvicorn.Server(
        server_config(create_app(engine, lambda ids: None, ["key"]), ServerLimits(), port=port)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.02)
    with httpx.Client(timeout=10) as client:
        yield {"db": db, "client": client, "callback": callback, "twilio": twilio}
    server.should_exit = True
    thread.join(timeout=5)
    sms.close()


def sent_sms(db: Database) -> Delivery:
    with db.reading() as session:
        row = session.scalar(select(Delivery).where(Delivery.channel == "sms"))
    assert row is not None, "the scenario's SMS step went through the Twilio client"
    return row


def events_of(db: Database, delivery_id: str) -> list[str]:
    with db.reading() as session:
        return list(
            session.scalars(
                select(DeliveryEventRow.status).where(DeliveryEventRow.delivery_id == delivery_id)
            )
        )


def post_callback(
    shop: dict[str, Any],
    delivery: Delivery,
    status: str,
    *,
    sid: str | None = None,
    token: str = TOKEN,
) -> httpx.Response:
    """What Twilio posts: the form, signed for the StatusCallback URL the send gave."""
    url = f"{shop['callback']}?{urlencode({'d': delivery.id})}"
    params = {
        "AccountSid": SID,
        "MessageSid": sid or delivery.provider_message_id or "",
        "MessageStatus": status,
        "To": "+79991234567",
        "From": SENDER,
    }
    return shop["client"].post(
        url,
        content=urlencode(params),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(token, url, params),
        },
    )


def test_a_signed_receipt_is_kept_once(shop: dict[str, Any]) -> None:
    delivery = sent_sms(shop["db"])
    assert delivery.provider == "twilio" and delivery.provider_message_id == "SM0001"
    before = events_of(shop["db"], delivery.id)
    # When Twilio reports the SMS delivered
    answer = post_callback(shop, delivery, "delivered")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"stored": 1, "duplicates": 0, "unmatched": 0}
    assert events_of(shop["db"], delivery.id) == [*before, "delivered"]
    # And again (Twilio retries callbacks): the same fact, not stored twice
    again = post_callback(shop, delivery, "delivered")
    assert again.json() == {"stored": 0, "duplicates": 1, "unmatched": 0}
    assert events_of(shop["db"], delivery.id).count("delivered") == 1


def test_a_forged_receipt_is_refused_and_changes_nothing(shop: dict[str, Any]) -> None:
    delivery = sent_sms(shop["db"])
    before = events_of(shop["db"], delivery.id)
    forged = post_callback(shop, delivery, "delivered", token="not-the-token")
    assert forged.status_code == 401
    assert "Signature does not match" in forged.json()["error"]
    assert TOKEN not in forged.text
    assert events_of(shop["db"], delivery.id) == before


def test_a_receipt_for_a_message_cartflow_did_not_send_is_counted_not_stored(
    shop: dict[str, Any],
) -> None:
    delivery = sent_sms(shop["db"])
    before = events_of(shop["db"], delivery.id)
    answer = post_callback(shop, delivery, "delivered", sid="SM-somebody-else")
    assert answer.json() == {"stored": 0, "duplicates": 0, "unmatched": 1}
    assert events_of(shop["db"], delivery.id) == before


def test_a_provider_that_is_not_configured_has_no_callback(shop: dict[str, Any]) -> None:
    url = shop["callback"].replace("/twilio/", "/postmark/")
    answer = shop["client"].post(url, content=b"{}")
    assert answer.status_code == 404
    recording = shop["callback"].replace("/twilio/", "/recording/")
    assert shop["client"].post(recording, content=b"{}").status_code == 404


def test_sms_ru_is_answered_100_as_it_expects(
    db: Database, clock: SimulatedClock, configs: ConfigHolder, listening: socket.socket
) -> None:
    # Given SMS.ru behind SMS (never called: only its callbacks are read)
    from cartflow.providers.smsru import SmsRuProvider

    sms = SmsRuProvider(api_id="key", receipt_token="tok-0123456789", base_url="http://127.0.0.1:9")
    recorder = ClockedRecorder(clock)
    engine = Engine(db, clock, configs, ChannelRouter({"push": recorder, "sms": sms}))
    port = listening.getsockname()[1]
    server = uvicorn.Server(
        server_config(create_app(engine, lambda ids: None, ["key"]), ServerLimits(), port=port)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.02)
    try:
        url = f"http://127.0.0.1:{port}/v1/providers/smsru/status"
        form = urlencode([("data[]", "sms_status\n000000-10000000\n103\n1733147409")])
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        # When SMS.ru posts a callback with the token, and one without
        good = httpx.post(f"{url}?token=tok-0123456789", content=form, headers=headers)
        bad = httpx.post(url, content=form, headers=headers)
    finally:
        server.should_exit = True
        thread.join(timeout=5)
    # Then it gets the plain "100" it waits for (else it sends again); the other a 401
    assert (good.status_code, good.text) == (200, "100")
    assert good.headers["content-type"].startswith("text/plain")
    assert bad.status_code == 401
