"""Hot reload: a valid change goes live without restart, an invalid one is refused and the
last good configuration stays; journeys finish on the version they started with."""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from structlog.testing import capture_logs

from cartflow.engine.clock import SimulatedClock
from cartflow.engine.configs import ConfigHolder
from cartflow.engine.events import Event
from cartflow.engine.scenario.loader import Config
from cartflow.engine.sending import Message
from cartflow.engine.service import Engine
from cartflow.engine.simulation import Simulation
from cartflow.engine.store.database import Database
from cartflow.providers.recording import RecordingProvider
from cartflow.providers.registry import ChannelRouter, validators
from cartflow.workers.runtime import Runtime
from cartflow.workers.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
T0 = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # 10:00 in Moscow


def _config_copy(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    target.mkdir()
    shutil.copy(ROOT / "scenarios.yaml", target)
    shutil.copytree(ROOT / "scenarios", target / "scenarios")
    shutil.copytree(ROOT / "templates", target / "templates")
    return target / "scenarios.yaml"


def _cart(n: int, at: datetime) -> Event:
    return Event.model_validate(
        {
            "id": f"e{n}",
            "type": "cart.updated",
            "at": at.isoformat(),
            "customer_id": f"c{n}",
            "cart": {
                "id": f"cart{n}",
                "currency": "RUB",
                "url": f"https://shop/c/{n}",
                "items": [{"sku": "S", "name": "Кепка", "price": 1290, "quantity": 1}],
            },
            "contact": {
                "phone": f"+7999000000{n}",
                "push_token": f"t{n}",
                "email": f"c{n}@example.com",
                "locale": "en",
                "timezone": "Europe/Moscow",
            },
            "consent": {"push": True, "sms": True, "email": True},
        }
    )


def _edit(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")


def test_valid_change_goes_live_and_journeys_keep_their_version(tmp_path: Path) -> None:
    # Given a running engine with a journey started on version 1
    config_path = _config_copy(tmp_path)
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.migrate()
    clock = SimulatedClock(T0)
    recorder = RecordingProvider()
    configs = ConfigHolder.from_path(config_path, validators())
    v1 = configs.current.version
    engine = Engine(
        db, clock, configs, ChannelRouter({c: recorder for c in ("push", "sms", "email")})
    )
    sim = Simulation(engine, clock)
    sim.feed([_cart(1, T0)])
    sim.run_until(T0 + timedelta(hours=1))  # push sent; the SMS is pending
    # When the SMS text changes and the configuration reloads
    _edit(
        config_path.parent / "templates/abandoned_cart/sms.en.j2",
        "your cart is waiting",
        "NEW TEXT",
    )
    assert configs.reload() is True
    assert configs.current.version != v1
    # And a second cart starts a journey on version 2
    sim.feed([_cart(2, T0 + timedelta(hours=1))])
    # And the process restarts (a new holder: version 1 only in the database now)
    configs_after_restart = ConfigHolder.from_path(config_path, validators())
    engine2 = Engine(db, clock, configs_after_restart, engine.sender)
    Simulation(engine2, clock).run_until(T0 + timedelta(hours=6))
    # Then the first journey's SMS still speaks version 1, the second's version 2
    sms = {m.metadata["cart_id"]: m.parts["text"] for m in recorder.sent if m.channel == "sms"}
    assert "your cart is waiting" in sms["cart1"] and "NEW TEXT" not in sms["cart1"]
    assert "NEW TEXT" in sms["cart2"]
    db.dispose()


def test_invalid_change_is_refused_logged_and_last_good_stays(tmp_path: Path) -> None:
    config_path = _config_copy(tmp_path)
    configs = ConfigHolder.from_path(config_path, validators())
    good = configs.current.version
    _edit(config_path.parent / "scenarios/abandoned_cart.yaml", "channel: sms", "channel: smss")
    with capture_logs() as logs:
        assert configs.reload() is False
    assert configs.current.version == good
    refused = [e for e in logs if e["event"] == "config_refused"]
    assert refused and any("did you mean 'sms'" in p for p in refused[0]["problems"])
    assert refused[0]["live_version"] == good


def test_running_process_reloads_by_itself(tmp_path: Path) -> None:
    # Given the embedded runtime with its reload job every 0.1 s
    config_path = _config_copy(tmp_path)
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'run.db'}", config_path=str(config_path)
    )
    runtime = Runtime(settings, embedded=True, sender=ChannelRouter({}))
    runtime.start_dispatcher(interval=3600, reload_interval=0.1)
    try:
        before = runtime.configs.current.version
        # When a marketer saves a valid change
        _edit(config_path.parent / "scenarios/abandoned_cart.yaml", "after: 3h", "after: 2h")
        deadline = time.monotonic() + 10
        while runtime.configs.current.version == before and time.monotonic() < deadline:
            time.sleep(0.05)
        # Then it is live without a restart
        scenario = runtime.configs.current.scenario("abandoned_cart")
        assert scenario is not None
        assert scenario.model.steps[1].after == timedelta(hours=2)
    finally:
        runtime.stop()


def _sms(n: int) -> Message:
    return Message(f"d{n}", f"k{n}", "sms", "+79991234567", {"text": f"hi {n}"}, "en")


def test_a_changed_provider_goes_live_without_restart(tmp_path: Path) -> None:
    # Given a running process sending SMS through a recording provider writing to a.jsonl
    config_path = _config_copy(tmp_path)
    _edit(
        config_path,
        "sms:   {type: console}",
        f"sms:   {{type: recording, path: {tmp_path}/a.jsonl}}",
    )
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'run.db'}", config_path=str(config_path)
    )
    runtime = Runtime(settings, embedded=True)
    try:
        assert runtime.sender.send(_sms(1)).status == "accepted"

        # When the marketer points it at b.jsonl and the configuration reloads
        _edit(config_path, "a.jsonl", "b.jsonl")
        with capture_logs() as logs:
            assert runtime.configs.reload() is True

        # Then the next send goes to the new provider, and the switch is logged
        assert runtime.sender.send(_sms(2)).status == "accepted"
        assert [json.loads(line)["delivery_id"] for line in _lines(tmp_path / "a.jsonl")] == ["d1"]
        assert [json.loads(line)["delivery_id"] for line in _lines(tmp_path / "b.jsonl")] == ["d2"]
        assert "providers_rebuilt" in [e["event"] for e in logs]
        assert runtime.send_counts.counts() == {("recording", "accepted"): 2}
    finally:
        runtime.stop()


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_a_failing_reload_listener_is_logged_and_the_reload_stands(tmp_path: Path) -> None:
    # Given a holder with a listener that raises, then one that notes the versions
    config_path = _config_copy(tmp_path)
    configs = ConfigHolder.from_path(config_path, validators(), check=None)
    heard: list[tuple[str, str]] = []

    def broken(old: Config, new: Config) -> None:
        raise RuntimeError("listener bug")

    configs.on_reload += [broken, lambda old, new: heard.append((old.version, new.version))]
    before = configs.current.version

    # When a change goes live
    _edit(config_path.parent / "scenarios/abandoned_cart.yaml", "after: 3h", "after: 2h")
    with capture_logs() as logs:
        assert configs.reload() is True

    # Then both were called, the failure is logged and the new version is live
    assert heard == [(before, configs.current.version)]
    failed = [e for e in logs if e["event"] == "config_listener_failed"]
    assert failed and failed[0]["error"] == "RuntimeError"
