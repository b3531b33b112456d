"""The scenario language at run time (docs/scenarios.md): caps, escalation, A/B variants,
holdout, ``after_previous``, conditions, priority, expiry, ``exit_on``, windows with days,
DST and the recipient's time zone — each through real journeys on a simulated clock."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from cartflow.engine.deliveries import DeliveryEvent, add_event
from cartflow.engine.scenario.loader import Config
from cartflow.engine.sending import SendResult
from cartflow.engine.store import Database, Delivery
from cartflow.providers.recording import replies

from ..factories import (
    SETTINGS_YAML,
    T0,
    Run,
    decisions,
    deliveries,
    fresh_database,
    journeys,
    moscow,
    shopper,
    utc,
    write_config,
)

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

#: Every block every channel needs, so one template serves push, SMS and email steps.
MULTI = """\
{% block title %}Корзина ждёт{% endblock %}
{% block body %}{{ cart.item_count }} шт.{% endblock %}
{% block text %}Ваша корзина ждёт: {{ links.cart }}{% endblock %}
{% block subject %}Корзина ждёт{% endblock %}
"""
TEMPLATES = {
    "test/multi.ru.j2": MULTI,
    "test/a.ru.j2": MULTI.replace("Корзина ждёт{% endblock %}", "Вариант A{% endblock %}"),
    "test/b.ru.j2": MULTI.replace("Корзина ждёт{% endblock %}", "Вариант B{% endblock %}"),
}
SHIPPED_CAPS = "caps:\n  - {channel: any, max: 3, per: 7d}\n  - {channel: sms, max: 1, per: 24h}\n"

#: One push 30 minutes after abandonment (quiet hours 21:00-09:00 from the defaults).
PUSH_ONLY = """\
scenario: push_only
steps:
  - {id: push, after: 30m, channel: push, template: test/multi}
"""


def load(directory: Path, scenario: str, caps: str | None = None) -> Config:
    """``scenario`` (one, or a YAML list of several) with the test settings (Moscow,
    quiet hours 21:00-09:00); ``caps`` replaces the shipped caps (``"caps: []"``: none)."""
    settings = SETTINGS_YAML.format(templates=directory / "templates")
    if caps is not None:
        assert SHIPPED_CAPS in settings
        settings = settings.replace(SHIPPED_CAPS, caps + "\n")
    return write_config(directory, scenario, settings, TEMPLATES)


World = Callable[..., Run]


@pytest.fixture
def world(tmp_path: Path, db: Database) -> World:
    """``world(scenario, caps=None, at=T0)``: a :class:`Run` of that configuration."""

    def make(scenario: str, caps: str | None = None, at: datetime = T0) -> Run:
        return Run.start(load(tmp_path / "config", scenario, caps), db, at)

    return make


# -- 1. frequency caps --------------------------------------------------------------------
THREE_EMAILS = """\
scenario: capped
reentry: 0m
max_staleness: {staleness}
steps:
  - {{id: one, after: 30m, channel: email, template: test/multi}}
  - {{id: two, after: 1h, channel: email, template: test/multi}}
  - {{id: three, after: 2h, channel: email, template: test/multi{extra}}}
