"""`cartflow demo` end to end, fast: the real runtime (HTTP API, StubBroker workers,
dispatcher) fed by the shop simulator on an accelerated clock, one shopper per persona as
by default; and, on a simulated clock, how the demo explains a shopper who got nothing
and how a browse journey went."""

from __future__ import annotations

import io
import random
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cartflow.engine.browse_abandonment import browse_cart_id
from cartflow.engine.journeys import in_holdout
from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Database
from cartflow.engine.store.models import Cart, Consent, Delivery, Identity
from cartflow.providers.console import ConsoleProvider
from cartflow.workers.cli import build_parser
from cartflow.workers.demo import (
    DEFAULT_CONFIG,
    browse_story,
    hours,
    run_demo,
    shopper_label,
    why_nothing,
)
from cartflow.workers.shop import CATALOG, PERSONAS, STOCK, make_shoppers, shopper_script

from ..factories import CONSENT, CONTACT, T0, event, order_completed, page_viewed, shopper

ROOT = Path(__file__).resolve().parents[3]
#: As many shoppers as the default demo: one per persona.
SHOPPERS = len(PERSONAS)
#: Who the demo's shoppers are (the same list ``run_demo`` makes).
CAST = make_shoppers(SHOPPERS)
#: Personas whose script ends in an order within the demo's 27 hours.
BUYING = ("buyer", "push_back", "email_back")
#: A message's heading line: channel, the shopper's local time, cart (a shop cart or a
#: browse cart), scenario/step.
HEADING = re.compile(
    r"^\[(?P<channel>PUSH |SMS  |EMAIL)\] (?P<day>Mon|Tue|Wed|Thu|Fri|Sat|Sun) "
    r"(?P<hour>\d\d):(?P<minute>\d\d) (?P<zone>MSK|EET|EEST|GMT|BST) · "
    r"cart (?P<cart>cart_\d+|browse:\w+) · (?P<scenario>\w+)/"
)


@pytest.fixture(scope="module")
def demo() -> tuple[dict[str, Any], str]:
    out = io.StringIO()
    summary = run_demo(
        config_path=str(ROOT / "scenarios.yaml"),
        speed=8000,
        duration=timedelta(hours=27),
        shoppers=SHOPPERS,
        seed=7,
        out=out,
    )
    return summary, out.getvalue()


def test_demo_reminds_abandoned_carts_on_every_channel_and_never_after_purchase(
    demo: tuple[dict[str, Any], str],
) -> None:
    summary, printed = demo
    messages = summary["messages"]
    assert isinstance(messages, dict)
    # every channel carried at least one reminder, printed as it went
    assert all(messages.get(channel, 0) >= 1 for channel in ("push", "sms", "email"))
    for tag in ("[PUSH ]", "[SMS  ]", "[EMAIL]"):
        assert tag in printed
    # every shopper but a window shopper left a shop cart, and some were abandoned (at
    # this speed even the quick buyer may look idle)
    assert summary["carts"] == sum(1 for s in CAST if s.cart_id is not None) < SHOPPERS
    assert summary["abandoned"] >= 1
    assert summary["ordered"] == sum(1 for s in CAST if s.persona in BUYING)
    # nothing once the engine knew of the order
    assert summary["sent_after_purchase"] == 0
    assert "sent after purchase 0" in printed
    # no contact data on screen
    assert "@example.com" not in printed.replace("s***@example.com", "")
    assert "+7999000" not in printed


def test_without_config_the_demo_runs_the_example_shipped_in_the_package() -> None:
    assert build_parser().parse_args(["demo"]).config is None
    assert DEFAULT_CONFIG.parent == ROOT / "workers" / "defaults"
    # in a checkout the package's copy is the example at the root, links and all
    for name in ("scenarios.yaml", "scenarios", "templates"):
        assert (DEFAULT_CONFIG.parent / name).resolve() == ROOT / name


def test_the_header_gives_the_length_as_typed(demo: tuple[dict[str, Any], str]) -> None:
    _, printed = demo
    assert printed.startswith(f"cartflow demo: {SHOPPERS} shoppers, 27h of shop time at 8000x")
    assert "day," not in printed.splitlines()[0]


