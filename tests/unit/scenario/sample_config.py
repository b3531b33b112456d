"""A small, fixed configuration to break on purpose (positions in tests count on it).

``write_config(tmp_path, edits)`` writes ``scenarios.yaml``, ``scenarios/x.yaml`` and
minimal templates (locales ``en`` and ``ru``), then applies ``edits``: a mapping of file
→ ``(old, new)`` text replacements, whole new text, or None to delete the file.
``problems(path)`` loads it and returns every problem, errors and warnings alike, with
paths relative to the configuration's directory.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from cartflow.engine.scenario.loader import ConfigError, Problem, load_config
from cartflow.providers.registry import validators

MAIN = """\
version: 1
defaults:
  timezone: Europe/Moscow
  locale: en
  locales: [en, ru]
  currency: RUB
  quiet_hours: "21:00-09:00"
segments:
  hesitant: "visitor.sessions >= 2"
providers:
  push: {type: console}
  sms: {type: console}
  email: {type: console}
include:
  - scenarios/*.yaml
"""

SCENARIO = """\
# the scenario every test breaks
scenario: cart
trigger: {idle: 30m, when: "cart.value > 0"}
audience: {segments: [hesitant]}
exit_on: [order.completed]
expires: 7d
steps:
  - id: push
    after: 30m
    channel: push
    template: cart/push
  - id: sms
    after: 3h
    channel: sms
    window: "10:00-20:00"
    discount: {percent: 5, ttl: 48h}
    template: cart/sms
  - id: email
    after: 24h
    channel: email
    discount: {percent: 10, ttl: 72h}
    template: cart/email
"""

TEMPLATES = {
    "push": "{% block title %}Your cart{% endblock %}\n"
    "{% block body %}{{ cart.item_count }} items{% endblock %}\n"
    "{% block url %}{{ links.cart }}{% endblock %}\n",
    "sms": "{% block text %}{{ discount.percent|int }}% off: {{ links.cart }}{% endblock %}\n",
    "email": "{% block subject %}Your cart{% endblock %}\n"
    "{% block text %}Code {{ discount.code }}: {{ links.cart }}{% endblock %}\n",
}

#: One replacement, several, a whole new text, or None to delete the file.
Edit = tuple[str, str] | list[tuple[str, str]] | str | None


def base_files() -> dict[str, str]:
    files = {"scenarios.yaml": MAIN, "scenarios/x.yaml": SCENARIO}
    for locale in ("en", "ru"):
        for kind, text in TEMPLATES.items():
            files[f"templates/cart/{kind}.{locale}.j2"] = text
    return files


def write_config(directory: Path, edits: Mapping[str, Edit] | None = None) -> Path:
    """The base configuration in ``directory`` with ``edits`` applied; returns its main file."""
    files = base_files()
    for name, edit in (edits or {}).items():
        if edit is None:
            del files[name]
        elif isinstance(edit, str):
            files[name] = edit
        else:
            for old, new in [edit] if isinstance(edit, tuple) else edit:
                assert old in files[name], f"{old!r} is not in {name}"
                files[name] = files[name].replace(old, new, 1)
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return directory / "scenarios.yaml"


def problems(main: Path) -> list[Problem]:
    """Every problem of the configuration at ``main`` (empty when it loads cleanly)."""
    try:
        config = load_config(main, provider_types=validators())
    except ConfigError as exc:
        found = exc.problems
    else:
        found = config.warnings
    return [_relative(p, main.parent) for p in found]


def _relative(problem: Problem, root: Path) -> Problem:
    path = Path(problem.file)
    shown = path.relative_to(root).as_posix() if path.is_absolute() else path.as_posix()
    return Problem(shown, problem.line, problem.column, problem.message, problem.severity)
