"""The Shopify door (``POST /v1/shopify/webhooks``, workers/doors/shopify.py): Shopify's
documented sample payloads (tests/fixtures/doors/), signed as Shopify signs them, become
native events that the real engine applies — on loopback, through uvicorn.

A checkout is a cart with a reminder due on the idle timer; its order ends it; a checkout
update that arrives after the order changes nothing. Nothing unsigned is ever stored.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from cartflow.engine.service import Engine
from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Database
from cartflow.engine.store.models import Consent, Contact, Identity, RawEvent
from cartflow.workers.doors.drafts import Unmappable
from cartflow.workers.doors.intake import ignored_counts
from cartflow.workers.doors.shopify_map import CONSENT_STATES, checkout, consent_of
from cartflow.workers.doors.signatures import SignatureRefused, hmac_base64_matches

from ..factories import T0, ClockedRecorder, cart
from .conftest import FIXTURES, Api

SECRET, OLD_SECRET = "shpss_new_app_secret", "shpss_old_app_secret"
CART_ID = "shopify-cart-eeafa272cebfd4b22385bc4b645e762c"
URL = "/v1/shopify/webhooks"


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"shopify_{name}.json").read_text())
    return data


def a_checkout(at: datetime, state: str = "subscribed") -> dict[str, Any]:
    """Shopify's ``checkouts/create`` sample, updated at ``at``, its customer subscribed."""
    body = sample("checkouts_create")
    body["updated_at"] = at.isoformat()
    body["customer"]["email_marketing_consent"] = {
        "state": state,
        "opt_in_level": "single_opt_in",
        "consent_updated_at": None,
    }
    return body


def an_order(at: datetime) -> dict[str, Any]:
    """Shopify's ``orders/create`` sample, for the checkout sample's cart and customer."""
    body = sample("orders_create")
    body["cart_token"] = "eeafa272cebfd4b22385bc4b645e762c"
    body["checkout_token"] = "123123123"
    body["customer"]["id"] = 603851970716743426
    body["processed_at"] = at.isoformat()
    return body


def signed(raw: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()


def deliver(
    api: Api,
    topic: str,
    body: Any,
    webhook_id: str,
    *,
    secret: str | None = SECRET,
    signature: str | None = None,
) -> Any:
    raw = json.dumps(body).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Shop-Domain": "jsmith.myshopify.com",
    }
    if signature is not None:
        headers["X-Shopify-Hmac-SHA256"] = signature
    elif secret is not None:
        headers["X-Shopify-Hmac-SHA256"] = signed(raw, secret)
    return api.client.post(URL, content=raw, headers=headers)


def stored(db: Database) -> int:
    with db.reading() as session:
        return int(session.scalar(select(func.count()).select_from(RawEvent)) or 0)


@pytest.fixture
def api(serve: Callable[..., Api], engine: Engine) -> Api:
    return serve(engine, {"shopify": [SECRET, OLD_SECRET]})


def test_a_checkout_is_a_cart_whose_reminder_comes_on_the_idle_timer(
    api: Api, sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    # Given Shopify's checkouts/create sample for a subscribed customer, signed
    answer = deliver(api, "checkouts/create", a_checkout(T0), "wh-checkout-1")

    # Then it is stored as one native cart.updated
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"accepted": 1, "duplicates": 0}
    assert api.apply() == 1
    row = cart(db, CART_ID)
    assert row is not None and row.status == "active"
    assert (row.item_count, row.value, row.currency) == (2, Decimal("398"), "USD")
    assert row.url == (
        "https://checkout.local/548380009/checkouts/123123123/recover?key=example-secret-token"
    )
    with db.reading() as session:
        emails = session.scalars(select(Contact.address).where(Contact.channel == "email")).all()
        consent = session.scalars(select(Consent.channel).where(Consent.granted)).all()
        customer = session.get(Identity, ("customer_id", "603851970716743426"))
    assert emails == ["example@email.com"] and consent == ["email"] and customer is not None

    # When the shopper stays away: nothing before the idle timer (30 min) abandons the cart,
    sim.run_until(T0 + timedelta(minutes=29))
    assert recorder.calls == []
    # then the reminders go, by email, the one channel with a contact and consent
    sim.run_until(T0 + timedelta(hours=25))
    sent = [(channel, at) for channel, at, _ in recorder.calls]
    assert sent and {channel for channel, _ in sent} == {"email"}
    assert min(at for _, at in sent) >= T0 + timedelta(minutes=30)