"""
TWO_PER_6H = "caps:\n  - {channel: any, max: 2, per: 6h}"


def test_cap_defers_a_step_until_the_oldest_message_leaves_the_window(world: World) -> None:
    # Given a cap of 2 messages per 6h and three emails at +30m, +1h and +2h
    run = world(THREE_EMAILS.format(staleness="24h", extra=""), TWO_PER_6H)

    # When a cart is abandoned and a day passes
    run.play([shopper(T0)], DAY)

    # Then the third email waits until the first one (+30m) is 6h old, and is then sent
    assert run.sent_at() == {"one": T0 + 30 * MINUTE, "two": T0 + HOUR, "three": T0 + 6.5 * HOUR}
    (deferred,) = decisions(run.db, "deferred")
    assert (deferred.step_id, deferred.at) == ("three", T0 + 2 * HOUR)
    assert deferred.until == T0 + 30 * MINUTE + 6 * HOUR
    assert "frequency cap 2/" in deferred.reason
    assert decisions(run.db, "skipped") == []


@pytest.mark.parametrize(
    ("staleness", "on_cap", "stale"),
    [("3h", "", True), ("24h", ", on_cap: skip", False)],
    ids=["room-opens-after-max-staleness", "on-cap-skip"],
)
def test_cap_skips_the_step_when_it_may_not_wait(
    world: World, staleness: str, on_cap: str, stale: bool
) -> None:
    # Given the same cap, and a third step that may wait at most 3h (room opens after
    # 4h30m) or that says on_cap: skip
    run = world(THREE_EMAILS.format(staleness=staleness, extra=on_cap), TWO_PER_6H)

    # When a cart is abandoned and a day passes
    run.play([shopper(T0)], DAY)

    # Then the third email is skipped when due, and the reason says which rule it was
    assert set(run.sent_at()) == {"one", "two"}
    (skipped,) = decisions(run.db, "skipped")
    assert (skipped.step_id, skipped.at) == ("three", T0 + 2 * HOUR)
    assert "frequency cap 2/" in skipped.reason
    assert ("max_staleness" in skipped.reason) is stale
    assert decisions(run.db, "deferred") == []
    assert journeys(run.db)[0].status == "completed"


@pytest.mark.parametrize("gap", [HOUR, timedelta(0)], ids=["an-hour-apart", "at-once"])
def test_caps_hold_across_two_carts_of_the_same_shopper(world: World, gap: timedelta) -> None:
    # Given a cap of 2 per 6h, three emails per journey and no re-entry cooldown
    run = world(THREE_EMAILS.format(staleness="24h", extra=""), TWO_PER_6H)

    # When the same shopper abandons two carts (an hour apart, or at the same moment) with
    # different items (the same items would be one intent: one journey)
    other = [{"sku": "SKU-2", "price": 100}]
    run.play([shopper(T0), shopper(T0 + gap, cart_id="cart_2", items=other)], 2 * DAY)

    # Then both carts got a journey and all six emails went out eventually ...
    assert sorted(j.cart_id for j in journeys(run.db)) == ["cart_1", "cart_2"]
    sent = deliveries(run.db)
    assert len(sent) == 6 and {d.status for d in sent} == {"accepted"}
    # ... never more than two in any 6h window ...
    for at in run.times:
        assert sum(1 for t in run.times if at - 6 * HOUR < t <= at) <= 2, at
    # ... and every hold-up is on record, until the moment room opened
    deferred = decisions(run.db, "deferred")
    assert deferred and all("frequency cap" in d.reason for d in deferred)
    assert all(d.until in run.times for d in deferred)


# -- 2. escalation ------------------------------------------------------------------------
ESCALATING = """\
scenario: escalating
steps:
  - {id: push, after: 30m, channel: push, template: test/multi}
  - {id: email, after_previous: 0m, channel: email, template: test/multi,
     escalate: {unless: delivered, within: 30m}}
"""


@pytest.mark.parametrize("status", ["delivered", "opened"])
def test_escalation_is_skipped_when_the_previous_message_was_delivered(
    world: World, status: str
) -> None:
    # Given a push at +30m and an email that escalates unless the push is delivered in 30m
    run = world(ESCALATING).play([shopper(T0)], 40 * MINUTE)

    # When the push is reported delivered (or better) at +40m
    with run.db.transaction() as session:
        push = session.scalar(select(Delivery).where(Delivery.step_id == "push"))
        assert push is not None
        add_event(session, push, DeliveryEvent(status), T0 + 40 * MINUTE, raw=status.upper())
    run.sim.run_until(T0 + DAY)

    # Then the email is skipped, with the reason
    assert [m.channel for m in run.recorder.sent] == ["push"]
    (skipped,) = decisions(run.db, "skipped")
    assert (skipped.step_id, skipped.at) == ("email", T0 + HOUR)
    assert "previous message was delivered" in skipped.reason


@pytest.mark.parametrize(
    ("retry_after", "pushed"),
    [
        (None, T0 + 30 * MINUTE),
        pytest.param(
            1200,
            T0 + 50 * MINUTE,
        ),
    ],
    ids=["sent-at-once", "sent-after-a-retry"],
)
def test_escalation_runs_once_within_has_passed_since_the_send(
    world: World, retry_after: int | None, pushed: datetime
) -> None:
    # Given the same scenario; the provider accepts the push (at once, or after a 503
    # with "retry in 20 minutes") and never reports it delivered
    run = world(ESCALATING)
    if retry_after is not None:
        run.recorder.handler = replies(SendResult.retryable("recording", "503", retry_after))

    # When a cart is abandoned and a day passes
    run.play([shopper(T0)], DAY)

    # Then the email waits until 30m after the push went out, and then goes
    sent = [(channel, at) for channel, at, status in run.recorder.calls if status == "accepted"]
    assert sent == [("push", pushed), ("email", pushed + 30 * MINUTE)]
    (deferred,) = decisions(run.db, "deferred")
    assert (deferred.step_id, deferred.until) == ("email", pushed + 30 * MINUTE)
    assert "delivered" in deferred.reason


# -- 3. A/B variants ----------------------------------------------------------------------
VARIANTS = """\
scenario: ab
steps:
  - id: push
    after: 30m
    channel: push
    variants:
      - {id: a, weight: 3, template: test/a}
      - {id: b, weight: 1, template: test/b}
      - {id: never, weight: 0, template: test/multi}
