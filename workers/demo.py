"""``cartflow demo``: the whole product in one process on an accelerated clock, fed by a
small shop simulator (:mod:`cartflow.workers.shop`) that talks to the real HTTP API.

Each message is printed as its channel carries it, stamped with the shopper's own local
time, so one sees a push or SMS wait for its send window; the summary has a line for every
shopper who had a browse journey (how it went) and for every shopper who got nothing, and
why, as the decision log recorded it.
"""

from __future__ import annotations

import random
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cartflow.engine.browse_abandonment import BROWSE, browse_cart_id
from cartflow.engine.channels import CHANNELS
from cartflow.engine.clock import AcceleratedClock
from cartflow.engine.outcomes import SUPERSEDED
from cartflow.engine.sending import Message
from cartflow.engine.store.models import (
    Cart,
    Decision,
    Delivery,
    Identity,
    Journey,
    Profile,
    RawEvent,
)
from cartflow.engine.timing import DEFAULT_QUIET_HOURS, format_duration
from cartflow.providers.console import ConsoleProvider
from cartflow.providers.registry import ChannelRouter
from cartflow.workers.runtime import Runtime
from cartflow.workers.settings import Settings
from cartflow.workers.shop import Shopper, make_shoppers, shopper_script

#: The configuration the demo runs when given none: the example shipped in the package
#: (``workers/defaults/``: links to ``scenarios.yaml``, ``scenarios/`` and ``templates/``
#: at the repository root, copied as files into a wheel).
DEFAULT_CONFIG = Path(__file__).resolve().parent / "defaults" / "scenarios.yaml"

#: Deliveries that reached the shopper's channel.
SENT = ("accepted", "delivered")


def shop_time(moment: datetime, zone: str) -> str:
    """``moment`` as the shopper's wall clock shows it: ``Tue 09:00 GMT``."""
    return moment.astimezone(ZoneInfo(zone)).strftime("%a %H:%M %Z")