def test_the_order_ends_the_cart_and_a_late_checkout_update_sends_nothing(
    api: Api, sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    # Given the checkout, then its order an hour later
    assert deliver(api, "checkouts/create", a_checkout(T0), "wh-1").status_code == 202
    api.apply()
    sim.run_until(T0 + timedelta(hours=1))
    order = deliver(api, "orders/create", an_order(T0 + timedelta(hours=1)), "wh-2")
    assert order.status_code == 202, order.text
    api.apply()
    row = cart(db, CART_ID)
    assert row is not None and row.status == "ordered" and row.order_id == "820982911946154508"

    # When Shopify delivers a checkouts/update it had failed to deliver earlier (dated
    # before the order) hours after the order — and one dated after it, too
    sim.run_until(T0 + timedelta(hours=5))
    for hook, at in (("wh-3", T0 + timedelta(minutes=30)), ("wh-4", T0 + timedelta(hours=4))):
        assert deliver(api, "checkouts/update", a_checkout(at), hook).status_code == 202
    assert api.apply() == 2

    # Then the cart stays paid and no reminder ever goes
    sim.run_until(T0 + timedelta(days=3))
    row = cart(db, CART_ID)
    assert row is not None and row.status == "ordered"
    assert recorder.calls == []


def test_a_redelivery_is_stored_and_applied_once(api: Api, db: Database) -> None:
    body = a_checkout(T0)
    first = deliver(api, "checkouts/update", body, "wh-same")
    again = deliver(api, "checkouts/update", body, "wh-same")
    assert (first.status_code, first.json()) == (202, {"accepted": 1, "duplicates": 0})
    assert (again.status_code, again.json()) == (202, {"accepted": 0, "duplicates": 1})
    assert stored(db) == 1
    with db.reading() as session:
        assert session.get(RawEvent, "shopify-wh-same") is not None


@pytest.mark.parametrize(
    ("secret", "signature"),
    [
        (None, None),  # no header
        ("shpss_someone_elses_secret", None),
        (None, "not base64!"),
        (None, base64.b64encode(b"x" * 32).decode()),
    ],
    ids=["missing", "other-secret", "not-base64", "wrong-digest"],
)
def test_a_bad_or_missing_signature_is_401_and_nothing_is_stored(
    api: Api, db: Database, secret: str | None, signature: str | None
) -> None:
    answer = deliver(
        api, "checkouts/create", a_checkout(T0), "wh-bad", secret=secret, signature=signature
    )
    assert answer.status_code == 401
    assert "X-Shopify-Hmac-SHA256" in answer.json()["error"]
    assert stored(db) == 0


def test_a_body_changed_after_signing_is_401(api: Api, db: Database) -> None:
    raw = json.dumps(a_checkout(T0)).encode()
    headers = {
        "X-Shopify-Topic": "checkouts/create",
        "X-Shopify-Webhook-Id": "wh-tampered",
        "X-Shopify-Hmac-SHA256": signed(raw),
    }
    answer = api.client.post(URL, content=raw.replace(b"199.00", b"0.01"), headers=headers)
    assert answer.status_code == 401 and stored(db) == 0


def test_the_old_secret_still_signs_while_it_is_rotated(api: Api, db: Database) -> None:
    answer = deliver(api, "checkouts/create", a_checkout(T0), "wh-old", secret=OLD_SECRET)
    assert answer.status_code == 202 and stored(db) == 1


def test_a_topic_cartflow_does_not_read_is_200_ignored_and_counted(api: Api, db: Database) -> None:
    answer = deliver(api, "products/update", {"id": 1, "title": "Hat"}, "wh-product")
    assert answer.status_code == 200
    assert "products/update" in answer.json()["ignored"]
    assert ignored_counts(api.app)[("shopify", "products/update")] == 1
    assert stored(db) == 0


def test_a_completed_checkout_is_ignored_its_order_ends_the_cart(api: Api, db: Database) -> None:
    body = a_checkout(T0)
    body["completed_at"] = T0.isoformat()
    answer = deliver(api, "checkouts/update", body, "wh-done")
    assert answer.status_code == 200 and stored(db) == 0


def test_the_door_is_off_without_a_secret(serve: Callable[..., Api], engine: Engine) -> None:
    api = serve(engine, {"shopify": ()})
    answer = deliver(api, "checkouts/create", a_checkout(T0), "wh-off")
    assert answer.status_code == 404
    assert "CARTFLOW_SHOPIFY_SECRETS" in answer.json()["error"]


def test_the_secret_comes_from_the_environment_when_none_is_given(
    serve: Callable[..., Api], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARTFLOW_SHOPIFY_SECRETS", f" {OLD_SECRET} , {SECRET} ")
    api = serve(engine, None)
    assert deliver(api, "checkouts/create", a_checkout(T0), "wh-env").status_code == 202


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        (lambda b: b["line_items"][1].update(price="-5"), "line_items.1.price"),
        (
            lambda b: b["line_items"][0].update(sku="", variant_id=None, product_id=None),
            "line_items.0.sku",
        ),
        (lambda b: b.update(token=None, cart_token=None), "token"),
        (
            lambda b: b.update(abandoned_checkout_url="javascript:alert(1)"),
            "abandoned_checkout_url",
        ),
        (lambda b: b.update(updated_at="2026-11-22 10:00"), "updated_at"),
        (lambda b: b.update(line_items={"not": "a list"}), "line_items"),
    ],
    ids=["negative-price", "no-sku", "no-token", "bad-url", "naive-time", "items-not-a-list"],
)
def test_a_payload_that_does_not_map_is_422_naming_the_payload_path(
    api: Api, db: Database, change: Callable[[dict[str, Any]], None], loc: str
) -> None:
    body = a_checkout(T0)
    change(body)
    answer = deliver(api, "checkouts/update", body, "wh-422")
    assert answer.status_code == 422, answer.text
    assert loc in [error["loc"] for error in answer.json()["errors"]]
    assert stored(db) == 0