"""


def test_variant_is_stable_per_cart_and_follows_the_weights(
    tmp_path: Path, db: Database, migrated_template: Path
) -> None:
    # Given weights a:3, b:1, never:0, and 200 shoppers with a cart each
    config = load(tmp_path / "config", VARIANTS, "caps: []")
    carts = [shopper(T0, customer=f"c{i}", cart_id=f"cart_{i}") for i in range(200)]

    # When they all abandon their carts, and 40 of them do the same on another engine
    # with its own database
    other_db = fresh_database(migrated_template, tmp_path / "other")
    runs = [Run.start(config, db).batch(carts, HOUR), Run.start(config, other_db)]
    runs[1].batch(carts[:40], HOUR)
    first, second = ({d.cart_id: d.variant for d in deliveries(r.db)} for r in runs)
    other_db.dispose()

    # Then every delivery records its variant; those 40 carts got the same one twice ...
    assert len(first) == 200 and len(second) == 40
    assert second == {cart_id: first[cart_id] for cart_id in second}
    # ... each message carries its variant's words ...
    titles = {m.metadata["cart_id"]: m.parts["title"] for m in runs[0].recorder.sent}
    assert None not in first.values()
    assert titles == {cart_id: f"Вариант {str(v).upper()}" for cart_id, v in first.items()}
    # ... weight 0 was never chosen, and the split roughly follows 3:1
    split = Counter(first.values())
    assert split["never"] == 0
    assert 120 <= split["a"] <= 180 and 20 <= split["b"] <= 80


# -- 4. holdout ---------------------------------------------------------------------------
HOLDOUT = """\
scenario: measured
holdout: {percent}
steps:
  - {{id: push, after: 30m, channel: push, template: test/multi}}
  - {{id: email, after: 2h, channel: email, template: test/multi}}
"""


@pytest.mark.parametrize(
    ("percent", "group", "sent"),
    [("100%", "holdout", []), ("0%", "treatment", ["push", "email"])],
)
def test_holdout_percent_puts_the_journey_in_its_group(
    world: World, percent: str, group: str, sent: list[str]
) -> None:
    # Given everyone (or nobody) in the control group
    run = world(HOLDOUT.format(percent=percent))

    # When a cart is abandoned and a day passes
    run.play([shopper(T0)], DAY)

    # Then the journey is in that group; a holdout one sends nothing, and says why per step
    assert [j.group for j in journeys(run.db)] == [group]
    assert [m.channel for m in run.recorder.sent] == sent
    assert group in decisions(run.db, "started")[0].reason
    skipped = [(d.step_id, "holdout" in d.reason) for d in decisions(run.db, "skipped")]
    assert skipped == ([] if sent else [("push", True), ("email", True)])


def test_holdout_assignment_is_stable_per_customer_id(
    tmp_path: Path, db: Database, migrated_template: Path
) -> None:
    # Given a 50% holdout and 20 customers
    config = load(tmp_path / "config", HOLDOUT.format(percent="50%"))

    # When they abandon carts in two separate databases, under other anonymous ids
    other_db = fresh_database(migrated_template, tmp_path / "other")
    groups = []
    for database, device in ((db, "phone"), (other_db, "laptop")):
        carts = [
            shopper(T0, customer=f"c{i}", anonymous=f"{device}{i}", cart_id=f"cart_{i}")
            for i in range(20)
        ]
        Run.start(config, database).play(carts, HOUR)
        groups.append({j.cart_id: j.group for j in journeys(database)})
    other_db.dispose()
    first, second = groups

    # Then each customer lands in the same group both times, and both groups occur
    assert len(first) == 20 and first == second
    assert set(first.values()) == {"holdout", "treatment"}


# -- 5. after_previous ----------------------------------------------------------------------
def test_after_previous_counts_from_the_actual_send(world: World) -> None:
    # Given a push at +30m and an email 2h after the push
    scenario = """\
