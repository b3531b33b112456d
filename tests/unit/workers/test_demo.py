"""`cartflow demo` end to end, fast: the real runtime (HTTP API, StubBroker workers,
dispatcher) fed by the shop simulator on an accelerated clock; and, on a simulated clock,
how the demo explains a shopper who got nothing."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cartflow.engine.journeys import in_holdout
from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Database
from cartflow.providers.console import ConsoleProvider
from cartflow.workers.cli import build_parser
from cartflow.workers.demo import DEFAULT_CONFIG, hours, run_demo, why_nothing
from cartflow.workers.shop import make_shoppers

from ..factories import T0, order_completed, page_viewed, shopper

ROOT = Path(__file__).resolve().parents[3]
#: A message's heading line: channel, the shopper's local time, cart, scenario/step.
HEADING = re.compile(
    r"^\[(?P<channel>PUSH |SMS  |EMAIL)\] (?P<day>Mon|Tue|Wed|Thu|Fri|Sat|Sun) "
    r"(?P<hour>\d\d):(?P<minute>\d\d) (?P<zone>MSK|EET|EEST|GMT|BST) · cart (?P<cart>cart_\d+) · "
)


@pytest.fixture(scope="module")
def demo() -> tuple[dict[str, Any], str]:
    out = io.StringIO()
    summary = run_demo(
        config_path=str(ROOT / "scenarios.yaml"),
        speed=8000,
        duration=timedelta(hours=27),
        shoppers=8,
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
    # carts were abandoned (at this speed even the quick buyer may look idle)
    assert summary["carts"] == 8 and summary["abandoned"] >= 1
    assert summary["ordered"] == 4
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
    assert printed.startswith("cartflow demo: 8 shoppers, 27h of shop time at 8000x")
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
    _, printed = demo
    zones = {s.cart_id: s.zone for s in make_shoppers(8)}
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
    assert isinstance(people, list) and len(people) == 8
    assert len({p["name"] for p in people}) == 8
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
        assert line.startswith(f"  {person['name']} ({person['cart']})")
        assert person["why"] and line.rstrip().endswith(person["why"])
    for person in nothing:
        if person["persona"] == "buyer":
            assert "bought" in person["why"]
    in_control = sum("control group" in p["why"] for p in nothing)
    assert in_control == summary["holdout"]
    # a shopper who was reminded has no such line
    assert all(p["name"] not in "\n".join(tail) for p in people if p["sent"])


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
