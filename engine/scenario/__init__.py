"""The scenario language: model, loader (file:line:column errors) and checks."""

from cartflow.engine.scenario.loader import (
    CompiledScenario,
    Config,
    ConfigError,
    Problem,
    load_config,
)

__all__ = ["CompiledScenario", "Config", "ConfigError", "Problem", "load_config"]
