"""The demo's simulated shop: its shoppers and the events each one's visit sends.

Shoppers (each with a persona):

* ``buyer``     — adds to cart and pays within minutes: never reminded;
* ``leaver``    — adds to cart and never comes back: gets push, SMS and email;
* ``push_back`` — comes back after the push and buys: recovered, no SMS or email after;
* ``email_back``— comes back the next day after the email and buys;
* ``emptier``   — empties the cart after the push: the journey stops;
* ``browser``   — keeps browsing past the idle time before leaving: abandonment waits;
* ``window_shopper`` — views three or four products, the last nearly sold out, and carts
  nothing: browsing counts as abandoned an hour later and the browse journey sends one
  "still thinking about…" push (with "only 2 left").

Every shopper views a product and signs in (contact and consent for push, SMS and email)
before anything else, so every persona can be messaged. Every shopper in one demo has a
first name of their own, so a message on screen is easy to tie to the shopper it went to.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

#: Who the shoppers are, in order of arrival (repeated for more shoppers). The default
#: demo has one shopper per entry.
PERSONAS = (
    "leaver",
    "push_back",
    "buyer",
    "email_back",
    "emptier",
    "browser",
    "leaver",
    "push_back",
    "window_shopper",
)
#: Personas who never put anything in a cart: they have no shop cart, only browsing.
NO_CART = frozenset({"window_shopper"})
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
#: How many are left, for the products the shop tells about (``product.viewed`` sends it):
#: the browse push's honest "only 2 left" reads it.
STOCK = {"SKU-JACKET": 2}


@dataclass(frozen=True)
class Shopper:
    """One simulated shopper: who they are, where they live, what they will do."""

    index: int
    persona: str
    first_name: str
    locale: str
    zone: str

    @property
    def customer_id(self) -> str:
        return f"cust_{self.index}"

    @property
    def cart_id(self) -> str | None:
        """Their shop cart's id; ``None`` for a persona who never carts anything."""
        return None if self.persona in NO_CART else f"cart_{self.index}"


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


def _product(sku: str, name: str, price: int, category: str) -> dict[str, Any]:
    """A catalog product as the shop describes it, in a cart line or a ``product.viewed``."""
    return {
        "sku": sku,
        "name": name,
        "price": price,
        "category": category,
        "url": f"https://shop.example/p/{sku}",
        "image": f"https://shop.example/i/{sku}.jpg",
    }


def _viewed(item: dict[str, Any]) -> dict[str, Any]:
    """The ``product`` of a ``product.viewed`` event for a product (or a cart line)."""
    keep = ("sku", "name", "price", "category", "url", "image")
    product = {**{k: item[k] for k in keep}, "currency": "RUB"}
    if item["sku"] in STOCK:
        product["stock"] = STOCK[item["sku"]]
    return product


class _Visit:
    """One shopper's events: numbered ids, the visit's anonymous and session ids, and
    the opening every persona shares (arrive, look at a product, sign in)."""

    def __init__(self, shopper: Shopper, arrive: datetime) -> None:
        self.shopper, self.arrive = shopper, arrive
        self.base = {"anonymous_id": f"anon_{shopper.index}", "session_id": f"sess_{shopper.index}"}
        self.count = 0

    def event(self, at: datetime, kind: str, **extra: Any) -> Action:
        self.count += 1
        number = f"evt_{self.shopper.index}_{self.count}"
        return Action(at, {"id": number, "type": kind, "at": at.isoformat(), **self.base, **extra})

    def opening(self, first_look: dict[str, Any]) -> list[Action]:
        """Arrive, view ``first_look``, sign in with contact and consent: two minutes."""
        shopper, index = self.shopper, self.shopper.index
        contact = {
            "email": f"shopper{index}@example.com",
            "phone": f"+7999{index:07d}",
            "push_token": f"push-token-{index}",
            "locale": shopper.locale,
            "timezone": shopper.zone,
            "first_name": shopper.first_name,
        }
        return [
            self.event(self.arrive, "session.started"),
            self.event(
                self.arrive + timedelta(minutes=1), "product.viewed", product=_viewed(first_look)
            ),
            self.event(
                self.arrive + timedelta(minutes=2),
                "customer.identified",
                customer_id=shopper.customer_id,
                contact=contact,
                consent={"push": True, "sms": True, "email": True},
            ),
        ]


def shopper_script(shopper: Shopper, start: datetime, rng: random.Random) -> list[Action]:
    """The events ``shopper``'s visit sends, from ``start`` plus 20 minutes per shopper."""
    visit = _Visit(shopper, start + timedelta(minutes=20 * shopper.index + rng.randint(0, 10)))
    if shopper.cart_id is None:
        return _window_shopping(visit, rng)
    return _cart_visit(visit, shopper.cart_id, rng)


def _window_shopping(visit: _Visit, rng: random.Random) -> list[Action]:
    """Three or four products viewed a couple of minutes apart, the last one nearly sold
    out (the one the browse push names: it names the newest viewed); never a cart."""
    scarce = [p for p in CATALOG if p[0] in STOCK][:1]
    others = rng.sample([p for p in CATALOG if p[0] not in STOCK], rng.randint(2, 3))
    looks = [_product(*p) for p in others + scarce]
    script = visit.opening(looks[0])
    signed_in = visit.arrive + timedelta(minutes=2)
    for nth, product in enumerate(looks[1:], start=1):
        script.append(
            visit.event(
                signed_in + timedelta(minutes=2 * nth),
                "product.viewed",
                customer_id=visit.shopper.customer_id,
                product=_viewed(product),
            )
        )
    return script


def _cart_visit(visit: _Visit, cart_id: str, rng: random.Random) -> list[Action]:
    """A cart of one to three products, then what the persona does with it."""
    persona, index, cust = visit.shopper.persona, visit.shopper.index, visit.shopper.customer_id
    items: list[dict[str, Any]] = [
        {**_product(sku, name, price, cat), "quantity": rng.randint(1, 2)}
        for sku, name, price, cat in rng.sample(CATALOG, rng.randint(1, 3))
    ]
    cart = {
        "id": cart_id,
        "currency": "RUB",
        "url": f"https://shop.example/cart/{cart_id}",
        "items": items,
    }
    ev = visit.event
    script = visit.opening(items[0])
    t = visit.arrive + timedelta(minutes=3)
    script.append(ev(t, "cart.updated", customer_id=cust, cart=cart))
    order = {
        "id": f"order_{index}",
        "cart_id": cart_id,
        "currency": "RUB",
        "total": sum(i["price"] * i["quantity"] for i in items),
    }
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
