"""Provider settings are validated by the provider itself (plug-ins own their settings).

The engine never imports concrete providers: the caller hands :func:`load_config` a
mapping of provider type → validator (``cartflow.providers.registry.validators()``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cartflow.engine.errors import Problem, did_you_mean
from cartflow.engine.scenario.yaml_source import Source

#: provider type → function(options) returning a list of error messages.
Validators = dict[str, Callable[[dict[str, Any]], list[str]]]


def check_provider(
    channel: str, provider: Any, source: Source, problems: list[Problem], VALIDATORS: Validators
) -> None:
    line, col = source.where(("providers", channel, "type"))
    validate = VALIDATORS.get(provider.type)
    if validate is None:
        hint = did_you_mean(provider.type, VALIDATORS) or (
            f" (known: {', '.join(sorted(VALIDATORS))})"
        )
        problems.append(
            Problem(source.path, line, col, f"unknown provider type '{provider.type}'{hint}")
        )
        return
    for message in validate(provider.options()):
        problems.append(Problem(source.path, line, col, f"provider for {channel}: {message}"))