scenario: spaced
steps:
  - {id: push, after: 30m, channel: push, template: test/multi}
  - {id: email, after_previous: 2h, channel: email, template: test/multi}
"""
    start = utc(2026, 11, 22, 17, 45)  # 20:45 Moscow
    run = world(scenario, at=start)

    # When the cart is left at 20:45, so the push (due 21:15) waits for 09:00
    run.play([shopper(start)], 2 * DAY)

    # Then the email goes at 11:00, two hours after the push was actually sent
    sent = {step: moscow(at) for step, at in run.sent_at().items()}
    assert sent == {"push": datetime(2026, 11, 23, 9, 0), "email": datetime(2026, 11, 23, 11, 0)}


# -- 6. conditions --------------------------------------------------------------------------
CONDITIONAL = """\
scenario: conditional
steps:
  - {{id: push, after: 30m, channel: push, template: test/multi, when: "{when}"}}
  - {{id: email, after: 1h, channel: email, template: test/multi}}
"""


@pytest.mark.parametrize(
    ("when", "pushed"), [("cart.value > 10000", False), ("cart.value > 9000", True)]
)
def test_step_condition_decides_whether_the_step_runs(
    world: World, when: str, pushed: bool
) -> None:
    # Given a push only for carts matching a condition (the cart is worth 9 980)
    run = world(CONDITIONAL.format(when=when))

    # When a cart is abandoned
    run.play([shopper(T0)], DAY)

    # Then the push goes only if the condition holds; a false one is recorded as a skip
    assert [m.channel for m in run.recorder.sent] == (["push", "email"] if pushed else ["email"])
    expected = [] if pushed else [("push", "step condition is false (cart.value > 10000)")]
    assert [(d.step_id, d.reason) for d in decisions(run.db, "skipped")] == expected


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ('trigger: {idle: 30m, when: "cart.value > 10000"}', "trigger condition is false"),
        ('audience: {exclude: "cart.item_count >= 2"}', "excluded (cart.item_count >= 2)"),
        ('audience: {exclude: "cart.item_count >= 3"}', None),
    ],
)
def test_trigger_condition_or_exclusion_keeps_the_cart_out(
    world: World, entry: str, reason: str | None
) -> None:
    # Given a scenario with an entry rule (the cart has 2 items worth 9 980)
    run = world(PUSH_ONLY.replace("steps:", f"{entry}\nsteps:"))

    # When the cart is abandoned
    run.play([shopper(T0)], DAY)

    # Then a cart that fails the rule gets no journey, and the refusal is on record
    skipped = decisions(run.db, "skipped")
    if reason is None:
        assert len(journeys(run.db)) == 1 and skipped == []
        return
    assert journeys(run.db) == [] and run.recorder.calls == []
    assert [(d.cart_id, d.scenario) for d in skipped] == [("cart_1", "push_only")]
    assert skipped[0].reason.startswith("not entered") and reason in skipped[0].reason


# -- 7. priority ------------------------------------------------------------------------------
def two_scenarios(high_when: str) -> str:
    """``alpha`` (priority 1) first in the file, ``zeta`` (priority 5) second."""
    return f"""\
- scenario: alpha
  priority: 1
  steps: [{{id: push, after: 30m, channel: push, template: test/a}}]
- scenario: zeta
  priority: 5
  trigger: {{idle: 30m, when: "{high_when}"}}
  steps: [{{id: push, after: 30m, channel: push, template: test/b}}]