def test_a_cart_seen_before_its_checkout_is_the_same_cart_of_the_same_shopper(
    api: Api, db: Database
) -> None:
    # Given Shopify's carts/create sample (no customer) for the checkout's cart token
    carts = sample("carts_create")
    carts["token"] = carts["id"] = "eeafa272cebfd4b22385bc4b645e762c"
    carts["updated_at"] = (T0 - timedelta(minutes=5)).isoformat()
    assert deliver(api, "carts/create", carts, "wh-cart").status_code == 202
    api.apply()
    early = cart(db, CART_ID)
    assert early is not None and early.item_count == 3 and early.currency == "USD"

    # When the checkout for that cart names the customer
    assert deliver(api, "checkouts/create", a_checkout(T0), "wh-co").status_code == 202
    api.apply()

    # Then it is one cart, now the checkout's, and the visitor is the customer
    later = cart(db, CART_ID)
    assert later is not None and later.item_count == 2
    with db.reading() as session:
        visitor = session.get(Identity, ("anonymous_id", CART_ID))
        customer = session.get(Identity, ("customer_id", "603851970716743426"))
    assert visitor is not None and customer is not None
    assert visitor.profile_id == customer.profile_id == later.profile_id


def test_a_consent_topic_withdraws_consent(api: Api, db: Database) -> None:
    # Given a subscribed customer's checkout
    assert deliver(api, "checkouts/create", a_checkout(T0), "wh-c1").status_code == 202
    api.apply()
    # When Shopify's customers_email_marketing_consent/update sample says not subscribed
    body = sample("customers_email_marketing_consent_update")
    body["customer_id"] = 603851970716743426
    body["email_marketing_consent"]["consent_updated_at"] = (T0 + timedelta(minutes=1)).isoformat()
    answer = deliver(api, "customers_email_marketing_consent/update", body, "wh-c2")
    assert answer.status_code == 202, answer.text
    api.apply()
    with db.reading() as session:
        granted = session.scalars(select(Consent.granted).where(Consent.channel == "email")).all()
    assert granted == [False]


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("subscribed", {"email": True}),
        ("SUBSCRIBED", {"email": True}),
        ("not_subscribed", {"email": False}),
        ("unsubscribed", {"email": False}),
        ("redacted", {"email": False}),
        ("invalid", {"email": False}),
        ("pending", {}),
        ("confirmed_by_carrier_pigeon", {}),
        (None, {}),
    ],
)
def test_consent_states_map_as_documented_and_unknown_ones_change_nothing(
    state: str | None, expected: dict[str, bool]
) -> None:
    customer = {"email_marketing_consent": {"state": state}}
    assert {k: v for k, (v, _) in consent_of(customer, "customer.").items()} == expected
    assert set(CONSENT_STATES) == {
        "subscribed",
        "not_subscribed",
        "unsubscribed",
        "redacted",
        "invalid",
    }