def hours(duration: timedelta) -> str:
    """A demo length as one would type it: ``27h``, ``90m``, ``2d`` (``format_duration``
    unless it is whole hours that are not whole days)."""
    seconds = int(duration.total_seconds())
    if seconds and seconds % 3600 == 0 and seconds % 86400:
        return f"{seconds // 3600}h"
    return format_duration(duration)


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
    cast = make_shoppers(shoppers)
    zones = {shopper.cart_id: shopper.zone for shopper in cast if shopper.cart_id}

    def local_time(message: Message) -> str:
        cart_id = str(message.metadata.get("cart_id"))
        if cart_id not in zones:  # a browse cart: its id is the profile's, known only now
            with runtime.db.reading() as session:
                zones[cart_id] = cart_zone(session, cart_id) or "UTC"
        return shop_time(clock.now(), zones[cart_id])

    console = ConsoleProvider(stream=out, stamp=local_time)
    sender = ChannelRouter({channel: console for channel in CHANNELS})
    runtime = Runtime(settings, embedded=True, clock=clock, sender=sender)
    runtime.start_worker(threads=2, poll_ms=10)  # at 2400x, 100 ms of polling is 4 shop minutes
    # lease and re-drive are engine-clock times: scale them so they mean the same in real time
    runtime.start_dispatcher(
        interval=0.05, lease=60.0 * speed, redrive_after=timedelta(seconds=30 * speed)
    )
    port = runtime.start_api("127.0.0.1", 0)
    print(
        f"cartflow demo: {shoppers} shoppers, {hours(duration)} of shop time at {speed:g}x "
        f"(API on http://127.0.0.1:{port}, database {workdir / 'demo.db'})\n"
        f"Times are each shopper's own: no push or SMS at night there ({DEFAULT_QUIET_HOURS}).\n",
        file=out,
        flush=True,
    )
    actions = sorted(
        (a for shopper in cast for a in shopper_script(shopper, start, rng)),
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
    summary = summarise(runtime, cast)
    summary["database"] = settings.database_url  # to look further: the run's every row
    print_summary(summary, out)
    return summary


def cart_zone(session: Session, cart_id: str) -> str | None:
    """The time zone of the shopper whose cart (shop or browse) is ``cart_id``."""
    cart = session.get(Cart, cart_id)
    profile = session.get(Profile, cart.profile_id) if cart is not None else None
    return profile.timezone if profile is not None else None


def _sleep_until(clock: AcceleratedClock, moment: datetime) -> None:
    while True:
        left = clock.real_seconds(moment - clock.now())
        if left <= 0:
            return
        time.sleep(min(left, 0.2))


def summarise(runtime: Runtime, shoppers: list[Shopper] | None = None) -> dict[str, Any]:
    """The run in numbers, plus ``shoppers``: one dict per shopper (``name``, ``persona``,
    ``cart`` (``None`` for one who carted nothing), ``browse`` (their browse cart, if they
    had one), ``sent`` and the ``scenarios`` it came from, ``browse_story`` (how their
    browse journey went, if one started) and, for those who got nothing, ``why``)."""
    with runtime.db.reading() as session:
        shop_cart = Cart.kind == "cart"  # browse pseudo-carts are counted apart
        carts = session.scalar(select(func.count()).select_from(Cart).where(shop_cart)) or 0
        journeys = select(func.count()).select_from(Journey).join(Cart, Journey.cart_id == Cart.id)
        abandoned = session.scalar(journeys.where(shop_cart)) or 0
        browsed = session.scalar(journeys.where(Cart.kind == BROWSE)) or 0
        browse_superseded = (
            session.scalar(journeys.where(Cart.kind == BROWSE, Journey.exit_reason == SUPERSEDED))
            or 0
        )
        holdout = (
            session.scalar(
                select(func.count()).select_from(Journey).where(Journey.group == "holdout")
            )
            or 0
        )
        per_channel = dict(
            session.execute(
                select(Delivery.channel, func.count())
                .where(Delivery.status.in_(SENT))
                .group_by(Delivery.channel)
            ).all()
        )
        recovered = (
            session.scalar(
                select(func.count(func.distinct(Cart.id)))
                .select_from(Cart)
                .join(Delivery, Delivery.cart_id == Cart.id)
                .where(shop_cart, Cart.status == "ordered", Delivery.created_at < Cart.ordered_at)
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
            session.scalar(
                select(func.count()).select_from(Cart).where(shop_cart, Cart.status == "ordered")
            )
            or 0
        )
        people = [_shopper_outcome(session, shopper) for shopper in shoppers or ()]
    return {
        "carts": carts,
        "abandoned": abandoned,
        "browse_journeys": browsed,
        "browse_superseded": browse_superseded,
        "messages": per_channel,
        "ordered": ordered,
        "recovered": recovered,
        "sent_after_purchase": after_purchase,
        "holdout": holdout,
        "sent_before_order_arrived": in_flight,
        "shoppers": people,
    }


def _shopper_outcome(session: Session, shopper: Shopper) -> dict[str, Any]:
    """What one shopper got, read by their customer id: every message of their profile
    counts, a shop cart's or a browse cart's (a window shopper has only the latter)."""
    profile_id = session.scalar(
        select(Identity.profile_id).where(
            Identity.kind == "customer_id", Identity.value == shopper.customer_id
        )
    )
    browse = session.get(Cart, browse_cart_id(profile_id)) if profile_id else None
    sent = list(
        session.execute(
            select(Delivery.cart_id, Delivery.scenario, Delivery.channel).where(
                Delivery.profile_id == profile_id, Delivery.status.in_(SENT)
            )
        ).all()
        if profile_id
        else ()
    )
    if sent:
        why = None
    elif shopper.cart_id is not None:
        why = why_nothing(session, shopper.cart_id, shopper.zone)
    elif browse is not None:
        why = why_nothing(session, browse.id, shopper.zone)
    else:
        why = "no product view reached cartflow"
    return {
        "name": shopper.first_name,
        "cart": shopper.cart_id,
        "browse": browse.id if browse is not None else None,
        "persona": shopper.persona,
        "sent": len(sent),
        "scenarios": sorted({scenario for _, scenario, _ in sent}),
        "browse_story": (
            browse_story(
                session,
                browse.id,
                [channel for cart, _, channel in sent if cart == browse.id],
                shopper.zone,
            )
            if browse is not None
            else None
        ),
        "why": why,
    }


def browse_story(session: Session, browse_id: str, channels: list[str], zone: str) -> str | None:
    """How the browse journey of the browse cart ``browse_id`` went, ``channels`` being
    what it sent (times in ``zone``); ``None`` when none started (a look that turned into
    a cart within the hour)."""
    journey = session.scalars(
        select(Journey).where(Journey.cart_id == browse_id).order_by(Journey.started_at.desc())
    ).first()
    if journey is None:
        return None
    sent = f"{', '.join(channels)} sent ({journey.scenario})" if channels else ""
    if journey.exit_reason == SUPERSEDED:
        return f"{sent}, then superseded by a cart" if sent else "superseded by a cart, no message"
    return sent or why_nothing(session, browse_id, zone)


def why_nothing(session: Session, cart_id: str, zone: str) -> str:
    """Why the shopper with ``cart_id`` (a shop cart or a browse cart) got no message, read
    from the cart, its journeys and the decision log (never from what the demo meant them
    to do); times in ``zone``."""
    cart = session.get(Cart, cart_id)
    if cart is None:
        return "no cart reached cartflow"
    browse = cart.kind == BROWSE
    journeys = list(
        session.scalars(
            select(Journey).where(Journey.cart_id == cart_id).order_by(Journey.started_at)
        )
    )
    held = [j for j in journeys if j.group == "holdout"]
    if held:
        return f"control group of {held[0].scenario}: no messages, to measure what they bring"
    if not journeys:
        refused = session.scalars(
            select(Decision.reason)
            .where(Decision.cart_id == cart_id, Decision.decision == "skipped")
            .order_by(Decision.at.desc(), Decision.id.desc())
        ).first()
        if refused:
            return refused
        if browse:
            return {
                "active": "still looking: browsing has not counted as abandoned yet",
                SUPERSEDED: "carted something before browsing counted as abandoned",
                "closed": "bought before browsing counted as abandoned",
            }.get(cart.status, f"browsing {cart.status}, no journey started")
        return {
            "ordered": "bought before the cart counted as abandoned",
            "emptied": "emptied the cart before it counted as abandoned",
            "active": "still browsing: the cart has not counted as abandoned yet",
        }.get(cart.status, f"cart {cart.status}, no journey started")
    journey = journeys[-1]
    last = session.scalars(
        select(Decision)
        .where(Decision.journey_id == journey.id, Decision.decision.in_(("skipped", "deferred")))
        .order_by(Decision.at.desc(), Decision.id.desc())
    ).first()
    if journey.status != "active":
        ended = {
            "order.completed": "bought before the first reminder",
            "cart.emptied": "emptied the cart before the first reminder",
            SUPERSEDED: "carted something before the first reminder: the cart speaks now",
        }.get(journey.exit_reason or "", f"journey ended: {journey.exit_reason}")
        if last is not None and last.decision == "skipped":
            return f"{ended} (last skip: {last.reason})"
        return ended
    if last is not None and last.decision == "skipped":
        return f"skipped: {last.reason}"
    if last is not None and last.until is not None:
        return f"waiting until {shop_time(last.until, zone)}: {last.reason}"
    due = (journey.state or {}).get("due_at")
    if due:
        return f"first reminder due {shop_time(datetime.fromisoformat(due), zone)}"
    return "journey running, nothing due yet"


def print_summary(summary: dict[str, Any], out: Any) -> None:
    messages = summary["messages"]
    people = list(summary.get("shoppers", ()))
    browsed = [s for s in people if s.get("browse_story")]
    nothing = [s for s in people if not s["sent"]]
    width = max((len(shopper_label(s)) for s in browsed + nothing), default=0)
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
        f"browse journeys     {summary['browse_journeys']}"
        + (
            f" ({summary['browse_superseded']} superseded by a cart)"
            if summary.get("browse_superseded")
            else ""
        ),
        # whose browse journeys they were, and how each went
        *(f"  {shopper_label(s):{width}}  {s['browse_story']}" for s in browsed),
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
    if nothing:
        lines.append("got nothing")
        lines.extend(f"  {shopper_label(s):{width}}  {s['why']}" for s in nothing)
    print("\n".join(lines), file=out, flush=True)


def shopper_label(shopper: dict[str, Any]) -> str:
    """``Анна (cart_0)``; ``Ольга (browsing only)`` for a shopper who carted nothing."""
    return f"{shopper['name']} ({shopper['cart'] or 'browsing only'})"
