"""``/openapi.json`` describes ``POST /v1/events`` as it is: the request body (one event or
a batch, from the models that validate them), the bearer scheme, and every answer with
its body — and the real answers match it. Served by uvicorn on loopback, as in production.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cartflow.engine.events import MAX_BATCH, Batch, Event
from cartflow.workers.api import MAX_BODY
from cartflow.workers.openapi import Accepted, Problem
from cartflow.workers.runtime import Runtime
from cartflow.workers.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
KEY = "openapi-test-key"
#: What each status carries, by schema name.
BODIES = {
    202: "Accepted",
    400: "Problem",
    401: "Problem",
    408: "Problem",
    409: "Problem",
    413: "Problem",
    422: "Problem",
    503: "Problem",
}
EVENT = {
    "id": "evt_1",
    "type": "cart.updated",
    "at": "2026-11-22T10:00:00Z",
    "customer_id": "cust_1",
    "cart": {"id": "cart_1", "currency": "RUB", "items": [{"sku": "S", "price": 4990}]},
}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    folder = tmp_path_factory.mktemp("openapi")
    settings = Settings(
        database_url=f"sqlite:///{folder / 'api.db'}",
        config_path=str(ROOT / "scenarios.yaml"),
        api_keys=(KEY,),
    )
    runtime = Runtime(settings, embedded=True)  # no workers: events are only stored
    try:
        port = runtime.start_api("127.0.0.1", 0)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        runtime.stop()


@pytest.fixture(scope="module")
def document(api: httpx.Client) -> dict[str, Any]:
    response = api.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def test_the_request_body_is_one_event_or_a_batch(document: dict[str, Any]) -> None:
    operation = document["paths"]["/v1/events"]["post"]
    body = operation["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {
        "oneOf": [_ref("Event"), _ref("Batch")]
    }
    schemas = document["components"]["schemas"]
    # the schemas are the models' own, objects and all
    assert set(schemas["Event"]["properties"]) == set(Event.model_fields)
    assert schemas["Event"]["additionalProperties"] is True  # unknown fields are kept
    events = schemas["Batch"]["properties"]["events"]
    assert events["items"] == _ref("Event") and events["maxItems"] == MAX_BATCH
    assert set(schemas["Batch"]["properties"]) == set(Batch.model_fields)
    for name in ("Cart", "CartItem", "Contact", "Order"):
        assert name in schemas
    assert set(schemas["Event"]["properties"]["type"]["enum"]) == set(
        Event.model_json_schema()["properties"]["type"]["enum"]
    )


def test_the_api_key_is_an_http_bearer_scheme(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"]["bearer"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    assert document["paths"]["/v1/events"]["post"]["security"] == [{"bearer": []}]


@pytest.mark.parametrize(("status", "schema"), BODIES.items(), ids=[str(s) for s in BODIES])
def test_each_answer_is_described_with_its_body(
    document: dict[str, Any], status: int, schema: str
) -> None:
    response = document["paths"]["/v1/events"]["post"]["responses"][str(status)]
    assert response["description"]
    assert response["content"]["application/json"]["schema"] == _ref(schema)


def test_the_answer_bodies_are_described_field_by_field(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    accepted = schemas["Accepted"]
    assert set(accepted["required"]) == {"accepted", "duplicates"}
    problem = schemas["Problem"]
    assert problem["required"] == ["error"]
    assert problem["properties"]["errors"]["items"] == _ref("FieldError")
    assert set(schemas["FieldError"]["required"]) == {"loc", "msg"}
    responses = document["paths"]["/v1/events"]["post"]["responses"]
    assert "WWW-Authenticate" in responses["401"]["headers"]
    assert "Retry-After" in responses["503"]["headers"]


def test_docs_page_is_served_and_reads_the_document(api: httpx.Client) -> None:
    response = api.get("/docs")
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    assert "swagger-ui" in response.text.lower() and "/openapi.json" in response.text


# -- the real answers are the described ones ------------------------------------------------------
def _post(api: httpx.Client, content: bytes, key: str | None = KEY) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return api.post("/v1/events", content=content, headers=headers)


def test_real_answers_match_the_described_bodies(
    api: httpx.Client, document: dict[str, Any]
) -> None:
    import json

    described = {int(s) for s in document["paths"]["/v1/events"]["post"]["responses"]}
    event = json.dumps(EVENT).encode()
    answers = {
        "stored": _post(api, event),
        "duplicate": _post(api, event),
        "not json": _post(api, b'{"id": '),
        "no key": _post(api, event, key=None),
        "conflict": _post(api, json.dumps({**EVENT, "customer_id": "cust_2"}).encode()),
        "too large": _post(api, b" " * (MAX_BODY + 1)),
        "invalid": _post(api, json.dumps({"events": [{"id": "e", "type": "nope"}]}).encode()),
        # a body the schema refuses is still read by hand: our 422, not FastAPI's
        "a list": _post(api, b"[]"),
    }
    expected = {
        "stored": 202,
        "duplicate": 202,
        "not json": 400,
        "no key": 401,
        "conflict": 409,
        "too large": 413,
        "invalid": 422,
        "a list": 422,
    }
    assert {case: r.status_code for case, r in answers.items()} == expected
    for case, response in answers.items():
        assert response.status_code in described, case
        model = Accepted if response.status_code == 202 else Problem
        model.model_validate(response.json())  # no field missing, none extra
    assert answers["duplicate"].json() == {"accepted": 0, "duplicates": 1}
    assert answers["a list"].json()["errors"][0]["loc"] == "body"