def test_the_sample_checkout_without_consent_objects_sends_no_consent() -> None:
    (draft,) = checkout(sample("checkouts_create"))  # type: ignore[misc]
    assert "consent" not in draft.body
    assert draft.body["contact"] == {"email": "example@email.com", "first_name": "John"}
    assert draft.body["cart"]["items"][0] == {
        "sku": "IPOD2008PINK",
        "name": "IPod Nano - 8GB",
        "price": "199.00",
        "quantity": 1,
        "variant": "Pink",
    }


def test_a_checkout_without_any_token_names_the_field() -> None:
    with pytest.raises(Unmappable) as caught:
        checkout({"line_items": []})
    assert caught.value.errors == [
        {"loc": "token", "msg": "a checkout needs its token or cart_token"}
    ]


@settings(max_examples=60, deadline=None)
@given(
    body=st.binary(max_size=300),
    secret=st.text(min_size=1, max_size=40),
    flip=st.integers(min_value=0, max_value=299),
)
def test_only_the_exact_body_with_a_configured_secret_is_accepted(
    body: bytes, secret: str, flip: int
) -> None:
    signature = signed(body, secret)
    hmac_base64_matches(body, signature, ["another", secret])  # the rotated list
    if body:
        index = flip % len(body)
        changed = body[:index] + bytes([body[index] ^ 1]) + body[index + 1 :]
        with pytest.raises(SignatureRefused):
            hmac_base64_matches(changed, signature, [secret])
    with pytest.raises(SignatureRefused):
        hmac_base64_matches(body, signature, [secret + "x"])


def test_the_sample_order_without_tokens_still_ends_the_shoppers_carts(api: Api) -> None:
    body = copy.deepcopy(sample("orders_create"))
    answer = deliver(api, "orders/create", body, "wh-o")
    assert answer.status_code == 202
    with api.engine.db.reading() as session:
        event = session.get(RawEvent, "shopify-wh-o")
    assert event is not None
    assert event.payload["order"] == {
        "id": "820982911946154508",
        "total": "404.95",
        "currency": "USD",
    }
    assert event.payload["customer_id"] == "115310627314723954"
