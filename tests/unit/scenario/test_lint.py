"""Lint inside ``validate``: warnings that do not refuse the configuration, one test per
rule of :data:`cartflow.engine.scenario.checks.LINTS`, each at its file:line:column."""

from __future__ import annotations

from pathlib import Path

import pytest

from cartflow.engine.scenario.checks import LINTS
from cartflow.engine.scenario.loader import load_config
from cartflow.providers.registry import validators
from cartflow.workers.cli import main

from .sample_config import Edit, problems, write_config

X = "scenarios/x.yaml"
SMS_RU = "templates/cart/sms.ru.j2"
#: A Russian SMS that fits two parts only while the name, code and link stay short.
#: The email without a code when its step has no discount (else validate refuses it).
GUARDED_CODE = ("Code {{ discount.code }}", "{% if discount %}Code {{ discount.code }}{% endif %}")
GUARDED_EMAIL = {f"templates/cart/email.{locale}.j2": GUARDED_CODE for locale in ("en", "ru")}
LONG_SMS_RU = (
    "{# the discount reminder #}\n"
    "{% block text %}{{ customer.first_name }}, ваша корзина ждёт. Скидка "
    "{{ discount.percent|int }}% по коду {{ discount.code }}: {{ links.cart }}{% endblock %}\n"
)

CASES = [
    pytest.param(
        {X: ("    after: 30m", "    after: 10m")},
        [
            (
                X,
                9,
                12,
                "step 'push' is due 10m after the last activity, before the cart counts "
                "as abandoned: it fires at abandonment (idle 30m)",
            )
        ],
        id="fires-at-abandonment",
    ),
    pytest.param(
        {X: ("after: 24h", "after: 2h")},
        [
            (
                X,
                19,
                12,
                "step 'email' (after 2h) is not later than step 'sms' (due 3h): it would "
                "fire at the same time or before",
            )
        ],
        id="unreachable-not-later-than-previous",
    ),
    pytest.param(
        {X: ("after: 24h", "after: 3h")},
        [(X, 19, 12, "step 'email' (after 3h) is not later than step 'sms' (due 3h)")],
        id="unreachable-same-time-as-previous",
    ),
    pytest.param(
        {X: ("expires: 7d", "expires: 3h")},
        [
            (
                X,
                13,
                12,
                "step 'sms' is due 3h after abandonment, not before the journey expires "
                "(3h): it never runs",
            ),
            (
                X,
                19,
                12,
                "step 'email' is unreachable: it follows step 'sms', which falls after "
                "the journey expires (3h)",
            ),
        ],
        id="unreachable-after-a-step-that-never-runs",
    ),
    pytest.param(
        {X: ("expires: 7d", "expires: 20h")},
        [
            (
                X,
                19,
                12,
                "step 'email' is due 24h after abandonment, not before the journey "
                "expires (20h): it never runs and the journey ends there; raise 'expires'",
            )
        ],
        id="after-expiry",
    ),
    pytest.param(
        {
            X: [("after: 24h", "after: 72h"), ("    discount: {percent: 10, ttl: 72h}\n", "")],
            **GUARDED_EMAIL,
        },
        [
            (
                X,
                19,
                12,
                "the 5% code from step sms expires 48h after it is sent, before step "
                "email at 72h, which has no discount of its own; give 'email' a discount "
                "or make the ttl at least 69h",
            )
        ],
        id="discount-expires-before-a-later-step",
    ),
    pytest.param(
        {X: ("    after: 30m", "    after_previous: 10m")},
        [
            (
                X,
                9,
                21,
                "step 'push' is due 10m after the last activity, before the cart counts "
                "as abandoned: it fires at abandonment (idle 30m)",
            )
        ],
        id="fires-at-abandonment-after-previous",
    ),
    pytest.param(
        {
            X: [
                ("after: 24h", "after: 3d"),
                ("{percent: 5, ttl: 48h}", "{amount: 300, ttl: 2d}"),
                ("    discount: {percent: 10, ttl: 72h}\n", ""),
            ],
            **GUARDED_EMAIL,
        },
        [
            (
                X,
                19,
                12,
                "the 300 RUB code from step sms expires 48h after it is sent, before step "
                "email at 72h",
            )
        ],
        id="amount-discount-expires-before-a-later-step",
    ),
    pytest.param(
        {
            X: [
                ('"10:00-20:00"', '"22:00-23:00"'),
                (
                    "    template: cart/sms\n",
                    "    fallback: [email]\n    template: {sms: cart/sms, email: cart/email}\n",
                ),
            ]
        },
        [(X, 15, 14, "step 'sms' can never send on sms: its window 22:00-23:00")],
        id="window-inside-quiet-hours-on-one-channel-only",
    ),
    pytest.param(
        {X: ('"10:00-20:00"', '"22:00-23:00"')},
        [
            (
                X,
                15,
                14,
                "step 'sms' can never send on sms: its window 22:00-23:00 lies inside "
                "quiet hours for sms (21:00-09:00)",
            )
        ],
        id="window-inside-quiet-hours",
    ),
    pytest.param(
        {
            X: ("    template: cart/sms\n", "    template: cart/sms\n    max_sms_parts: 2\n"),
            SMS_RU: LONG_SMS_RU,
        },
        [
            (
                SMS_RU,
                2,
                1,
                "SMS of step 'sms' (ru) can need 3 parts (UCS-2, 171 characters, 67 per "
                "part) with a 20-character non-GSM name, a 10-character code and a "
                "100-character cart link; the step allows 2 (max_sms_parts)",
            )
        ],
        id="sms-over-its-part-limit",
    ),
    pytest.param(
        {
            "scenarios.yaml": (
                "providers:",
                "caps:\n  - {channel: any, max: 2, per: 3d}\nproviders:",
            )
        },
        [
            (
                X,
                19,
                12,
                "step email (+24h) would be the 3rd message within 3d (push +30m, sms +3h), "
                "cap any 2/3d allows 2, and room opens only at +72h30m, more than max_staleness "
                "24h after it is due: everyone who got the earlier steps misses it",
            )
        ],
        id="cap-takes-a-step-away",
    ),
    pytest.param(
        {
            "scenarios.yaml": (
                "providers:",
                "caps:\n  - {channel: any, max: 2, per: 3d}\nproviders:",
            ),
            X: ("    channel: email\n", "    channel: email\n    on_cap: skip\n"),
        },
        [
            (
                X,
                19,
                12,
                "step email (+24h) would be the 3rd message within 3d (push +30m, sms +3h), "
                "cap any 2/3d allows 2, and the step has on_cap: skip",
            )
        ],
        id="cap-skips-a-step",
    ),
    pytest.param(
        {X: [('"10:00-20:00"', '"mon-fri 10:00-20:00"'), ("expires: 7d", "expires: 2d")]},
        [
            (
                X,
                15,
                14,
                "step sms is due +3h, and its window mon-fri 10:00-20:00 with the quiet hours "
                "can hold it back 62h (due Fri 20:00, sent Mon 10:00): +65h is not before the "
                "journey expires (48h), so shoppers who abandon at that hour never get it; "
                "raise 'expires' above 65h",
            )
        ],
        id="window-outlasts-expiry",
    ),
]


