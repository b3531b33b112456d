"""Nothing in a configuration can take the engine down (issue 13): what would hang, exhaust
memory or reach into Python is refused by ``cartflow validate`` quickly, at its
file:line:column, and a value from the environment is never printed.

Each case breaks the small configuration of ``sample_config.py`` in one place; positions
count lines and columns in that text. Line 3 of ``scenarios/x.yaml`` is
``trigger: {idle: 30m, when: "..."}``: the condition's text starts at column 29.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from cartflow.engine.configs import ConfigHolder
from cartflow.engine.scenario.loader import ConfigError
from cartflow.engine.scenario.model import ProviderSettings
from cartflow.providers.registry import ChannelRouter, ProviderSettingsError, validators

from .sample_config import Edit, problems, write_config

ROOT = Path(__file__).resolve().parents[3]
X = "scenarios/x.yaml"
MAIN = "scenarios.yaml"
SMS_RU = "templates/cart/sms.ru.j2"
WHEN = '"cart.value > 0"'
#: How long any validate of a hostile configuration may take (the issue's bar).
BOUND = 5.0


def _when(expression: str) -> dict[str, Edit]:
    return {X: (WHEN, f'"{expression}"')}


def _bomb(depth: int) -> str:
    """A 'billion laughs': each level lists the previous one nine times."""
    lines = ['  a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, depth + 1):
        lines.append(f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "x-laughs:\n" + "\n".join(lines) + "\n"


def _template_text(body: str) -> str:
    return "{% block text %}\n" + body + "\n{% endblock %}\n"


HOSTILE = [
    # -- conditions too big as written: Jinja would fold them while compiling
    pytest.param(
        _when("9**(9**9) > 0"),
        (X, 3, 30, "9 ** 387420489 would be a number of 369,693,100 digits; the limit is 1,000"),
        id="condition-huge-power",
    ),
    pytest.param(
        _when("'a'*10**9 != ''"),
        (X, 3, 32, "'a' * 1000000000 would build 1,000,000,000 characters"),
        id="condition-huge-repetition",
    ),
    pytest.param(
        _when("[1]*10**9 == []"),
        (X, 3, 32, "[1] * 1000000000 would build 1,000,000,000 characters or items"),
        id="condition-huge-list",
    ),
    pytest.param(
        _when("range(10**9)|length > 0"),
        (X, 3, 29, "range() of 1,000,000,000 numbers; the limit is 10,000"),
        id="condition-huge-range",
    ),
    pytest.param(
        _when("cart.id|center(10**9) != ''"),
        (X, 3, 37, "a width of 1,000,000,000"),
        id="condition-huge-padding",
    ),
    # -- conditions reaching for Python internals
    pytest.param(
        _when("cart.__class__ is defined"),
        (X, 3, 34, "'__class__' is internal"),
        id="condition-dunder",
    ),
    pytest.param(
        _when("cart.value.__init__.__globals__"),
        (X, 3, 40, "'__init__' is internal"),
        id="condition-dunder-chain",
    ),
    pytest.param(
        _when("cart['__class__'] is defined"),
        (X, 3, 35, "'__class__' is internal"),
        id="condition-dunder-subscript",
    ),
    pytest.param(
        {MAIN: ('"visitor.sessions >= 2"', '"visitor.__class__"')},
        (MAIN, 9, 22, "segment 'hesitant': '__class__' is internal"),
        id="segment-dunder",
    ),
    # -- templates: the same limits
    pytest.param(
        {SMS_RU: "{% block text %}{{ 9**(9**9) }}{% endblock %}\n"},
        (SMS_RU, 1, 21, "9 ** 387420489 would be a number"),
        id="template-huge-power",
    ),
    pytest.param(
        {SMS_RU: _template_text("{{ 'a' * 10**9 }}: {{ links.cart }}")},
        (SMS_RU, 2, 8, "'a' * 1000000000 would build 1,000,000,000 characters"),
        id="template-huge-repetition",
    ),
    pytest.param(
        {SMS_RU: _template_text("{% for i in range(10**9) %}.{% endfor %}")},
        (SMS_RU, 2, 13, "range() of 1,000,000,000 numbers"),
        id="template-huge-range",
    ),
    pytest.param(
        {SMS_RU: _template_text("{{ cart.__class__.__mro__ }}")},
        (SMS_RU, 2, 9, "'__class__' is internal"),
        id="template-dunder",
    ),
    pytest.param(
        {SMS_RU: "{% block text %}" + "x" * 300_000 + "{% endblock %}\n"},
        (SMS_RU, 1, 1, "template file of 300,031 bytes; the limit is 262,144"),
        id="template-file-too-big",
    ),
    pytest.param(
        {SMS_RU: "{% block text %}" + "{{ cart.id }}" * 3000 + "{% endblock %}\n"},
        (SMS_RU, 1, 1, "template of more than 5,000 parts (MAX_TEMPLATE_NODES)"),
        id="template-too-many-parts",
    ),
    pytest.param(
        {SMS_RU: _template_text("{% for i in range(2) %}" * 40 + "." + "{% endfor %}" * 40)},
        (SMS_RU, 2, 1, "nests more than 24 deep (MAX_NESTING)"),
        id="template-nests-too-deeply",
    ),
    pytest.param(
        _when("cart" + ".a" * 300 + " > 0"),
        (X, 3, 29, "nests more than 24 deep (MAX_NESTING)"),
        id="condition-nests-too-deeply",
    ),
    # -- YAML: alias bombs, tags, size
    pytest.param(
        {X: ("expires: 7d\n", "expires: 7d\n" + _bomb(7))},
        (X, 11, 7, "aliases expand this to 27,064 values and characters"),
        id="yaml-alias-bomb-depth-7",
    ),
    pytest.param(
        {X: ("expires: 7d\n", "expires: 7d\n" + _bomb(9))},
        (X, 11, 7, "aliases may add at most 10,000 to a file (MAX_ALIAS_EXPANSION)"),
        id="yaml-alias-bomb-depth-9",
    ),
    pytest.param(
        {X: ("expires: 7d\n", "expires: 7d\nx-many: [" + ", ".join(["1"] * 10_000) + "]\n")},
        (X, 7, 14833, "more than 5,000 values (MAX_YAML_NODES)"),
        id="yaml-too-many-values",
    ),
    pytest.param(
        {X: ("expires: 7d\n", "expires: 7d\nx-deep: " + "[" * 40 + "]" * 40 + "\n")},
        (X, 7, 40, "nest more than 32 deep (MAX_YAML_DEPTH)"),
        id="yaml-too-deep",
    ),
    pytest.param(
        {X: ("expires: 7d\n", "expires: !!python/object/apply:os.system [ls]\n")},
        (X, 6, 10, "YAML tag '!!python/object/apply:os.system' is not allowed"),
        id="yaml-python-apply-tag",
    ),
    pytest.param(
        {X: ("scenario: cart\n", "!!python/object:os.system\nscenario: cart\n")},
        (X, 2, 1, "YAML tag '!!python/object:os.system' is not allowed"),
        id="yaml-python-object-tag-on-the-document",
    ),
    pytest.param(
        {X: ("expires: 7d\n", "expires: !duration 7d\n")},
        (X, 6, 10, "YAML tag '!duration' is not allowed"),
        id="yaml-custom-tag",
    ),
    pytest.param(
        {X: "# " + "x" * 1_000_000 + "\n"},
        (X, 1, 1, "file of 1,000,003 bytes; the limit is 1,000,000 (MAX_YAML_BYTES)"),
        id="yaml-file-too-big",
    ),
]


@pytest.mark.parametrize(("edits", "expected"), HOSTILE)
def test_a_hostile_configuration_is_refused_quickly_at_its_position(
    tmp_path: Path, edits: dict[str, Edit], expected: tuple[str, int, int, str]
) -> None:
    # Given the small configuration with one hostile part
    main_file = write_config(tmp_path, edits)

    # When it is loaded
    started = time.monotonic()
    found = problems(main_file)
    took = time.monotonic() - started

    # Then exactly that problem comes back, where it is, well within the bound
    assert [(p.file, p.line, p.column) for p in found] == [expected[:3]], found
    assert expected[3] in found[0].message
    assert found[0].severity == "error"
    assert took < BOUND


def test_plain_tags_and_modest_aliases_still_load(tmp_path: Path) -> None:
    # Given a scenario that reuses a discount through an alias and says '!!str'
    main_file = write_config(
        tmp_path,
        {
            X: [
                ("expires: 7d\n", "expires: 7d\ndescription: !!str 2026\n"),
                ("{percent: 5, ttl: 48h}", "&discount {percent: 5, ttl: 48h}"),
                ("{percent: 10, ttl: 72h}", "*discount"),
            ]
        },
    )

    # Then it loads as before
    assert [p for p in problems(main_file) if p.severity == "error"] == []


@pytest.mark.parametrize(
    ("edits", "where"),
    [
        pytest.param(_when("9**(9**9) > 0"), "x.yaml:3:30:", id="huge-power"),
        pytest.param(
            {X: ("expires: 7d\n", "expires: 7d\n" + _bomb(9))}, "x.yaml:11:7:", id="alias-bomb"
        ),
        pytest.param(
            {X: ("expires: 7d\n", "expires: !!python/object/apply:os.system [ls]\n")},
            "x.yaml:6:10:",
            id="python-tag",
        ),
    ],
)
def test_cartflow_validate_answers_hostile_configurations_within_the_bound(
    tmp_path: Path, edits: dict[str, Edit], where: str
) -> None:
    # Given a hostile configuration
    main_file = write_config(tmp_path, edits)

    # When 'cartflow validate' runs on it, as a marketer would run it
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "workers", "validate", "--config", str(main_file)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )

    # Then it refuses it in a few seconds, at the position, without a traceback
    assert time.monotonic() - started < BOUND
    assert done.returncode == 1, done.stderr
    assert where in done.stderr
    assert "Traceback" not in done.stderr
    assert "internal error" not in done.stderr
    assert done.stderr.strip().endswith("1 error(s); configuration refused")


# -- secrets --------------------------------------------------------------------------------
SECRET = "hunter2-Zq9xK7wPvL"
#: Pieces of SECRET a parser could quote on their own.
SECRET_PARTS = ("hunter2", "Zq9xK7wPvL")

MISPLACED = [
    pytest.param(
        {MAIN: ("  currency: RUB\n", "  currency: RUB\n  browsing_grace: ${CF_TEST_SECRET}\n")},
        (MAIN, 7, 19, "cannot read duration <value from ${CF_TEST_SECRET}>"),
        id="browsing-grace",
    ),
    pytest.param(
        {MAIN: ("sms: {type: console}", 'sms: {type: "${CF_TEST_SECRET}"}')},
        (MAIN, 12, 16, "unknown provider type <value from ${CF_TEST_SECRET}>"),
        id="provider-type",
    ),
    pytest.param(
        {
            MAIN: (
                "sms: {type: console}",
                'sms: {type: webhook, url: "https://sms.example/send", '
                'timeout: "${CF_TEST_SECRET}"}',
            )
        },
        (MAIN, 12, 57, "setting 'timeout' of provider 'webhook' must be a number of seconds"),
        id="provider-timeout",
    ),
    pytest.param(
        {X: ("    channel: sms\n", "    channel: ${CF_TEST_SECRET}\n")},
        (X, 14, 14, "unknown channel <value from ${CF_TEST_SECRET}>"),
        id="step-channel",
    ),
    pytest.param(
        _when("cart.value > 0 and ${CF_TEST_SECRET}"),
        (X, 3, 29, "<part of the value from ${CF_TEST_SECRET}>"),
        id="inside-a-condition",
    ),
]


def _assert_hidden(text: str) -> None:
    assert SECRET not in text
    for part in SECRET_PARTS:
        assert part not in text


@pytest.mark.parametrize(("edits", "expected"), MISPLACED)
def test_a_secret_in_a_wrong_field_is_never_printed(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    edits: dict[str, Edit],
    expected: tuple[str, int, int, str],
) -> None:
    # Given a secret from the environment, placed in a field it does not belong in
    monkeypatch.setenv("CF_TEST_SECRET", SECRET)
    main_file = write_config(tmp_path, edits)

    # When the configuration is loaded
    found = problems(main_file)

    # Then the problem is reported where it is, and names the variable, not its value
    assert [(p.file, p.line) for p in found] == [expected[:2]], found
    assert expected[3] in found[0].message
    assert "${CF_TEST_SECRET}" in found[0].message
    _assert_hidden(str(found))


@pytest.mark.parametrize(("edits", "expected"), MISPLACED)
def test_cartflow_validate_never_prints_a_secret(
    tmp_path: Path, edits: dict[str, Edit], expected: tuple[str, int, int, str]
) -> None:
    # Given a misplaced secret
    main_file = write_config(tmp_path, edits)

    # When 'cartflow validate' runs with the secret in its environment
    done = subprocess.run(
        [sys.executable, "-m", "workers", "validate", "--config", str(main_file)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "CF_TEST_SECRET": SECRET},
        check=False,
    )

    # Then the problem is reported at its line, naming the variable, never its value
    assert done.returncode == 1, done.stderr
    assert f"{Path(expected[0]).name}:{expected[1]}:" in done.stderr
    assert "${CF_TEST_SECRET}" in done.stderr
    _assert_hidden(done.stdout + done.stderr)


def test_a_reload_never_logs_a_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a running configuration and a secret in the environment
    monkeypatch.setenv("CF_TEST_SECRET", SECRET)
    main_file = write_config(tmp_path)
    configs = ConfigHolder.from_path(main_file, validators())
    live = configs.current.version

    # When a change puts the secret in a wrong field and the configuration reloads
    write_config(tmp_path, MISPLACED[0].values[0])  # type: ignore[arg-type]
    with capture_logs() as logs:
        assert configs.reload() is False

    # Then the refusal is logged with the variable's name, never its value
    assert configs.current.version == live
    refused = [e for e in logs if e["event"] == "config_refused"]
    assert refused and "${CF_TEST_SECRET}" in str(refused[0]["problems"])
    _assert_hidden(str(logs))


def test_a_process_with_a_secret_in_a_wrong_field_stops_with_a_clear_error(
    tmp_path: Path,
) -> None:
    # Given a webhook provider whose timeout was set to a secret by mistake
    main_file = write_config(tmp_path, MISPLACED[2].values[0])  # type: ignore[arg-type]

    # When the scheduler process starts
    done = subprocess.run(
        [sys.executable, "-m", "workers", "scheduler"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={
            **os.environ,
            "CF_TEST_SECRET": SECRET,
            "CARTFLOW_CONFIG": str(main_file),
            "CARTFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'cartflow.db'}",
            "CARTFLOW_LOG_FORMAT": "json",
        },
        check=False,
    )

    # Then it refuses to start: the setting, its position and how to fix it; no traceback
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "scenarios.yaml:12:57: provider for sms: setting 'timeout'" in done.stderr
    assert "must be a number of seconds between 0 and 600" in done.stderr
    _assert_hidden(done.stdout + done.stderr)


def test_building_providers_from_bad_settings_names_the_setting_not_its_value() -> None:
    # Given provider settings that bypassed the loader
    settings = {
        "sms": ProviderSettings.model_validate(
            {"type": "webhook", "url": "https://sms.example/send", "timeout": SECRET}
        )
    }

    # Then no provider is built, and the reason never shows the value
    with pytest.raises(ProviderSettingsError, match="setting 'timeout'") as refused:
        ChannelRouter.from_settings(settings)
    _assert_hidden(str(refused.value))


def test_the_shipped_example_is_still_valid() -> None:
    try:
        ConfigHolder.from_path(ROOT / "scenarios.yaml", validators(), check=None)
    except ConfigError as exc:  # pragma: no cover - shown when it fails
        pytest.fail(str(exc))
