"""Provider types come from the ``cartflow.providers`` entry-point group: cartflow's own
first, then any installed distribution's (tests/fixtures/dist_provider)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from cartflow.engine.scenario.loader import load_config
from cartflow.engine.sending import Message
from cartflow.providers.console import ConsoleProvider
from cartflow.providers.registry import BUILT_IN, GROUP, ChannelRouter, available, validators

from ..scenario.sample_config import problems, write_config

ROOT = Path(__file__).resolve().parents[3]
FIXTURE = ROOT / "tests" / "fixtures" / "dist_provider"
ECHO = 'sms: {type: echo, prefix: "shop"}'


def install(project: Path, target: Path) -> None:
    """What ``pip install --no-deps --target target project`` leaves behind: the module and
    a ``.dist-info`` with the project's entry points (written here: pip would need its
    build backend's ``wheel`` from the network)."""
    meta = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    name, version = meta["name"], meta["version"]
    info = target / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    sections = [
        "\n".join([f"[{group}]", *(f"{key} = {value}" for key, value in points.items())])
        for group, points in meta.get("entry-points", {}).items()
    ]
    (info / "entry_points.txt").write_text("\n\n".join(sections) + "\n", encoding="utf-8")
    for module in project.glob("*.py"):
        shutil.copy(module, target)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The echo plug-in installed in a directory on ``sys.path``."""
    target = tmp_path / "site"
    install(FIXTURE, target)
    monkeypatch.syspath_prepend(str(target))
    yield target
    sys.modules.pop("cartflow_echo_provider", None)


def test_built_ins_are_there_even_when_the_install_predates_the_entry_points() -> None:
    # (an editable install from an older pyproject.toml has no cartflow.providers group)
    assert {name: available()[name] for name in BUILT_IN} == dict(BUILT_IN)


def test_an_installed_distribution_adds_a_provider_type(site: Path, tmp_path: Path) -> None:
    # Given the echo plug-in installed, and scenarios.yaml sending SMS through it
    main = write_config(tmp_path / "config", {"scenarios.yaml": ("sms: {type: console}", ECHO)})

    # When the configuration is validated and a router built from it
    assert problems(main) == []
    config = load_config(main, provider_types=validators())
    router = ChannelRouter.from_settings(config.settings.providers)

    # Then a message goes through the plug-in, built-ins still serve the other channels
    sms = Message("d1", "k1", "sms", "+79991234567", {"text": "hi"}, "en")
    result = router.send(sms)
    assert (result.status, result.provider, result.provider_message_id) == (
        "accepted",
        "echo",
        "shop-d1",
    )
    assert router.provider_for("push") == "console"
    assert list(available())[: len(BUILT_IN)] == list(BUILT_IN)  # built-ins first


def test_the_plug_in_validates_its_own_settings_with_positions(site: Path, tmp_path: Path) -> None:
    main = write_config(
        tmp_path / "config", {"scenarios.yaml": ("sms: {type: console}", "sms: {type: echo}")}
    )
    assert [str(p) for p in problems(main)] == [
        "scenarios.yaml:12:15: provider for sms: provider 'echo' needs setting 'prefix'"
    ]


def test_cartflow_validate_finds_the_plug_in(site: Path, tmp_path: Path) -> None:
    # Given the plug-in on the process's path
    main = write_config(tmp_path / "config", {"scenarios.yaml": ("sms: {type: console}", ECHO)})
    path = os.pathsep.join([str(site), str(ROOT)])

    # When `cartflow validate` runs (this worktree's code, with the plug-in importable)
    done = subprocess.run(
        [sys.executable, "-m", "workers", "validate", "--config", str(main)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": path},
        check=False,
    )

    # Then it knows the type
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: 1 scenario(s)")


def test_a_broken_plug_in_is_logged_and_the_others_still_load(tmp_path: Path) -> None:
    # Given a distribution whose entry point cannot be imported, and one that is no provider
    project = tmp_path / "broken"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "cartflow-broken"\nversion = "1.0"\n'
        f'[project.entry-points."{GROUP}"]\n'
        'gone = "cartflow_no_such_module:Provider"\n'
        'plain = "os:sep"\n'
        'console = "cartflow_no_such_module:Console"\n',
        encoding="utf-8",
    )
    install(project, tmp_path / "site")
    with pytest.MonkeyPatch.context() as patch, capture_logs() as logs:
        patch.syspath_prepend(str(tmp_path / "site"))
        found = available()

    # Then neither is a type, cartflow's own keep their names, and each is logged
    assert "gone" not in found and "plain" not in found
    assert found["console"] is ConsoleProvider
    events = {(e["event"], e["type"]) for e in logs}
    assert ("provider_type_broken", "gone") in events
    assert ("provider_type_broken", "plain") in events
    assert ("provider_type_taken", "console") in events


def test_cartflow_s_own_entry_points_name_the_built_ins_when_installed(tmp_path: Path) -> None:
    # Given a cartflow install whose entry points map 'webhook' elsewhere (to tell them apart)
    project = tmp_path / "cartflow"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "cartflow"\nversion = "9.9"\n'
        f'[project.entry-points."{GROUP}"]\n'
        'webhook = "cartflow.providers.console:ConsoleProvider"\n',
        encoding="utf-8",
    )
    install(project, tmp_path / "site")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(tmp_path / "site"))
        found = available()

    # Then the entry point wins, and the built-ins it does not name still come from the table
    assert found["webhook"] is ConsoleProvider
    assert found["recording"] is BUILT_IN["recording"]
