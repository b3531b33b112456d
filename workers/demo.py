"""``cartflow demo``: the whole product in one process on an accelerated clock, fed by a
small shop simulator that talks to the real HTTP API.

Shoppers (each with a persona):

* ``buyer``     — adds to cart and pays within minutes: never reminded;
* ``leaver``    — adds to cart and never comes back: gets push, SMS and email;
* ``push_back`` — comes back after the push and buys: recovered, no SMS or email after;
* ``email_back``— comes back the next day after the email and buys;
* ``emptier``   — empties the cart after the push: the journey stops;
* ``browser``   — keeps browsing past the idle time before leaving: abandonment waits.
"""

from __future__ import annotations

import random
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import func, select

from engine.clock import AcceleratedClock
from engine.store.models import Cart, Delivery, Journey, RawEvent
from providers.console import ConsoleProvider
from providers.registry import ChannelRouter
from workers.runtime import Runtime
from workers.settings import Settings

PERSONAS = (
    "leaver",
    "push_back",
    "buyer",
    "email_back",
    "emptier",
    "browser",
    "leaver",
    "push_back",
)
NAMES = {"ru": ["Анна", "Иван", "Мария", "Олег"], "uk": ["Оксана", "Тарас"], "en": ["Emma", "Jack"]}
CATALOG = [
    ("SKU-SNEAK", "Кроссовки", 4990, "shoes"),
    ("SKU-JACKET", "Куртка", 8990, "outerwear"),
    ("SKU-CAP", "Кепка", 1290, "accessories"),
    ("SKU-SOCKS", "Носки", 390, "accessories"),
]


@dataclass
class Action:
    at: datetime
    event: dict[str, Any]


def shopper_script(index: int, persona: str, start: datetime, rng: random.Random) -> list[Action]:
    locale = ("ru", "ru", "uk", "en")[index % 4]
    zone = {"ru": "Europe/Moscow", "uk": "Europe/Kyiv", "en": "Europe/London"}[locale]
    anon, cust, cart_id = f"anon_{index}", f"cust_{index}", f"cart_{index}"
    arrive = start + timedelta(minutes=20 * index + rng.randint(0, 10))
    items: list[dict[str, Any]] = [
        {
            "sku": sku,
            "name": name,
            "price": price,
            "quantity": rng.randint(1, 2),
            "category": cat,
            "url": f"https://shop.example/p/{sku}",
            "image": f"https://shop.example/i/{sku}.jpg",
        }
        for sku, name, price, cat in rng.sample(CATALOG, rng.randint(1, 3))
    ]
    cart = {
        "id": cart_id,
        "currency": "RUB",
        "url": f"https://shop.example/cart/{cart_id}",
        "items": items,
    }
    first = rng.choice(NAMES[locale])
    contact = {
        "email": f"shopper{index}@example.com",
        "phone": f"+7999{index:07d}",
        "push_token": f"push-token-{index}",
        "locale": locale,
        "timezone": zone,
        "first_name": first,
    }
    base = {"anonymous_id": anon, "session_id": f"sess_{index}"}
    n = 0

    def ev(at: datetime, kind: str, **extra: Any) -> Action:
        nonlocal n
        n += 1
        return Action(
            at, {"id": f"evt_{index}_{n}", "type": kind, "at": at.isoformat(), **base, **extra}
        )

    script = [
        ev(arrive, "session.started"),
        ev(arrive + timedelta(minutes=1), "product.viewed", properties={"sku": items[0]["sku"]}),
        ev(
            arrive + timedelta(minutes=2),
            "customer.identified",
            customer_id=cust,
            contact=contact,
            consent={"push": True, "sms": True, "email": True},
        ),
        ev(arrive + timedelta(minutes=3), "cart.updated", customer_id=cust, cart=cart),
    ]
    order = {
        "id": f"order_{index}",
        "cart_id": cart_id,
        "currency": "RUB",
        "total": sum(i["price"] * i["quantity"] for i in items),
    }
    t = arrive + timedelta(minutes=3)
    if persona == "buyer":
        script.append(
            ev(t + timedelta(minutes=8), "checkout.started", customer_id=cust, cart={"id": cart_id})
        )
        script.append(
            ev(t + timedelta(minutes=12), "order.completed", customer_id=cust, order=order)
        )
    elif persona == "push_back":
        script.append(ev(t + timedelta(minutes=50), "session.started", customer_id=cust))
        script.append(
            ev(t + timedelta(minutes=55), "order.completed", customer_id=cust, order=order)
        )
    elif persona == "email_back":
        script.append(
            ev(
                t + timedelta(hours=24, minutes=40),
                "order.completed",
                customer_id=cust,
                order=order,
            )
        )
    elif persona == "emptier":
        script.append(
            ev(
                t + timedelta(minutes=45),
                "cart.updated",
                customer_id=cust,
                cart={**cart, "items": []},
            )
        )
    elif persona == "browser":
        for minutes in (15, 28, 41):
            script.append(ev(t + timedelta(minutes=minutes), "page.viewed", customer_id=cust))
    return script