@pytest.mark.parametrize(
    ("duration", "shown"),
    [
        (timedelta(hours=27), "27h"),
        (timedelta(hours=1), "1h"),
        (timedelta(days=2), "2d"),
        (timedelta(minutes=90), "1h30m"),
    ],
)
def test_demo_lengths_read_as_typed(duration: timedelta, shown: str) -> None:
    assert hours(duration) == shown


def test_every_message_shows_the_shoppers_local_time_and_night_is_kept(
    demo: tuple[dict[str, Any], str],
) -> None:
    summary, printed = demo
    zones = {}
    for person, cast in zip(summary["shoppers"], CAST, strict=True):
        zones.update({cart: cast.zone for cart in (person["cart"], person["browse"]) if cart})
    abbreviations = {"Europe/Moscow": {"MSK"}, "Europe/Kyiv": {"EET", "EEST"}}
    headings = [line for line in printed.splitlines() if line.startswith("[")]
    assert headings
    for line in headings:
        match = HEADING.match(line)
        assert match, line
        zone = zones[match["cart"]]
        assert match["zone"] in abbreviations.get(zone, {"GMT", "BST"}), line
        if match["channel"] != "EMAIL":  # push and SMS wait for the shopper's morning
            assert 9 <= int(match["hour"]) < 21, line
        if "abandoned_cart/sms" in line:  # and the SMS for its 10:00-20:00 window
            assert 10 <= int(match["hour"]) < 20, line


def test_email_bodies_are_indented_as_one_block(demo: tuple[dict[str, Any], str]) -> None:
    _, printed = demo
    blocks = printed.split("[EMAIL]")[1:]
    assert blocks
    for block in blocks:
        lines = block.split("\n── summary")[0].split("\n[")[0].splitlines()
        subject, body = lines[1], lines[2:]
        assert subject.startswith("        Subject: ")
        assert len(body) >= 3
        assert all(line.startswith("        │") for line in body), block


def test_no_two_shoppers_share_a_first_name(demo: tuple[dict[str, Any], str]) -> None:
    summary, _ = demo
    people = summary["shoppers"]
    assert isinstance(people, list) and len(people) == SHOPPERS
    assert len({p["name"] for p in people}) == SHOPPERS
    many = make_shoppers(500)
    assert len({s.first_name for s in many}) == 500


def test_each_shopper_who_got_nothing_has_a_line_saying_why(
    demo: tuple[dict[str, Any], str],
) -> None:
    summary, printed = demo
    people = summary["shoppers"]
    assert isinstance(people, list)
    nothing = [p for p in people if not p["sent"]]
    assert nothing  # the quick buyer, at least
    tail = printed.split("got nothing\n")[1].splitlines()
    assert len(tail) == len(nothing)
    for person, line in zip(nothing, tail, strict=True):
        assert line.startswith(f"  {shopper_label(person)}")
        assert person["why"] and line.rstrip().endswith(person["why"])
    for person in nothing:
        if person["persona"] == "buyer":
            assert "bought" in person["why"]
    in_control = sum("control group" in p["why"] for p in nothing)
    assert in_control == summary["holdout"]
    # a shopper who was reminded has no such line
    assert all(p["name"] not in "\n".join(tail) for p in people if p["sent"])


