"""The demo's simulated shop: its shoppers and the events each one's visit sends.

Shoppers (each with a persona):

* ``buyer``     — adds to cart and pays within minutes: never reminded;
* ``leaver``    — adds to cart and never comes back: gets push, SMS and email;
* ``push_back`` — comes back after the push and buys: recovered, no SMS or email after;
* ``email_back``— comes back the next day after the email and buys;
* ``emptier``   — empties the cart after the push: the journey stops;
* ``browser``   — keeps browsing past the idle time before leaving: abandonment waits.

Every shopper in one demo has a first name of their own, so a message on screen is easy
to tie to the shopper it went to.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

#: Who the shoppers are, in order of arrival (repeated for more shoppers).
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
#: Shoppers' locales in turn, and each locale's time zone.
LOCALES = ("ru", "ru", "uk", "en")
ZONES = {"ru": "Europe/Moscow", "uk": "Europe/Kyiv", "en": "Europe/London"}
#: First names per locale, handed out in order; past the end they come back with an
#: initial (``Анна Б.``), so no two shoppers in one demo share a name.
NAMES = {
    "ru": ("Анна", "Иван", "Мария", "Олег", "Ольга", "Дмитрий", "Елена", "Сергей"),
    "uk": ("Оксана", "Тарас", "Богдана", "Андрій"),
    "en": ("Emma", "Jack", "Olivia", "Harry"),
}
INITIALS = {"ru": "АБВГДЕЖЗИКЛМНОПРСТУФ", "uk": "АБВГДЕЖЗІКЛМНОПРСТУФ", "en": "ABCDEFGHIJKLMNOPRST"}
CATALOG = [
    ("SKU-SNEAK", "Кроссовки", 4990, "shoes"),
    ("SKU-JACKET", "Куртка", 8990, "outerwear"),
    ("SKU-CAP", "Кепка", 1290, "accessories"),
    ("SKU-SOCKS", "Носки", 390, "accessories"),
]


@dataclass(frozen=True)
class Shopper:
    """One simulated shopper: who they are, where they live, what they will do."""

    index: int
    persona: str
    first_name: str
    locale: str
    zone: str

    @property
    def cart_id(self) -> str:
        return f"cart_{self.index}"


@dataclass
class Action:
    at: datetime
    event: dict[str, Any]


def make_shoppers(count: int) -> list[Shopper]:
    """``count`` shoppers, personas in :data:`PERSONAS` order, every first name different."""
    handed: Counter[str] = Counter()
    shoppers = []
    for index in range(count):
        locale = LOCALES[index % len(LOCALES)]
        shoppers.append(
            Shopper(
                index=index,
                persona=PERSONAS[index % len(PERSONAS)],
                first_name=_name(locale, handed[locale]),
                locale=locale,
                zone=ZONES[locale],
            )
        )
        handed[locale] += 1
    return shoppers


def _name(locale: str, nth: int) -> str:
    """The ``nth`` (from 0) first name handed out in ``locale``: the plain names first,
    then each again with an initial, then with an initial and a number."""
    names, initials = NAMES[locale], INITIALS[locale]
    name = names[nth % len(names)]
    lap = nth // len(names)
    if lap == 0:
        return name
    initial = initials[(lap - 1) % len(initials)]
    more = (lap - 1) // len(initials)
    return f"{name} {initial}." + (f" {more + 1}" if more else "")


def _viewed(item: dict[str, Any]) -> dict[str, Any]:
    """The ``product`` of a ``product.viewed`` event for a cart line."""
    keep = ("sku", "name", "price", "category", "url", "image")
    return {**{k: item[k] for k in keep}, "currency": "RUB"}


def shopper_script(shopper: Shopper, start: datetime, rng: random.Random) -> list[Action]:
    """The events ``shopper``'s visit sends, from ``start`` plus 20 minutes per shopper."""
    index, persona = shopper.index, shopper.persona
    anon, cust, cart_id = f"anon_{index}", f"cust_{index}", shopper.cart_id
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
    contact = {
        "email": f"shopper{index}@example.com",
        "phone": f"+7999{index:07d}",
        "push_token": f"push-token-{index}",
        "locale": shopper.locale,
        "timezone": shopper.zone,
        "first_name": shopper.first_name,
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
        ev(arrive + timedelta(minutes=1), "product.viewed", product=_viewed(items[0])),
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
