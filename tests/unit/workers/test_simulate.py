"""`cartflow simulate` over the shipped example, and parity with the running worker."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from cartflow.engine.clock import SimulatedClock, as_utc
from cartflow.engine.scenario.loader import load_config
from cartflow.engine.store.models import Timer
from cartflow.providers.recording import RecordingProvider
from cartflow.providers.registry import ChannelRouter, validators
from cartflow.workers.cli import main
from cartflow.workers.runtime import Runtime
from cartflow.workers.settings import Settings
from cartflow.workers.tools import decisions, read_events, simulate

ROOT = Path(__file__).resolve().parents[3]
CONFIG = ROOT / "scenarios.yaml"
EVENTS = ROOT / "examples" / "events.jsonl"

#: The day the shipped example describes, decision by decision (times in UTC;
#: Moscow is UTC+3, Kyiv UTC+2, London UTC+0 in November).
EXPECTED = [
    ("2026-11-23T07:30", "cart_anna", "push", "sent"),  # 10:30 MSK, 30m after the cart
    ("2026-11-23T09:31", "cart_oksana", "push", "sent"),
    ("2026-11-23T10:00", "cart_anna", "sms", "sent"),  # 13:00 MSK, +3h
    ("2026-11-23T10:05", "cart_oksana", None, "exited"),  # she paid: no SMS, no email
    ("2026-11-23T11:02", "cart_emma", "push", "sent"),  # high_value_cart wins on priority
    ("2026-11-23T13:25", "cart_maria", "push", "sent"),  # waited until she stopped browsing
    ("2026-11-23T13:32", "cart_oleg", "push", "sent"),
    ("2026-11-23T14:32", "cart_emma", "email", "sent"),
    ("2026-11-23T15:01", "cart_maria", "sms", "sent"),
    ("2026-11-23T16:02", "cart_oleg", "sms", "sent"),  # no SMS consent: the offer by email
    ("2026-11-23T20:00", "cart_dmitry", "push", "deferred"),  # 23:00 MSK: quiet hours
    ("2026-11-24T06:00", "cart_dmitry", "push", "sent"),  # 09:00 MSK, when quiet hours end
    ("2026-11-24T07:00", "cart_anna", "email", "sent"),
    ("2026-11-24T08:30", "cart_dmitry", "sms", "sent"),  # 2½ h after the push, not 1 h
    ("2026-11-24T12:01", "cart_maria", "email", "sent"),
    ("2026-11-24T12:32", "cart_emma", "sms", "skipped"),  # journey.sent < 2 is false
    ("2026-11-24T13:02", "cart_oleg", "email", "sent"),
    ("2026-11-25T05:30", "cart_dmitry", "email", "sent"),  # 21 h after his SMS
]


def _timeline(rows: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return [(str(r["at"])[:16], r["cart"], r["step"], r["decision"]) for r in rows]


def test_simulate_gives_the_expected_timeline(tmp_path: Path) -> None:
    # Given the shipped configuration and a day of a small shop's traffic
    config = load_config(CONFIG, provider_types=validators())
    events = read_events(str(EVENTS))
    # When the engine runs over it on a simulated clock
    rows = simulate(config, events, workdir=tmp_path)
    # Then every decision happens when the scenario says, and nothing else happens
    assert _timeline(rows) == EXPECTED
    sent = [r for r in rows if r["decision"] == "sent"]
    assert all(r["rendered"] for r in sent)
    sms = next(r for r in sent if r["cart"] == "cart_anna" and r["channel"] == "sms")
    assert str(sms["token"]).startswith("CF") and sms["token"] in sms["rendered"]["text"]  # type: ignore[index]
    assert sms["rendered"]["encoding"] == "UCS-2"  # type: ignore[index]
    email = next(r for r in sent if r["cart"] == "cart_anna" and r["channel"] == "email")
    assert "9\u00a0980\u00a0₽" in email["rendered"]["text"]  # type: ignore[index]
    assert "2\u00a0товара" in email["rendered"]["text"]  # type: ignore[index]
    # nothing for the carts that were paid, emptied, or only browsed
    carts = {r["cart"] for r in rows}
    assert not carts & {"cart_ivan", "cart_pavel", "cart_sergey"}


def test_simulate_cli_prints_jsonl_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--events", str(EVENTS), "--config", str(CONFIG)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {
        "at",
        "customer",
        "cart",
        "scenario",
        "step",
        "channel",
        "decision",
        "reason",
        "token",
        "rendered",
    } <= set(lines[0])
    assert _timeline(lines) == EXPECTED
    assert (
        main(["simulate", "--events", str(EVENTS), "--config", str(CONFIG), "--format", "table"])
        == 0
    )
    table = capsys.readouterr().out
    assert "deferred" in table and "quiet hours" in table


def test_simulate_reports_bad_event_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"id": "e1", "type": "cart.updated", "at": "2026-11-23T10:00:00Z", '
        '"anonymous_id": "a", "cart": {"id": "c", "items": [{"sku": "x", "price": -1}]}}\n'
        "{not json\n",
        encoding="utf-8",
    )
    assert main(["simulate", "--events", str(bad), "--config", str(CONFIG)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:1:1: cart.items.0.price" in err
    assert f"{bad}:2:2: not valid JSON" in err
    assert "Traceback" not in err


def test_running_worker_takes_the_same_decisions_as_simulate(tmp_path: Path) -> None:
    # Given the same configuration loaded by the embedded runtime: HTTP API, StubBroker,
    # real worker threads and the dispatcher, on a simulated clock we move ourselves
    events = read_events(str(EVENTS))
    start = min(as_utc(e.at) for e in events if e.at)
    clock = SimulatedClock(start)
    recorder = RecordingProvider()
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'run.db'}", config_path=str(CONFIG), api_keys=("k",)
    )
    runtime = Runtime(
        settings,
        embedded=True,
        clock=clock,
        sender=ChannelRouter({c: recorder for c in ("push", "sms", "email")}),
    )
    runtime.start_worker(threads=2)
    dispatcher = runtime.start_dispatcher(interval=3600)  # we tick it by hand
    port = runtime.start_api("127.0.0.1", 0)
    end = max(as_utc(e.at) for e in events if e.at) + timedelta(days=7)
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": "Bearer k"}
        ) as http:
            pending = sorted(events, key=lambda e: as_utc(e.at))  # type: ignore[arg-type]

            def drain() -> None:
                while True:
                    runtime.join_queues()
                    with runtime.db.sessions() as session:
                        due = session.scalar(select(Timer.due_at).order_by(Timer.due_at).limit(1))
                    if due is None or due > clock.now() or dispatcher.tick() == 0:
                        runtime.join_queues()
                        return

            while True:
                with runtime.db.sessions() as session:
                    due = session.scalar(select(Timer.due_at).order_by(Timer.due_at).limit(1))
                next_event = as_utc(pending[0].at) if pending else None  # type: ignore[arg-type]
                if next_event is not None and (due is None or next_event <= due):
                    clock.set(max(clock.now(), next_event))
                    drain()
                    event = pending.pop(0)
                    response = http.post(
                        "/v1/events", json=event.model_dump(mode="json", exclude_none=True)
                    )
                    assert response.status_code == 202
                    runtime.join_queues()
                elif due is not None and due <= end:
                    clock.set(max(clock.now(), due))
                    drain()
                else:
                    break
        # When both have run
        worker_rows = decisions(runtime.db)
    finally:
        runtime.stop()
    config = load_config(CONFIG, provider_types=validators())
    simulated = simulate(config, events, until=end, workdir=tmp_path)
    # Then they took the same decisions at the same times (worker threads may record two
    # decisions of the same instant in either order)
    assert _timeline(simulated) == EXPECTED
    assert sorted(_timeline(worker_rows), key=str) == sorted(EXPECTED, key=str)