def test_the_window_shopper_gets_a_browse_push_and_has_no_cart(
    demo: tuple[dict[str, Any], str],
) -> None:
    summary, printed = demo
    window = [
        (person, cast)
        for person, cast in zip(summary["shoppers"], CAST, strict=True)
        if cast.persona == "window_shopper"
    ]
    assert len(window) == PERSONAS.count("window_shopper") >= 1
    # the browse journeys are theirs: every other shopper carted within minutes of looking
    assert summary["browse_journeys"] == len(window)
    scarce_sku, scarce = next((sku, name) for sku, name, _, _ in CATALOG if sku in STOCK)
    db = Database(summary["database"], read_only=True)
    try:
        with db.reading() as session:
            for person, cast in window:
                profile_id = session.scalar(
                    select(Identity.profile_id).where(
                        Identity.kind == "customer_id", Identity.value == cast.customer_id
                    )
                )
                assert profile_id is not None
                browse = browse_cart_id(profile_id)
                assert person["cart"] is None and person["browse"] == browse
                # no shop cart of theirs ever reached cartflow: only the browse cart
                kinds = session.scalars(select(Cart.kind).where(Cart.profile_id == profile_id))
                assert list(kinds) == ["browse"]
                sent = list(
                    session.scalars(
                        select(Delivery).where(
                            Delivery.profile_id == profile_id,
                            Delivery.status.in_(("accepted", "delivered")),
                        )
                    )
                )
                assert sent and {d.scenario for d in sent} == {"browse_abandoned"}
                assert {d.cart_id for d in sent} == {browse}
                assert person["sent"] == len(sent) and person["scenarios"] == ["browse_abandoned"]
                # only on channels they agreed to
                granted = set(
                    session.scalars(
                        select(Consent.channel).where(
                            Consent.profile_id == profile_id, Consent.granted.is_(True)
                        )
                    )
                )
                assert {d.channel for d in sent} <= granted
                # on screen: the push names them and the product nearly sold out, stock and all
                lines = printed.splitlines()
                heading = f"cart {browse} · browse_abandoned/"
                at = next(i for i, line in enumerate(lines) if heading in line)
                push = lines[at + 1]
                assert cast.first_name in push and scarce in push
                assert f" {STOCK[scarce_sku]} " in push
                # and the summary says how their browse journey went, not that they got nothing
                assert person["why"] is None and person["browse_story"].startswith("push sent")
                assert f"  {shopper_label(person)}" in printed.split("browse journeys")[1]
                got_nothing = printed.partition("\ngot nothing\n")[2]
                assert shopper_label(person) not in got_nothing
    finally:
        db.dispose()


@pytest.mark.parametrize("seed", range(5))
def test_a_window_shopper_views_three_or_four_products_and_never_carts(seed: int) -> None:
    rng = random.Random(seed)
    for cast in make_shoppers(SHOPPERS * 2):
        script = [a.event for a in shopper_script(cast, T0, rng)]
        types = [e["type"] for e in script]
        if cast.persona != "window_shopper":
            assert cast.cart_id is not None and "cart.updated" in types
            continue
        assert cast.cart_id is None
        assert "cart.updated" not in types and all("cart" not in e for e in script)
        assert "customer.identified" in types  # contact and consent: a message can go out
        products = [e["product"] for e in script if e["type"] == "product.viewed"]
        assert 3 <= len(products) == len({p["sku"] for p in products}) <= 4
        for product in products:
            assert {"sku", "name", "price", "url", "image", "category", "currency"} <= set(product)
        # the newest viewed (the one the browse push names) tells its stock
        assert products[-1].get("stock") == STOCK[products[-1]["sku"]]


# -- why_nothing, on a simulated clock: the reason comes from what the engine recorded --------
def _why(db: Database, cart_id: str = "cart_1") -> str:
    with db.reading() as session:
        return why_nothing(session, cart_id, "Europe/Moscow")


def test_a_shopper_who_paid_before_abandoning_bought_first(sim: Simulation, db: Database) -> None:
    sim.feed([shopper(T0), order_completed(T0 + timedelta(minutes=10))])
    sim.run_until(T0 + timedelta(hours=2))
    assert _why(db) == "bought before the cart counted as abandoned"


def test_a_shopper_still_on_the_site_is_still_browsing(sim: Simulation, db: Database) -> None:
    # Given a shopper who keeps viewing pages every 20 minutes
    sim.feed([shopper(T0)] + [page_viewed(T0 + timedelta(minutes=m)) for m in range(20, 200, 20)])
    # When the day is seen while they browse
    sim.run_until(T0 + timedelta(minutes=190))
    # Then
    assert _why(db).startswith("still browsing")


