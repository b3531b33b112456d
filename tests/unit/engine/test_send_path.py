"""The send path's seams (engine/steps.py, deliveries.py, tokens.py, retry.py): the retry
policy a provider's settings give, the discount ledger's states, and the rules that keep
the send path in one shape (one caller of the timer's release, modules of a readable size)."""

from __future__ import annotations

import ast
import itertools
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from cartflow.engine.clock import SimulatedClock
from cartflow.engine.configs import ConfigHolder
from cartflow.engine.scenario.loader import ConfigError
from cartflow.engine.sending import SendResult
from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Database, DiscountToken
from cartflow.providers.recording import replies

from ..factories import (
    SETTINGS_YAML,
    T0,
    ClockedRecorder,
    build_engine,
    cart_updated,
    deliveries,
    event,
    write_config,
)

ROOT = Path(__file__).resolve().parents[3]
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)

PUSH_ONLY = """\
scenario: push_only
trigger: {on: cart.abandoned, idle: 30m}
steps:
  - {id: push, after: 0m, channel: push, discount: {percent: 5, ttl: 48h},
     template: abandoned_cart/push}
"""


def _sim(
    tmp_path: Path,
    db: Database,
    clock: SimulatedClock,
    recorder: ClockedRecorder,
    push_settings: str = "{type: recording}",
) -> Simulation:
    settings = SETTINGS_YAML.format(templates=tmp_path / "config" / "templates")
    settings = settings.replace("push:  {type: recording}", f"push: {push_settings}")
    config = write_config(tmp_path / "config", PUSH_ONLY, settings)
    return Simulation(build_engine(db, clock, ConfigHolder(config), recorder), clock)


def _tokens(db: Database) -> list[tuple[str, str | None]]:
    with db.sessions() as session:
        return [(t.status, t.order_id) for t in session.scalars(select(DiscountToken))]


# -- retry policy per provider --------------------------------------------------------------
def test_a_provider_s_retry_settings_replace_the_defaults(
    tmp_path: Path, db: Database, clock: SimulatedClock, recorder: ClockedRecorder
) -> None:
    # Given a push provider that allows 5 tries, 1 minute apart, doubling, no jitter
    sim = _sim(
        tmp_path,
        db,
        clock,
        recorder,
        "{type: recording, retry: {attempts: 5, wait: 1m, factor: 2, jitter: 0}}",
    )
    recorder.handler = replies(*[SendResult.retryable("recording", "HTTP 503")] * 5)

    # When every try is refused for now
    sim.feed([cart_updated(T0)])
    sim.run_until(T0 + 2 * HOUR)

    # Then it was tried 5 times, 1, 2, 4 and 8 minutes apart, then failed
    times = [at for channel, at, _ in recorder.calls if channel == "push"]
    assert [b - a for a, b in itertools.pairwise(times)] == [
        MINUTE,
        2 * MINUTE,
        4 * MINUTE,
        8 * MINUTE,
    ]
    (push,) = deliveries(db)
    assert (push.status, push.attempts) == ("failed", 5)


def test_a_retry_setting_of_the_wrong_type_is_refused_with_its_position(tmp_path: Path) -> None:
    # Given a provider whose retry attempts are not a number
    settings = SETTINGS_YAML.format(templates=tmp_path / "config" / "templates").replace(
        "push:  {type: recording}", 'push: {type: recording, retry: {attempts: "many"}}'
    )

    # When the configuration loads, then it is refused with file:line and the setting named
    try:
        write_config(tmp_path / "config", PUSH_ONLY, settings)
    except ConfigError as exc:
        text = str(exc)
    else:  # pragma: no cover - the assertion below says what went wrong
        text = ""
    assert "scenarios.yaml:11:" in text and "attempts" in text, text


# -- the discount ledger ----------------------------------------------------------------------
def test_an_order_with_the_sent_code_redeems_it(
    tmp_path: Path, db: Database, clock: SimulatedClock, recorder: ClockedRecorder
) -> None:
    # Given a push with a 5% code that went out
    sim = _sim(tmp_path, db, clock, recorder)
    sim.feed([cart_updated(T0)])
    sim.run_until(T0 + HOUR)
    ((status, _),) = _tokens(db)
    assert status == "issued"
    code = deliveries(db)[0].token_code

    # When the shopper orders with it
    order = {"id": "ord_1", "cart_id": "cart_1", "total": 9980, "discount_code": code}
    sim.feed([event("order.completed", T0 + 2 * HOUR, order=order)])

    # Then the code is redeemed by that order
    assert _tokens(db) == [("redeemed", "ord_1")]


def test_a_code_that_was_never_issued_is_not_redeemed(
    tmp_path: Path, db: Database, clock: SimulatedClock, recorder: ClockedRecorder
) -> None:
    # Given a push whose provider refused it for good (its code was released)
    sim = _sim(tmp_path, db, clock, recorder)
    recorder.handler = replies(SendResult.permanent("recording", "token not registered"))
    sim.feed([cart_updated(T0)])
    sim.run_until(T0 + HOUR)
    code = deliveries(db)[0].token_code

    # When an order names that code anyway (a guess, or a leak)
    order = {"id": "ord_1", "cart_id": "cart_1", "discount_code": code}
    sim.feed([event("order.completed", T0 + 2 * HOUR, order=order)])

    # Then it stays released
    assert _tokens(db) == [("released", None)]


def test_a_pending_message_cancelled_by_an_order_gives_its_code_back(
    tmp_path: Path, db: Database, clock: SimulatedClock, recorder: ClockedRecorder
) -> None:
    # Given a push refused "for now" (its delivery pending, its code reserved)
    sim = _sim(tmp_path, db, clock, recorder)
    recorder.handler = replies(SendResult.retryable("recording", "HTTP 503", retry_after=600))
    sim.feed([cart_updated(T0)])
    sim.run_until(T0 + 31 * MINUTE)
    assert _tokens(db) == [("reserved", None)]

    # When the shopper orders before the retry
    sim.feed([event("order.completed", T0 + 35 * MINUTE, order={"id": "o", "cart_id": "cart_1"})])

    # Then the delivery is cancelled and the code released, never issued
    assert deliveries(db)[0].status == "cancelled"
    assert _tokens(db) == [("released", None)]


# -- the shape of the send path ---------------------------------------------------------------
def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id == name)
            or (isinstance(node.func, ast.Attribute) and node.func.attr == name)
        )
    ]


def test_engine_fire_is_the_only_caller_of_the_timer_s_release() -> None:
    callers = []
    for path in sorted((ROOT / "engine").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imports_release = any(
            isinstance(node, ast.ImportFrom)
            and node.module == "cartflow.engine.timers"
            and any(alias.name == "release" for alias in node.names)
            for node in ast.walk(tree)
        )
        if not imports_release:
            continue
        for function in ast.walk(tree):
            if isinstance(function, ast.FunctionDef) and _calls(function, "release"):
                callers.append(f"{path.relative_to(ROOT)}:{function.name}")
    assert callers == ["engine/service.py:fire"]


def test_no_engine_module_is_over_three_hundred_lines() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for path in (ROOT / "engine").rglob("*.py")
        if "migrations" not in path.parts
    }
    assert len(sizes) > 40
    assert {name: n for name, n in sizes.items() if n > 300} == {}