"""


@pytest.mark.parametrize(("high_when", "winner"), [("true", "zeta"), ("false", "alpha")])
def test_higher_priority_scenario_gets_the_cart(world: World, high_when: str, winner: str) -> None:
    # Given two scenarios that both take any cart, unless the higher one refuses it
    run = world(two_scenarios(high_when))

    # When a cart is abandoned and a week passes
    run.play([shopper(T0)], 7 * DAY)

    # Then exactly one journey took the cart: the highest-priority one that matched
    assert [(j.cart_id, j.scenario) for j in journeys(run.db)] == [("cart_1", winner)]
    assert [d.scenario for d in deliveries(run.db)] == [winner]


# -- 8. expiry ---------------------------------------------------------------------------------
def test_step_after_expiry_never_runs(world: World) -> None:
    # Given a journey that expires 2d after abandonment, with an email due at 3d
    run = world("""\
scenario: short
expires: 2d
steps:
  - {id: push, after: 30m, channel: push, template: test/multi}
  - {id: email, after: 3d, channel: email, template: test/multi}
""")

    # When a cart is abandoned and a week passes
    run.play([shopper(T0)], 7 * DAY)

    # Then only the push went, and the journey exited as expired
    assert [m.channel for m in run.recorder.sent] == ["push"]
    (journey,) = journeys(run.db)
    assert journey.status == "exited" and "expire" in (journey.exit_reason or "")


def test_step_deferred_past_expiry_never_runs(world: World) -> None:
    # Given a journey that expires 1h after abandonment, and a cart left at 20:45 Moscow
    start = utc(2026, 11, 22, 17, 45)
    run = world(PUSH_ONLY.replace("steps:", "expires: 1h\nsteps:"), at=start)

    # When the push (due 21:15) is held by quiet hours until 09:00
    run.play([shopper(start)], 2 * DAY)

    # Then it never goes: the journey has expired by then
    assert run.recorder.calls == []
    (journey,) = journeys(run.db)
    assert journey.status == "exited" and "expired" in (journey.exit_reason or "")
    assert journey.ended_at == utc(2026, 11, 23, 6, 0)


# -- 9. exit_on -------------------------------------------------------------------------------
EXIT_ON = """\
scenario: exits
exit_on: [{exit_on}]
steps:
  - {{id: push, after: 30m, channel: push, template: test/multi}}
  - {{id: email, after: 3h, channel: email, template: test/multi}}
"""


@pytest.mark.parametrize(
    ("exit_on", "sent"),
    [("order.completed, cart.updated", ["push"]), ("order.completed", ["push", "email"])],
)
def test_cart_change_after_abandonment_exits_only_when_listed(
    world: World, exit_on: str, sent: list[str]
) -> None:
    # Given an abandoned cart whose push went out
    run = world(EXIT_ON.format(exit_on=exit_on)).play([shopper(T0)], HOUR)

    # When the shopper changes the cart at +1h
    run.play([shopper(T0 + HOUR)], 7 * DAY)

    # Then the journey ends on the change only if exit_on lists cart.updated
    first = journeys(run.db)[0]
    assert [d.step_id for d in deliveries(run.db) if d.journey_id == first.id] == sent
    ending = ("exited", "cart.updated") if "cart.updated" in exit_on else ("completed", None)
    assert (first.status, first.exit_reason if first.status == "exited" else None) == ending


# -- 10. windows with days ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("zone", "saturday_noon", "monday_ten"),
    [
        ("Europe/Moscow", utc(2026, 11, 21, 9, 0), utc(2026, 11, 23, 7, 0)),
        ("America/New_York", utc(2026, 11, 21, 17, 0), utc(2026, 11, 23, 15, 0)),
    ],
)
def test_weekday_window_moves_a_saturday_step_to_monday_morning(
    world: World, zone: str, saturday_noon: datetime, monday_ten: datetime
) -> None:
    # Given an email only on weekdays 10:00-20:00, and a cart left on Saturday at noon
    run = world(
        """\
scenario: weekdays
steps:
  - {id: email, after: 30m, channel: email, window: "mon-fri 10:00-20:00", template: test/multi}