def test_a_shopper_in_the_control_group_is_told_so(sim: Simulation, db: Database) -> None:
    # Given a high-value cart from a customer the 10% control group takes
    customer = next(
        c for c in (f"cust_{i}" for i in range(1000)) if in_holdout(c, "high_value_cart", 10)
    )
    cart = shopper(T0, customer=customer)
    assert cart.cart is not None
    cart.cart.items[0].price = cart.cart.items[0].price * 10  # 99 800 RUB
    sim.feed([cart])
    sim.run_until(T0 + timedelta(hours=30))
    assert _why(db).startswith("control group of high_value_cart")


def test_a_capped_shopper_is_told_which_cap(sim: Simulation, db: Database) -> None:
    # Given three reminders for a first cart (push, SMS, email: the 3-a-week cap)
    sim.feed([shopper(T0)])
    sim.run_until(T0 + timedelta(hours=26))
    # When a second, high-value cart is left the next day (a scenario of its own)
    second = shopper(T0 + timedelta(hours=26), cart_id="cart_2")
    assert second.cart is not None
    second.cart.items[0].price = second.cart.items[0].price * 10
    sim.feed([second])
    sim.run_until(T0 + timedelta(hours=30))
    # Then the second cart got nothing, and the cap is named
    assert "frequency cap" in _why(db, "cart_2")


def _browse_cart(db: Database) -> str:
    with db.reading() as session:
        profile_id = session.scalar(
            select(Identity.profile_id).where(
                Identity.kind == "customer_id", Identity.value == "cust_1"
            )
        )
    assert profile_id is not None
    return browse_cart_id(profile_id)


def _viewed(at: Any) -> Any:
    product = {"sku": "SKU-1", "name": "Кроссовки", "price": 4990, "currency": "RUB"}
    return event("product.viewed", at, product=product, contact=CONTACT, consent=CONSENT)


def test_a_shopper_who_only_looked_a_moment_ago_is_still_looking(
    sim: Simulation, db: Database
) -> None:
    sim.feed([_viewed(T0)])
    sim.run_until(T0 + timedelta(minutes=30))
    browse = _browse_cart(db)
    assert _why(db, browse) == "still looking: browsing has not counted as abandoned yet"
    with db.reading() as session:
        assert browse_story(session, browse, [], "Europe/Moscow") is None  # no journey yet


def test_a_browse_journey_whose_push_waited_and_a_cart_came_is_superseded(
    sim: Simulation, db: Database
) -> None:
    # Given a look at 08:00 Moscow time: browsing counts as abandoned at 09:00, and the
    # browse push waits for its 10:00 window
    morning = T0 + timedelta(hours=22)  # T0 is 10:00 in Moscow
    sim.feed([_viewed(morning)])
    sim.run_until(morning + timedelta(hours=1, minutes=15))
    # When the shopper carts something before then
    sim.feed([shopper(morning + timedelta(hours=1, minutes=20))])
    sim.run_until(morning + timedelta(hours=1, minutes=40))
    # Then the browse journey gave way to the cart, with no message
    browse = _browse_cart(db)
    with db.reading() as session:
        assert browse_story(session, browse, [], "Europe/Moscow") == (
            "superseded by a cart, no message"
        )
    assert _why(db, browse).startswith("carted something before the first reminder")


def test_the_console_indents_an_email_and_stamps_each_message() -> None:
    from cartflow.engine.sending import Message

    out = io.StringIO()
    console = ConsoleProvider(stream=out, stamp=lambda message: "Tue 09:00 MSK")
    console.send(
        Message(
            delivery_id="d1",
            idempotency_key="j:email",
            channel="email",
            address="anna@example.com",
            parts={"subject": "Hi", "text": "Hello Anna,\n\nYour cart.\n"},
            locale="en",
            metadata={"cart_id": "cart_1", "scenario": "s", "step": "email"},
        )
    )
    assert out.getvalue().splitlines() == [
        "[EMAIL] Tue 09:00 MSK · cart cart_1 · s/email → a***@example.com",
        "        Subject: Hi",
        "        │ Hello Anna,",
        "        │",
        "        │ Your cart.",
    ]
