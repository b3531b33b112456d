"""``cartflow profile ID`` over a database with a day of journeys (examples/events.jsonl)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cartflow.engine.scenario.loader import load_config
from cartflow.engine.segments import BUILTIN_SEGMENTS
from cartflow.providers.registry import validators
from cartflow.workers.cli import main
from cartflow.workers.profile_cmd import mask
from cartflow.workers.tools import read_events, simulate

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def day_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("profile")
    config = load_config(ROOT / "scenarios.yaml", provider_types=validators())
    noon = datetime(2026, 11, 23, 12, tzinfo=UTC)
    events = [
        e for e in read_events(str(ROOT / "examples" / "events.jsonl")) if e.at and e.at < noon
    ]
    simulate(config, events, until=noon, workdir=workdir)
    return workdir / "simulate.db"


@pytest.fixture(autouse=True)
def _database(day_database: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARTFLOW_DATABASE_URL", f"sqlite:///{day_database}")


def test_contacts_are_masked_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "cust_anna"]) == 0
    out = capsys.readouterr().out
    assert "anna@example.com" not in out and "+79990000001" not in out
    assert "a***@e***.com" in out and "+7******0001" in out
    assert "journey abandoned_cart" in out


def test_show_pii_shows_them(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "anon_anna", "--show-pii"]) == 0
    out = capsys.readouterr().out
    assert "anna@example.com" in out and "+79990000001" in out


def test_json_parses_and_holds_the_journeys(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "cust_anna", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["identities"]["customer_id"] == "cust_anna"
    assert {j["scenario"] for j in shown["journeys"]} == {"abandoned_cart"}
    assert shown["deliveries"] and all(
        "@" not in c["address"] or "***" in c["address"] for c in shown["contacts"]
    )
    # the same profile by its own id
    assert main(["profile", shown["profile"]["id"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["profile"] == shown["profile"]


def test_an_unknown_id_is_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "nobody"]) == 1
    assert "no profile" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("channel", "address", "shown"),
    [
        ("email", "anna@example.com", "a***@e***.com"),
        ("sms", "+79991234567", "+7******4567"),
        ("push", "tok-abcdef", "tok-***"),
    ],
)
def test_mask(channel: str, address: str, shown: str) -> None:
    assert mask(channel, address) == shown


SEGMENTS = """\
segments:
  everyone: "cart.value > 0"
  nobody: "cart.value < 0"
  broken: "cart.value / 0 > 1"
"""


def test_segments_are_evaluated_against_the_loaded_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a configuration whose segments hold, do not hold, and cannot be evaluated
    from ..factories import SETTINGS_YAML, write_config

    settings = SETTINGS_YAML.format(templates=tmp_path / "templates") + SEGMENTS
    write_config(tmp_path, (ROOT / "scenarios" / "abandoned_cart.yaml").read_text(), settings)
    # When the profile is shown with it
    config = str(tmp_path / "scenarios.yaml")
    assert main(["profile", "cust_anna", "--json", "--config", config]) == 0
    segments = json.loads(capsys.readouterr().out)["segments"]
    # Then they are evaluated on her latest cart, the broken one said so (and counted out)
    # (the built-in segments are evaluated too)
    assert segments["cart"] and "everyone" in segments["in"] and "nobody" not in segments["in"]
    assert set(segments["in"]) - {"everyone"} <= set(BUILTIN_SEGMENTS)
    assert "vip" not in segments["in"]
    assert [f["segment"] for f in segments["failed"]] == ["broken"]
    assert "ZeroDivisionError" in segments["failed"][0]["reason"]
    # and the text output names the cart they were evaluated on
    assert main(["profile", "cust_anna", "--config", config]) == 0
    out = capsys.readouterr().out
    assert f"segments: {', '.join(segments['in'])} (on cart {segments['cart']})" in out
    assert "segment broken not evaluated" in out


def test_without_a_configuration_segments_say_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["profile", "cust_anna", "--config", str(tmp_path / "none.yaml")]) == 0
    assert "segments: - (no configuration loaded)" in capsys.readouterr().out