@pytest.mark.parametrize(("edits", "expected"), CASES)
def test_a_lint_warning_is_reported_at_its_position(
    tmp_path: Path, edits: dict[str, Edit], expected: list[tuple[str, int, int, str]]
) -> None:
    # Given the small configuration with one thing that loads but misbehaves
    main_file = write_config(tmp_path, edits)

    # When it is loaded
    config = load_config(main_file, provider_types=validators())

    # Then it loads, with exactly that warning where the mistake is
    found = problems(main_file)
    got = [(p.file, p.line, p.column, p.message) for p in found]
    assert [g[:3] for g in got] == [e[:3] for e in expected], got
    for (*_, message), (*_, text) in zip(got, expected, strict=True):
        assert text in message
    assert {p.severity for p in found} == {"warning"}
    assert len(config.warnings) == len(expected)


@pytest.mark.parametrize(
    "edits",
    [
        pytest.param({X: ("    after: 30m", "    after: 30m")}, id="push-exactly-at-idle"),
        pytest.param(
            {
                X: [("after: 24h", "after: 48h"), ("    discount: {percent: 10, ttl: 72h}\n", "")],
                **GUARDED_EMAIL,
            },
            id="email-while-the-sms-code-still-works",
        ),
        pytest.param(
            # weekly, so 8d: at worst it waits almost a week (window_outlasts_expiry)
            {X: [('"10:00-20:00"', '"mon 08:00-09:30"'), ("expires: 7d", "expires: 8d")]},
            id="window-half-open",
        ),
        pytest.param(
            {
                "scenarios.yaml": (
                    "providers:",
                    "caps:\n  - {channel: any, max: 3, per: 3d}\nproviders:",
                )
            },
            id="three-steps-under-a-cap-of-three",
        ),
        pytest.param(
            {
                "scenarios.yaml": (
                    "providers:",
                    "caps:\n  - {channel: any, max: 2, per: 3d}\nproviders:",
                ),
                X: ("expires: 7d", "expires: 7d\nmax_staleness: 3d"),
            },
            id="a-cap-that-defers-within-max-staleness",
        ),
        pytest.param({X: ("    after: 24h", "    after_previous: 21h")}, id="after-previous"),
    ],
)
def test_a_sound_schedule_gets_no_warning(tmp_path: Path, edits: dict[str, Edit]) -> None:
    assert problems(write_config(tmp_path, edits)) == []


def test_a_step_due_at_the_expiry_instant_never_runs(tmp_path: Path) -> None:
    # The expiry guard stops a journey at ``now >= expires``, so "after == expires" is dead.
    main_file = write_config(tmp_path, {X: ("expires: 7d", "expires: 24h")})

    assert [(p.line, p.column, p.severity) for p in problems(main_file)] == [(19, 12, "warning")]


def test_a_scenario_with_errors_is_not_linted(tmp_path: Path) -> None:
    # Given an error and a lint-worthy delay in the same scenario
    main_file = write_config(
        tmp_path,
        {X: [("    channel: sms\n", "    channel: smss\n"), ("    after: 30m", "    after: 10m")]},
    )

    # Then only the error is reported: lint on a half-loaded scenario would mislead
    assert [(p.line, p.severity) for p in problems(main_file)] == [(14, "error")]


def test_cli_validate_prints_warnings_and_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main_file = write_config(tmp_path, {X: ("    after: 30m", "    after: 10m")})

    code = main(["validate", "--config", str(main_file)])

    captured = capsys.readouterr()
    assert code == 0
    assert captured.err.strip().endswith(
        "x.yaml:9:12: warning: step 'push' is due 10m after the last activity, before the cart "
        "counts as abandoned: it fires at abandonment (idle 30m); write after: 30m to say so"
    )
    assert "1 warning(s)" in captured.out


def test_every_lint_rule_has_a_case() -> None:
    assert {lint.__name__ for lint in LINTS} == {
        "fires_at_abandonment",
        "unreachable_steps",
        "after_expiry",
        "discount_expires_first",
        "window_never_opens",
        "window_outlasts_expiry",
        "caps_leave_no_room",
        "sms_too_long",
    }
