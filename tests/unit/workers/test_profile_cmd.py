"""``cartflow profile ID`` over a database with a day of journeys (examples/events.jsonl)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cartflow.engine.scenario.loader import load_config
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