""",
        at=saturday_noon,
    )

    # When the weekend passes
    run.play([shopper(saturday_noon, timezone=zone)], 4 * DAY)

    # Then the email goes on Monday at 10:00 in the shopper's time zone
    assert run.times == [monday_ten]
    local = monday_ten.astimezone(ZoneInfo(zone))
    assert (local.strftime("%a"), local.hour, local.minute) == ("Mon", 10, 0)
    (deferred,) = decisions(run.db, "deferred")
    assert deferred.until == monday_ten and zone in deferred.reason


# -- 11. DST and historical offset changes ------------------------------------------------------
@pytest.mark.parametrize(
    ("zone", "cart_left", "pushed"),
    [
        # Sat 2026-03-07 20:45 EST; clocks spring forward at 02:00 → 09:00 EDT = 13:00Z
        ("America/New_York", utc(2026, 3, 8, 1, 45), utc(2026, 3, 8, 13, 0)),
        # Sat 2026-10-31 20:45 EDT; clocks fall back at 02:00 → 09:00 EST = 14:00Z
        ("America/New_York", utc(2026, 11, 1, 0, 45), utc(2026, 11, 1, 14, 0)),
        # 2014-10-25 20:45 MSK (UTC+4); back to UTC+3 on the 26th → 09:00 MSK = 06:00Z
        ("Europe/Moscow", utc(2014, 10, 25, 16, 45), utc(2014, 10, 26, 6, 0)),
        # 2011-03-26 20:45 MSK (UTC+3); permanent UTC+4 from the 27th → 09:00 = 05:00Z
        ("Europe/Moscow", utc(2011, 3, 26, 17, 45), utc(2011, 3, 27, 5, 0)),
    ],
    ids=["new-york-spring", "new-york-autumn", "moscow-2014", "moscow-2011"],
)
def test_push_held_by_quiet_hours_goes_at_nine_local_across_offset_changes(
    world: World, zone: str, cart_left: datetime, pushed: datetime
) -> None:
    # Given a shopper in ``zone`` who leaves a cart at 20:45 local the evening before
    # the UTC offset changes, so the push (21:15) falls into quiet hours
    run = world(PUSH_ONLY, at=cart_left)

    # When the night passes
    run.play([shopper(cart_left, timezone=zone)], DAY)

    # Then the push goes at 09:00 local, on the new offset
    assert run.times == [pushed]
    assert pushed.astimezone(ZoneInfo(zone)).hour == 9


# -- 12. time zone fallback ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("phone", "pushed"),
    [
        # Kyiv is UTC+2: 08:45 there (09:45 Moscow) is quiet → 09:00 Kyiv = 07:00Z
        ("+380441234567", utc(2026, 11, 22, 7, 0)),
        # London is UTC+0: quiet until 09:00 London = 09:00Z
        ("+442079460000", utc(2026, 11, 22, 9, 0)),
        # Russia spans many zones: the number says nothing → defaults (Moscow): at once
        ("+79991234567", utc(2026, 11, 22, 6, 45)),
        # no phone → defaults (Moscow): 09:45 there, at once (06:45Z is quiet in UTC)
        (None, utc(2026, 11, 22, 6, 45)),
    ],
    ids=["ukraine", "uk", "russia-many-zones", "no-phone"],
)
def test_quiet_hours_use_the_phone_region_then_the_default_zone(
    world: World, phone: str | None, pushed: datetime
) -> None:
    # Given a shopper without a profile time zone, who leaves a cart at 06:15Z
    start = utc(2026, 11, 22, 6, 15)
    run = world(PUSH_ONLY, at=start)

    # When the push falls due at 06:45Z
    run.play([shopper(start, timezone=None, phone=phone)], DAY)

    # Then quiet hours were those of the phone's country, else of defaults.timezone
    assert run.times == [pushed]


def test_now_in_a_condition_is_the_recipients_local_time_from_the_phone(world: World) -> None:
    # Given an email only at 10:xx local, and a Kyiv number without a profile zone
    start = utc(2026, 11, 22, 8, 0)
    run = world(
        """\
scenario: morning
steps:
  - {id: email, after: 30m, channel: email, when: "now.hour == 10", template: test/multi}
""",
        at=start,
    )

    # When the email falls due at 08:30Z: 10:30 in Kyiv (11:30 in Moscow, the default)
    run.play([shopper(start, timezone=None, phone="+380441234567")], DAY)

    # Then the condition sees Kyiv time, as quiet hours do, and the email goes
    assert [d.reason for d in decisions(run.db, "skipped")] == []
    assert [m.channel for m in run.recorder.sent] == ["email"]