def run_demo(
    *, config_path: str, speed: float, duration: timedelta, shoppers: int, seed: int, out: Any
) -> dict[str, Any]:
    rng = random.Random(seed)
    zone = ZoneInfo("Europe/Moscow")
    today = datetime.now(zone).date()
    start = datetime(today.year, today.month, today.day, 9, 30, tzinfo=zone).astimezone(
        ZoneInfo("UTC")
    )
    workdir = Path(tempfile.mkdtemp(prefix="cartflow-demo-"))
    api_key = "demo-key"
    settings = Settings(
        database_url=f"sqlite:///{workdir / 'demo.db'}",
        config_path=config_path,
        api_keys=(api_key,),
        dispatch_interval=0.05,
        timer_lease=60.0 * speed,
    )
    clock = AcceleratedClock(start, speed)
    console = ConsoleProvider(stream=out)
    sender = ChannelRouter({channel: console for channel in ("push", "sms", "email", "messenger")})
    runtime = Runtime(settings, embedded=True, clock=clock, sender=sender)
    runtime.start_worker(threads=2, poll_ms=10)  # at 2400x, 100 ms of polling is 4 shop minutes
    # lease and re-drive are engine-clock times: scale them so they mean the same in real time
    runtime.start_dispatcher(
        interval=0.05, lease=60.0 * speed, redrive_after=timedelta(seconds=30 * speed)
    )
    port = runtime.start_api("127.0.0.1", 0)
    print(
        f"cartflow demo: {shoppers} shoppers, {duration} of shop time at {speed:g}x "
        f"(API on http://127.0.0.1:{port}, database {workdir / 'demo.db'})\n",
        file=out,
        flush=True,
    )
    actions = sorted(
        (
            a
            for i in range(shoppers)
            for a in shopper_script(i, PERSONAS[i % len(PERSONAS)], start, rng)
        ),
        key=lambda a: a.at,
    )
    end = start + duration
    with httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=10,
    ) as client:
        clock.restart()  # shop time starts now, not before the set-up above
        index = 0
        while index < len(actions):
            _sleep_until(clock, actions[index].at)
            # everything due by now goes in one batch, as a shop backend would send it
            now = clock.now()
            batch = [actions[index].event]
            index += 1
            while index < len(actions) and actions[index].at <= now:
                batch.append(actions[index].event)
                index += 1
            response = client.post("/v1/events", json={"events": batch})
            response.raise_for_status()
        _sleep_until(clock, end)
    runtime.stop()
    summary = summarise(runtime)
    print_summary(summary, out)
    return summary


def _sleep_until(clock: AcceleratedClock, moment: datetime) -> None:
    while True:
        left = clock.real_seconds(moment - clock.now())
        if left <= 0:
            return
        time.sleep(min(left, 0.2))


def summarise(runtime: Runtime) -> dict[str, Any]:
    with runtime.db.reading() as session:
        carts = session.scalar(select(func.count()).select_from(Cart)) or 0
        abandoned = session.scalar(select(func.count()).select_from(Journey)) or 0
        holdout = (
            session.scalar(
                select(func.count()).select_from(Journey).where(Journey.group == "holdout")
            )
            or 0
        )
        per_channel = dict(
            session.execute(
                select(Delivery.channel, func.count())
                .where(Delivery.status.in_(("accepted", "delivered")))
                .group_by(Delivery.channel)
            ).all()
        )
        recovered = (
            session.scalar(
                select(func.count(func.distinct(Cart.id)))
                .select_from(Cart)
                .join(Delivery, Delivery.cart_id == Cart.id)
                .where(Cart.status == "ordered", Delivery.created_at < Cart.ordered_at)
            )
            or 0
        )
        # A send after the engine knew of the order breaks the promise; a send in the
        # moments before the order event arrived is the network's, not ours — count both.
        known_at: dict[str, Any] = {}
        for payload, applied_at in session.execute(
            select(RawEvent.payload, RawEvent.applied_at).where(RawEvent.type == "order.completed")
        ):
            cart_id = (payload.get("order") or {}).get("cart_id")
            if cart_id and applied_at:
                known_at[cart_id] = min(applied_at, known_at.get(cart_id, applied_at))
        sends = session.execute(
            select(Delivery.cart_id, Delivery.created_at, Cart.ordered_at)
            .join(Cart, Delivery.cart_id == Cart.id)
            .where(Cart.status == "ordered")
        ).all()
        after_purchase = sum(
            1 for cart_id, sent, _ in sends if cart_id in known_at and sent >= known_at[cart_id]
        )
        in_flight = (
            sum(1 for _, sent, ordered in sends if ordered and sent >= ordered) - after_purchase
        )
        ordered = (
            session.scalar(select(func.count()).select_from(Cart).where(Cart.status == "ordered"))
            or 0
        )
    return {
        "carts": carts,
        "abandoned": abandoned,
        "messages": per_channel,
        "ordered": ordered,
        "recovered": recovered,
        "sent_after_purchase": after_purchase,
        "holdout": holdout,
        "sent_before_order_arrived": in_flight,
    }


def print_summary(summary: dict[str, Any], out: Any) -> None:
    messages = summary["messages"]
    lines = [
        "",
        "── summary " + "─" * 40,
        f"carts               {summary['carts']}",
        f"abandoned           {summary['abandoned']}"
        + (
            f" ({summary['holdout']} in the control group: no messages)"
            if summary["holdout"]
            else ""
        ),
        "messages            "
        + ", ".join(f"{ch} {messages.get(ch, 0)}" for ch in ("push", "sms", "email")),
        f"orders              {summary['ordered']}",
        f"recovered           {summary['recovered']} (paid after a reminder)",
        f"sent after purchase {summary['sent_after_purchase']}",
    ]
    if summary.get("sent_before_order_arrived"):
        lines.append(
            f"  (+{summary['sent_before_order_arrived']} sent while the order event was still on "
            "its way: the clock runs fast; lower --speed)"
        )
    print("\n".join(lines), file=out, flush=True)
