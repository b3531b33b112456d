"""The documentation cannot drift from the code.

* docs/events.md has a section and an example for every event type, a row for every field
  of every event object with the limits the models enforce, and every example in it is
  accepted by :func:`cartflow.engine.events.parse_events`;
* its example answers are the API's answers: every status it promises, each body valid;
* README.md and docs/*.md link only to files inside the repository, and those exist.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from cartflow.engine.events import (
    CHANNELS,
    EVENT_TYPES,
    Cart,
    CartItem,
    Contact,
    Event,
    Order,
    parse_events,
)
from cartflow.workers.openapi import RESPONSES, Accepted, Problem

ROOT = Path(__file__).resolve().parents[2]
EVENTS_DOC = ROOT / "docs" / "events.md"
#: A fenced block: its language and its text.
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<text>.*?)^```", re.MULTILINE | re.DOTALL)
#: A Markdown link or image: ``[text](target)`` (targets with spaces are not ours).
LINK = re.compile(r"!?\[[^\]]*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
#: The statuses docs/events.md must show an example answer for.
STATUSES = (202, 400, 401, 405, 408, 409, 413, 422, 503)


def _doc() -> str:
    return EVENTS_DOC.read_text(encoding="utf-8")


def _section(text: str, heading: str) -> str:
    """The text under ``heading`` (a whole heading line) up to the next heading of the
    same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    following = re.compile(rf"^#{{1,{level}}} ", re.MULTILINE).search(text, start)
    return text[start : following.start() if following else len(text)]


def _blocks(text: str, lang: str) -> list[str]:
    return [m["text"] for m in FENCE.finditer(text) if m["lang"] == lang]


# -- every type: a section with an example of that type ----------------------------------------
@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_event_type_has_a_section_with_an_example(event_type: str) -> None:
    section = _section(_doc(), f"### `{event_type}`")
    examples = _blocks(section, "json")
    assert examples, f"no ```json example under ### `{event_type}`"
    types = {event.type for block in examples for event in parse_events(json.loads(block))}
    assert event_type in types


def test_there_is_no_section_for_a_type_that_does_not_exist() -> None:
    types = set(re.findall(r"^### `([\w.]+)`$", _doc(), re.MULTILINE))
    assert types == set(EVENT_TYPES)


def test_every_json_example_is_accepted_by_the_models() -> None:
    examples = _blocks(_doc(), "json")
    assert len(examples) >= len(EVENT_TYPES) + 1  # one per type, and a batch
    batches = 0
    for block in examples:
        body = json.loads(block)
        assert parse_events(body), block
        batches += "events" in body
    assert batches >= 1


# -- every field, with the limits the models enforce -------------------------------------------
MODELS: list[tuple[str, type[BaseModel]]] = [
    ("## The event", Event),
    ("### Cart", Cart),
    ("### Cart item", CartItem),
    ("### Contact", Contact),
    ("### Order", Order),
]
#: JSON Schema keywords whose number the doc's row for a field must mention.
LIMITS = ("minLength", "maxLength", "minimum", "maximum", "maxItems")


def _limits(schema: dict[str, Any]) -> set[str]:
    found = {str(int(schema[key])) for key in LIMITS if key in schema}
    for branch in schema.get("anyOf", ()):
        found |= _limits(branch)
    return found


def _rows(section: str) -> dict[str, str]:
    return {
        match[1]: match[0] for match in re.finditer(r"^\| `(\w+)` \|.*$", section, re.MULTILINE)
    }


@pytest.mark.parametrize(("heading", "model"), MODELS, ids=[name for _, name in MODELS])
def test_every_field_has_a_row_with_its_limits(heading: str, model: type[BaseModel]) -> None:
    rows = _rows(_section(_doc(), heading))
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    assert set(rows) >= set(model.model_fields), f"{heading}: fields without a row"
    for name, prop in schema["properties"].items():
        row = rows[name].replace(" ", "").replace(",", "")  # "100 000" → "100000"
        for number in _limits(prop):
            assert number in row, f"{heading} `{name}`: limit {number} not in {rows[name]!r}"
        assert ("required" in rows[name]) == (name in required), rows[name]
    assert "anything else" in _section(_doc(), heading), f"{heading}: unknown fields not said"


def test_consent_names_every_channel_and_refuses_others() -> None:
    section = _section(_doc(), "### Consent")
    for channel in CHANNELS:
        assert f"`{channel}`" in section
    assert "any other key is refused" in section


def test_links_are_said_to_be_http_only_and_batches_bounded() -> None:
    text = " ".join(_doc().split())
    assert "only absolute `http://` and `https://` URLs" in text
    assert "up to 1000" in text
    assert "Unknown fields are kept, not rejected" in text


# -- the answers -----------------------------------------------------------------------------
def _answers() -> dict[int, tuple[dict[str, str], Any]]:
    """``status → (headers, JSON body)`` of each ```http example in docs/events.md."""
    answers = {}
    for block in _blocks(_doc(), "http"):
        head, _, body = block.partition("\n\n")
        status_line, *header_lines = head.splitlines()
        status = int(status_line.split()[1])
        headers = dict(line.split(": ", 1) for line in header_lines)
        assert status not in answers, f"two examples for {status}"
        answers[status] = ({k.lower(): v for k, v in headers.items()}, json.loads(body))
    return answers


def test_every_status_has_an_example_answer_in_the_table_and_as_a_body() -> None:
    answers = _answers()
    assert set(answers) == set(STATUSES)
    table = _section(_doc(), "## Responses")
    for status in STATUSES:
        assert re.search(rf"^\| `{status} [A-Z]", table, re.MULTILINE), status


def test_example_answers_are_the_bodies_the_api_describes() -> None:
    answers = _answers()
    for status, (headers, body) in answers.items():
        assert headers["content-type"] == "application/json"
        # the models /openapi.json gives for these answers; extra fields are refused
        (Accepted if status == 202 else Problem).model_validate(body)
    # every answer the API describes for POST /v1/events has its example here
    assert {int(status) for status in RESPONSES} <= set(answers)
    assert answers[401][0]["www-authenticate"] == "Bearer"
    assert answers[405][0]["allow"] == "POST"
    assert answers[503][0]["retry-after"] == "5"


# -- links stay inside the repository --------------------------------------------------------
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _relative_links(path: Path) -> list[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))  # code is not a link
    targets = [m["target"] for m in LINK.finditer(text)]
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t) and t[0] != "#"]


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_every_relative_link_lands_on_a_file_in_the_repository(doc: Path) -> None:
    for target in _relative_links(doc):
        resolved = (doc.parent / target.split("#")[0]).resolve()
        assert resolved.is_relative_to(ROOT), f"{doc.name}: {target} leaves the repository"
        assert resolved.exists(), f"{doc.name}: {target} does not exist"


def test_the_readme_links_the_event_contract() -> None:
    links = _relative_links(ROOT / "README.md")
    assert "docs/events.md" in links
    docs = _section((ROOT / "README.md").read_text(encoding="utf-8"), "## Docs")
    assert "[docs/events.md](docs/events.md)" in docs


def test_the_link_checker_sees_links_that_leave(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "[a](../outside/README.md) [b](https://x.example) [c](#here) ![d](img.png)\n"
        "```\n[e](not-a-link.md)\n```\n"
    )
    assert _relative_links(page) == ["../outside/README.md", "img.png"]
