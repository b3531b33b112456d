"""Requests generated from ``/openapi.json`` (schemathesis): whatever a client sends that
the document allows — or breaks on purpose — the API never answers 5xx, and its answers
are the documented ones (status, content type, body schema). The real app on loopback,
SQLite, no workers.

Plain hypothesis over ``operation.as_strategy()``: schemathesis' own lazy pytest loader
(``schemathesis.pytest.from_fixture``) reads a private pytest attribute that pytest 9
no longer has."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cartflow.workers.runtime import Runtime
from cartflow.workers.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
KEY = "property-test-key"
#: Examples per generation mode: enough to reach past validation, a few seconds in all.
EXAMPLES = 100


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("properties")
    settings_ = Settings(
        database_url=f"sqlite:///{folder / 'api.db'}",
        config_path=str(ROOT / "scenarios.yaml"),
        api_keys=(KEY,),
    )
    runtime = Runtime(settings_, embedded=True)
    try:
        yield f"http://127.0.0.1:{runtime.start_api('127.0.0.1', 0)}"
    finally:
        runtime.stop()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_generated_request_gets_a_5xx(api_url: str, mode: GenerationMode) -> None:
    # Given the operation as /openapi.json describes it
    schema = schemathesis.openapi.from_url(f"{api_url}/openapi.json")
    operation = schema["/v1/events"]["POST"]

    # When requests that fit it (positive) or break it (negative) are sent, with the key
    @given(operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,  # the same requests on every run: a failure here is reproducible
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def send(case: schemathesis.Case) -> None:
        # Then no answer is a 5xx, and each is a documented one
        case.call_and_validate(
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=10,
            checks=[
                not_a_server_error,
                status_code_conformance,
                content_type_conformance,
                response_schema_conformance,
            ],
        )

    send()
