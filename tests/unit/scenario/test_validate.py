"""``cartflow validate``: every mistake is reported at once, at its file:line:column.

Each case breaks the small configuration of ``sample_config.py`` in one place; the expected
positions count lines and columns in that text (1-based, like an editor).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cartflow.workers.cli import main

from .sample_config import SCENARIO, Edit, problems, write_config

ROOT = Path(__file__).resolve().parents[3]
X = "scenarios/x.yaml"
MAIN = "scenarios.yaml"
SMS_RU = "templates/cart/sms.ru.j2"

CASES = [
    pytest.param(
        {X: ("    channel: sms\n", "    channel: smss\n")},
        [(X, 14, 14, "unknown channel 'smss' — did you mean 'sms'?")],
        id="unknown-channel",
    ),
    pytest.param(
        {X: ("    channel: sms\n", "    channel: sms\n    fallback: [emial]\n")},
        [(X, 15, 16, "unknown channel 'emial' — did you mean 'email'?")],
        id="unknown-fallback-channel",
    ),
    pytest.param(
        {MAIN: ("include:", "includes:")},
        [(MAIN, 14, 1, "unknown key 'includes' — did you mean 'include'?")],
        id="unknown-top-level-key-close",
    ),
    pytest.param(
        {MAIN: ("version: 1\n", "version: 1\nthrottling: 3\n")},
        [(MAIN, 2, 1, "unknown key 'throttling' (known keys: version, defaults, caps,")],
        id="unknown-top-level-key-far",
    ),
    pytest.param(
        {X: ("    after: 3h", "    afer: 3h")},
        [(X, 13, 5, "unknown key 'afer' — did you mean 'after'?")],
        id="unknown-step-key",
    ),
    pytest.param(
        {SMS_RU: None},
        [(X, 17, 15, "missing template templates/cart/sms.ru.j2 for locale 'ru'")],
        id="missing-template-locale",
    ),
    pytest.param(
        {X: ("[hesitant]", "[hesitnt]")},
        [(X, 4, 23, "undefined segment 'hesitnt' — did you mean 'hesitant'?")],
        id="undefined-segment",
    ),
    pytest.param(
        {X: ('"cart.value > 0"', '"cart.value > 0 and custmer.orders_30d == 0"')},
        [(X, 3, 48, "unknown name 'custmer' in condition — did you mean 'customer'?")],
        id="condition-unknown-name",
    ),
    pytest.param(
        {MAIN: ('"visitor.sessions >= 2"', '"visitr.sessions >= 2"')},
        [
            (
                MAIN,
                9,
                14,
                "segment 'hesitant': unknown name 'visitr' in condition — did you mean 'visitor'?",
            )
        ],
        id="segment-unknown-name",
    ),
    pytest.param(
        {X: ('"cart.value > 0"', '"cart.value|lenght > 0"')},
        [(X, 3, 40, "unknown filter 'lenght' — did you mean 'length'?")],
        id="condition-unknown-filter",
    ),
    pytest.param(
        {X: ('"10:00-20:00"', '"20:00-10:00"')},
        [(X, 15, 14, "window '20:00-10:00' ends before it starts")],
        id="window-end-before-start",
    ),
    pytest.param(
        {X: ("after: 3h", "after: -3h")},
        [(X, 13, 12, "negative duration '-3h'; delays count forward")],
        id="negative-delay",
    ),
    pytest.param(
        {X: ("after: 3h", "after: 3 hours")},
        [(X, 13, 12, "cannot read duration '3 hours'; write a number and a unit")],
        id="bad-duration",
    ),
    pytest.param(
        {X: ("after: 3h", "after: 3")},
        [(X, 13, 12, "bare number 3; add a unit: '3m', '3h' or '3d'")],
        id="bare-number-delay",
    ),
    pytest.param(
        {X: ("id: email", "id: sms")},
        [(X, 18, 9, "duplicate step id 'sms'; step ids must be unique")],
        id="duplicate-step-id",
    ),
    pytest.param(
        {"scenarios/y.yaml": SCENARIO},
        [("scenarios/y.yaml", 2, 11, "duplicate scenario 'cart' (also in ")],
        id="duplicate-scenario-id",
    ),
    pytest.param(
        {SMS_RU: "{% block text %}\n{{ links.cart }\n{% endblock %}\n"},
        [(SMS_RU, 2, 1, "template syntax: unexpected '}'")],
        id="template-syntax-error",
    ),
    pytest.param(
        {SMS_RU: "{% block text %}\nCode {{ promo }}: {{ links.cart }}\n{% endblock %}\n"},
        [(SMS_RU, 2, 9, "template uses 'promo', which the message context does not have")],
        id="template-unknown-name",
    ),
    pytest.param(
        {"templates/cart/sms.en.j2": "{% block body %}Hi{% endblock %}\n"},
        [("templates/cart/sms.en.j2", 1, 1, "template used for sms needs {% block text %}")],
        id="template-missing-block",
    ),
    pytest.param(
        {X: ("    after: 3h\n", "    after: 3h\n   oops: 1\n")},
        [(X, 14, 4, "YAML syntax: expected <block end>")],
        id="yaml-syntax",
    ),
    pytest.param(
        {X: ("    after: 3h\n", "    after: 3h\n    after: 4h\n")},
        [(X, 14, 5, 'YAML syntax: found duplicate key "after"')],
        id="yaml-duplicate-key",
    ),
    pytest.param(
        {X: SCENARIO.split("steps:")[0]},
        [(X, 2, 1, "missing required key 'steps'")],
        id="missing-steps",
    ),
    pytest.param(
        {X: ("    channel: sms\n", "")},
        [(X, 12, 5, "missing required key 'channel'")],
        id="missing-channel",
    ),
    pytest.param(
        {X: ("expires: 7d\n", "expires: 7d\nholdout: 150%\n")},
        [(X, 7, 10, "holdout: percentage 150.0 is outside 0..100")],
        id="holdout-over-100",
    ),
    pytest.param(
        {X: ("{percent: 5, ttl: 48h}", "{percent: 5, amount: 100, ttl: 48h}")},
        [(X, 16, 15, "give exactly one of 'percent' or 'amount'")],
        id="discount-percent-and-amount",
    ),
    pytest.param(
        {MAIN: ("sms: {type: console}", "sms: {type: consol}")},
        [(MAIN, 12, 15, "unknown provider type 'consol' — did you mean 'console'?")],
        id="unknown-provider-type",
    ),
    pytest.param(
        {MAIN: ("sms: {type: console}", "sms: {type: console, colour: red}")},
        [(MAIN, 12, 24, "unknown setting 'colour' for provider 'console' (known: stream,")],
        id="provider-unknown-setting",
    ),
    pytest.param(
        {MAIN: ("sms: {type: console}", 'sms: {type: webhook, url: "${CARTFLOW_TEST_UNSET}"}')},
        [
            (
                MAIN,
                12,
                30,
                "environment variable CARTFLOW_TEST_UNSET is not set; export it or give "
                "a default: ${CARTFLOW_TEST_UNSET:-value}",
            )
        ],
        id="unset-environment-variable",
    ),
    pytest.param(
        {MAIN: ("  - scenarios/*.yaml\n", "  - scenarios/*.yaml\n  - extra/more.yaml\n")},
        [(MAIN, 16, 5, "included file 'extra/more.yaml' does not exist")],
        id="include-missing-file",
    ),
    pytest.param(
        {MAIN: ("Europe/Moscow", "Europe/Mosccow")},
        [(MAIN, 3, 13, "unknown time zone 'Europe/Mosccow'; use an IANA name")],
        id="bad-time-zone",
    ),
    pytest.param(
        {MAIN: ('"21:00-09:00"', '"nightly"')},
        [(MAIN, 7, 17, "cannot read 'nightly'; write [days] HH:MM-HH:MM")],
        id="quiet-hours-garbage",
    ),
    pytest.param(
        {X: ("[order.completed]", "[order.complete]")},
        [(X, 5, 11, "unknown exit event 'order.complete' — did you mean 'order.completed'?")],
        id="unknown-exit-event",
    ),
    pytest.param(
        {
            X: (
                "    template: cart/sms\n",
                "    fallback: [email]\n    template: {sms: cart/sms, email: cart/emial}\n",
            )
        },
        [
            (X, 18, 38, "missing template templates/cart/emial.en.j2 for locale 'en'"),
            (X, 18, 38, "missing template templates/cart/emial.ru.j2 for locale 'ru'"),
        ],
        id="missing-per-channel-template",
    ),
    pytest.param(
        {
            X: (
                "    template: cart/sms\n",
                "    fallback: [email]\n    template: {sms: cart/sms, email: cart/sms}\n",
            )
        },
        [
            ("templates/cart/sms.en.j2", 1, 1, "template used for email needs {% block subject %}"),
            ("templates/cart/sms.ru.j2", 1, 1, "template used for email needs {% block subject %}"),
        ],
        id="per-channel-template-lacks-the-channel-block",
    ),
    pytest.param(
        {
            X: (
                "    template: cart/sms\n",
                "    template: cart/sms\n    variants: [{id: a, template: cart/sms}]\n",
            )
        },
        [(X, 12, 5, "give 'template' or 'variants', not both")],
        id="template-and-variants",
    ),
]


@pytest.mark.parametrize(("edits", "expected"), CASES)
def test_a_broken_configuration_is_reported_at_its_position(
    tmp_path: Path, edits: dict[str, Edit], expected: list[tuple[str, int, int, str]]
) -> None:
    # Given the small configuration broken in one place
    main_file = write_config(tmp_path, edits)

    # When it is loaded
    found = problems(main_file)

    # Then exactly that problem is reported, as an error, where it is
    got = [(p.file, p.line, p.column, p.message) for p in found]
    assert [g[:3] for g in got] == [e[:3] for e in expected], got
    for (*_, message), (*_, text) in zip(got, expected, strict=True):
        assert text in message
    assert {p.severity for p in found} == {"error"}


def test_the_unbroken_configuration_has_no_problems(tmp_path: Path) -> None:
    assert problems(write_config(tmp_path)) == []


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    # Given three independent mistakes: a time zone, a step's channel and another step's
    # template — the first two fail validation, which must not hide the rest
    main_file = write_config(
        tmp_path,
        {
            MAIN: ("Europe/Moscow", "Mars/Olympus"),
            X: ("    channel: sms\n", "    channel: smss\n"),
            "templates/cart/email.ru.j2": "{% block subject %}{{ cart.id }{% endblock %}\n",
        },
    )

    # When it is loaded
    found = problems(main_file)

    # Then all three come back, each where it is, and nothing else
    assert [(p.file, p.line, p.column) for p in found] == [
        (MAIN, 3, 13),
        (X, 14, 14),
        ("templates/cart/email.ru.j2", 1, 1),
    ]
    assert "unknown time zone 'Mars/Olympus'" in found[0].message
    assert "unknown channel 'smss'" in found[1].message
    assert "template syntax" in found[2].message


def test_a_bad_setting_does_not_cause_follow_on_errors(tmp_path: Path) -> None:
    # Given a bad time zone next to the segments and locales the scenario relies on
    main_file = write_config(
        tmp_path, {MAIN: ("Europe/Moscow", "Mars/Olympus"), "templates/cart/push.ru.j2": None}
    )

    # Then the segment is still defined, and the ru locale is still required
    assert [(p.file, p.line, p.column) for p in problems(main_file)] == [
        (MAIN, 3, 13),
        (X, 11, 15),
    ]


def test_cli_validate_prints_positions_and_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a configuration with two mistakes
    main_file = write_config(
        tmp_path,
        {
            X: [("    channel: sms\n", "    channel: smss\n"), ("after: 24h", "after: 1 day")],
        },
    )

    # When it is validated from the command line
    code = main(["validate", "--config", str(main_file)])

    # Then it exits 1 with one file:line:column line per problem and never a traceback
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 1
    assert "Traceback" not in err
    assert lines[-1] == "2 error(s); configuration refused"
    located = [re.fullmatch(r"(.+):(\d+):(\d+): (.+)", line) for line in lines[:-1]]
    assert [(Path(m[1]).name, int(m[2]), int(m[3])) for m in located if m] == [
        ("x.yaml", 14, 14),
        ("x.yaml", 19, 12),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(None, "cannot read file", id="no-such-file"),
        pytest.param("- just\n- a list\n", "expected a mapping of settings at the top", id="list"),
        pytest.param("version: [1\n", "YAML syntax", id="yaml-syntax"),
    ],
)
def test_cli_validate_reports_an_unreadable_main_file_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    main_file = tmp_path / "scenarios.yaml"
    if content is not None:
        main_file.write_text(content, encoding="utf-8")

    code = main(["validate", "--config", str(main_file)])

    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    assert re.match(rf"{re.escape(str(main_file))}:\d+:\d+: .*{message}", err)


def test_cli_validate_accepts_the_shipped_example(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", "--config", str(ROOT / "scenarios.yaml")])

    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.startswith("ok: ")
    assert "error" not in captured.err
