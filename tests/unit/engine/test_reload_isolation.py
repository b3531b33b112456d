"""A hot reload cannot stop the process (engine/configs.py): a changed configuration is
tried out in a child process with a time limit before it is loaded here, so whatever it
holds, the live configuration keeps running and the process keeps working."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from cartflow.engine.configs import ConfigHolder, ReloadCheck
from cartflow.providers.registry import validators

ROOT = Path(__file__).resolve().parents[3]
STEP = "scenarios/abandoned_cart.yaml"


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    target.mkdir()
    shutil.copy(ROOT / "scenarios.yaml", target)
    shutil.copytree(ROOT / "scenarios", target / "scenarios")
    shutil.copytree(ROOT / "templates", target / "templates")
    return target / "scenarios.yaml"


class CountingCheck(ReloadCheck):
    """The real out-of-process check, counting the child processes it starts."""

    def problems(self, path: str | Path) -> list[str]:
        CHILDREN.append(str(path))
        return super().problems(path)


#: Every child process a CountingCheck started, in order.
CHILDREN: list[str] = []


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.fixture
def heartbeat() -> Iterator[Callable[[], float]]:
    """A thread that ticks every 10 ms; yields a function giving the longest gap so far."""
    gaps: list[float] = []
    stop = threading.Event()

    def beat() -> None:
        last = time.monotonic()
        while not stop.wait(0.01):
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    yield lambda: max(gaps, default=0.0)
    stop.set()
    thread.join()


def _refused(logs: list[dict[str, Any]]) -> list[str]:
    events = [e for e in logs if e["event"] == "config_refused"]
    assert len(events) == 1, logs
    return [str(p) for p in events[0]["problems"]]


def test_a_hostile_change_is_refused_and_the_process_keeps_working(
    config_path: Path, heartbeat: Callable[[], float]
) -> None:
    # Given a live configuration
    configs = ConfigHolder.from_path(config_path, validators())
    live = configs.current.version

    # When a step's condition is changed to one that would compute for hours
    _edit(config_path.parent / STEP, "after: 3h", 'after: 3h\n    when: "9**(9**9) > 0"')
    started = time.monotonic()
    with capture_logs() as logs:
        went_live = configs.reload()
    took = time.monotonic() - started

    # Then the change is refused with the reason and the position, in bounded time,
    # the old configuration stays, and this process never stopped
    assert went_live is False
    assert configs.current.version == live
    assert any("abandoned_cart.yaml:" in p and "369,693,100 digits" in p for p in _refused(logs))
    assert took < 10
    assert heartbeat() < 3.0  # a runaway compile would freeze it far longer


def test_a_check_that_does_not_finish_in_time_is_stopped_and_the_change_refused(
    config_path: Path, heartbeat: Callable[[], float]
) -> None:
    # Given a live configuration, checked with a limit no load can meet (50 ms: the
    # checking process cannot even start Python in that time; it stands for a change
    # that would run for ever)
    configs = ConfigHolder.from_path(config_path, validators(), check=CountingCheck(seconds=0.05))
    live = configs.current.version
    CHILDREN.clear()

    # When a valid change is saved and the configuration reloads
    _edit(config_path.parent / STEP, "after: 3h", "after: 2h")
    started = time.monotonic()
    with capture_logs() as logs:
        assert configs.reload() is False
    took = time.monotonic() - started

    # Then the check is stopped at its limit, the change refused with the reason, the old
    # version stays live, and the process kept working while it waited
    assert took < 10.0  # a hang detector: the child is stopped at 0.05 s
    assert "did not finish within 0.05 s and was stopped" in _refused(logs)[0]
    assert configs.current.version == live
    assert heartbeat() < 3.0  # a runaway compile would freeze it far longer

    # And the same files are not tried again until they change
    assert configs.reload() is False
    assert len(CHILDREN) == 1  # no second child process for the same files


def test_a_valid_change_after_a_refused_one_goes_live(config_path: Path) -> None:
    configs = ConfigHolder.from_path(config_path, validators())
    step = config_path.parent / STEP
    _edit(step, "channel: sms", "channel: smss")
    with capture_logs() as logs:
        assert configs.reload() is False
    assert any("did you mean 'sms'" in p for p in _refused(logs))

    _edit(step, "channel: smss", "channel: sms")
    _edit(step, "after: 3h", "after: 2h")
    assert configs.reload() is True
    scenario = configs.current.scenario("abandoned_cart")
    assert scenario is not None and any(
        s.after and s.after.seconds == 7200 for s in scenario.model.steps
    )


def test_nothing_is_loaded_while_the_files_stay_the_same(config_path: Path) -> None:
    configs = ConfigHolder.from_path(config_path, validators(), check=CountingCheck())
    CHILDREN.clear()
    for _ in range(20):
        assert configs.reload() is False
    assert CHILDREN == []  # no load, no child process
