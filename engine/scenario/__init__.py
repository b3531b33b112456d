"""The scenario language: model, loader (file:line:column errors) and checks.

Import from the modules (``cartflow.engine.scenario.loader`` …); this package imports
nothing itself, so a module the loader depends on (``value_types``, used by
:mod:`cartflow.engine.retry`) can be imported first without a cycle.
"""
