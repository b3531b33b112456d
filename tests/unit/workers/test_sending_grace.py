"""A slow but live send is never declared lost: the grace before the scheduler settles a
``sending`` delivery as ``unknown`` outlasts every provider's own timeout."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from cartflow.engine.scenario.loader import load_config
from cartflow.providers.registry import validators
from cartflow.workers.runtime import GRACE_MARGIN, THROTTLE_WAIT, sending_grace

from ..factories import SETTINGS_YAML, write_config

SCENARIO = """\
scenario: t
steps:
  - {id: push, after: 30m, channel: push, template: abandoned_cart/push}
"""


def test_the_grace_is_the_lease_when_providers_answer_sooner(tmp_path: Path) -> None:
    config = write_config(tmp_path, SCENARIO)  # recording providers: no timeout
    assert sending_grace(60, config) == timedelta(seconds=60)


def test_the_grace_outlasts_the_slowest_provider_timeout(tmp_path: Path) -> None:
    settings = SETTINGS_YAML.format(templates=tmp_path / "templates").replace(
        "sms:   {type: recording}",
        "sms:   {type: webhook, url: 'http://127.0.0.1:9/x', timeout: 120}",
    )
    write_config(tmp_path, SCENARIO, settings_yaml=settings)
    config = load_config(tmp_path / "scenarios.yaml", provider_types=validators())
    # ... and the wait for room under a rate limit, which happens while it is sending
    assert sending_grace(60, config) == timedelta(seconds=120 + GRACE_MARGIN + THROTTLE_WAIT)
