"""The README's ``providers:`` snippet is a configuration every provider type accepts."""

from __future__ import annotations

import re
from pathlib import Path

from ruamel.yaml import YAML

from cartflow.engine.scenario.shared_settings import ProviderSettings
from cartflow.providers.registry import ChannelRouter, available

README = Path(__file__).resolve().parents[3] / "README.md"


def snippet() -> dict[str, dict[str, object]]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## Providers\n") :]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert block is not None, "README's Providers section has a yaml block"
    loaded = YAML(typ="safe").load(block[1])
    return dict(loaded["providers"])


def test_every_provider_in_the_readme_snippet_takes_its_settings() -> None:
    providers = snippet()
    assert {spec["type"] for spec in providers.values()} >= {"twilio", "smtp"}
    types = available()
    for channel, spec in providers.items():
        # what the loader gives the provider: its own settings, without the ones every
        # provider has (retry, rate_limit, breaker), which the settings model checks
        options = ProviderSettings.model_validate(spec).options()
        # the environment's values, as the loader would put them
        options = {
            k: re.sub(r"\$\{(\w+)\}", lambda m: f"value-of-{m[1].lower()}", v)
            if isinstance(v, str)
            else v
            for k, v in options.items()
        }
        assert types[str(spec["type"])].validate(options) == [], channel
        router = ChannelRouter({channel: types[str(spec["type"])](**options)})
        assert router.provider_for(channel) == spec["type"]
        router.close()
