"""``POST /v1/events`` refuses bad input with a clear 4xx — never a 5xx (architecture §5, §7).

A real API (uvicorn on a free port) in front of a real PostgreSQL; no workers run, so
"nothing half-applied" is read straight from the ``events`` table.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, select

from cartflow.engine.store.models import RawEvent
from cartflow.workers.runtime import Runtime

from .conftest import (
    API_KEY,
    PostgresServer,
    RedisServer,
    auth,
    cart_event,
    fresh_database,
    make_settings,
    write_config,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def api_server(
    postgres: PostgresServer, redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[httpx.Client, Runtime]]:
    """One API for the module (starting one per case would triple the module's time)."""
    config = write_config(tmp_path_factory.mktemp("api-config"), "http://127.0.0.1:9/send")
    with fresh_database(postgres) as url:
        runtime = Runtime(make_settings(url, redis.url, config), embedded=False)
        try:
            port = runtime.start_api("127.0.0.1", 0)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                yield client, runtime
        finally:
            runtime.stop()


@pytest.fixture
def api(api_server: tuple[httpx.Client, Runtime]) -> tuple[httpx.Client, Runtime]:
    """The module's API with an empty ``events`` table."""
    _, runtime = api_server
    with runtime.db.transaction() as session:
        session.execute(delete(RawEvent))
    return api_server


def stored(runtime: Runtime) -> int:
    with runtime.db.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(RawEvent)) or 0)


def event(**changes: Any) -> dict[str, Any]:
    body = cart_event("cart_1", at=AT, zone="Europe/Moscow", event_id="evt_1")
    body.update(changes)
    return body


def without_price() -> dict[str, Any]:
    body = event()
    del body["cart"]["items"][0]["price"]
    return body


def with_item(**changes: Any) -> dict[str, Any]:
    body = event()
    body["cart"]["items"][0].update(changes)
    return body


def post_raw(
    client: httpx.Client, content: bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    return client.post(
        "/v1/events",
        content=content,
        headers={"Content-Type": "application/json", **(auth() if headers is None else headers)},
    )


def as_json(body: Any) -> bytes:
    return json.dumps(body).encode()


# -- 400: not JSON --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "content",
    [b'{"id": "evt_1", ', b"", b"\xff\xfe{}", b"cart.updated"],
    ids=["truncated", "empty", "not-utf8", "bare-word"],
)
def test_a_body_that_is_not_json_is_400_and_stores_nothing(
    api: tuple[httpx.Client, Runtime], content: bytes
) -> None:
    client, runtime = api
    # When
    response = post_raw(client, content)
    # Then
    assert response.status_code == 400, response.text
    answer = response.json()
    assert "not valid JSON" in answer["error"]
    assert answer["errors"][0]["loc"] == "body"
    assert stored(runtime) == 0


# -- 422: JSON, but not a valid event, with the dotted field path ------------------------------
def _batch(*events: dict[str, Any]) -> dict[str, Any]:
    return {"events": list(events)}


INVALID: list[tuple[str, Any, str]] = [
    # (case id, body, expected loc)
    ("missing-price", without_price(), "cart.items.0.price"),
    (
        "missing-price-in-batch",
        _batch(event(id="evt_ok"), without_price()),
        "events.1.cart.items.0.price",
    ),
    (
        "negative-price",
        event(cart={"id": "c", "items": [{"sku": "S", "price": -1}]}),
        "cart.items.0.price",
    ),
    (
        "nan-price",
        event(cart={"id": "c", "items": [{"sku": "S", "price": "NaN"}]}),
        "cart.items.0.price",
    ),
    ("missing-id", {k: v for k, v in event().items() if k != "id"}, "id"),
    ("unknown-type", event(type="cart.abandoned"), "type"),
    ("naive-timestamp", event(at="2026-11-22T10:00:00"), "at"),
    ("not-a-timestamp", event(at="yesterday"), "at"),
    (
        "lowercase-currency",
        event(cart={"id": "c", "currency": "usd", "items": []}),
        "cart.currency",
    ),
    ("unknown-zone", event(contact={"timezone": "Mars/Olympus_Mons"}), "contact.timezone"),
    ("bad-email", event(contact={"email": "anna"}), "contact.email"),
    (
        "zero-quantity",
        event(cart={"id": "c", "items": [{"sku": "S", "price": 1, "quantity": 0}]}),
        "cart.items.0.quantity",
    ),
    ("unknown-consent-channel", event(consent={"fax": True}), "consent.fax.[key]"),
    (
        "no-identity",
        {k: v for k, v in event().items() if k not in ("anonymous_id", "customer_id")},
        "body",
    ),
    ("cart-updated-without-cart", {k: v for k, v in event().items() if k != "cart"}, "body"),
    ("empty-batch", {"events": []}, "events"),
    ("batch-not-a-list", {"events": {"id": "evt_1"}}, "events"),
    ("too-many-events", {"events": [event(id=f"evt_{i}") for i in range(1001)]}, "events"),
    # links a message would carry: http(s) only
    (
        "javascript-item-url",
        _batch(with_item(url="javascript:alert(document.cookie)")),
        "events.0.cart.items.0.url",
    ),
    (
        "data-image",
        with_item(image="data:text/html,<script>alert(1)</script>"),
        "cart.items.0.image",
    ),
    (
        "javascript-cart-url",
        event(cart={"id": "c", "url": " JavaScript:alert(1)", "items": []}),
        "cart.url",
    ),
    ("relative-cart-url", event(cart={"id": "c", "url": "/cart/c", "items": []}), "cart.url"),
    # NaN / Infinity (json.dumps writes them; json.loads would accept them)
    ("nan-in-unknown-field", event(extra=float("nan")), "extra"),
    (
        "infinity-price-in-batch",
        _batch(with_item(price=float("inf"))),
        "events.0.cart.items.0.price",
    ),
    ("minus-infinity-nested", event(shop={"scores": [1, float("-inf")]}), "shop.scores.1"),
    ("a-list", [event()], "body"),
    ("a-string", "cart.updated", "body"),
    ("null", None, "body"),
]


@pytest.mark.parametrize(
    ("body", "loc"), [(body, loc) for _, body, loc in INVALID], ids=[case for case, _, _ in INVALID]
)
def test_an_invalid_event_is_422_with_the_field_path_and_nothing_is_stored(
    api: tuple[httpx.Client, Runtime], body: Any, loc: str
) -> None:
    client, runtime = api
    # When
    response = post_raw(client, as_json(body))
    # Then: a 422 naming the field, and not one event of the request stored
    assert response.status_code == 422, response.text
    answer = response.json()
    locs = [error["loc"] for error in answer["errors"]]
    assert loc in locs, answer
    assert all(error["msg"] for error in answer["errors"])
    assert stored(runtime) == 0


@pytest.mark.parametrize(
    ("content", "loc", "name"),
    [
        (b'{"events": [' + as_json(event())[:-1] + b', "n": NaN}]}', "events.0.n", "NaN"),
        (as_json(event())[:-1] + b', "w": 1e999}', "w", "Infinity"),
        (as_json(event())[:-1] + b', "w": [-Infinity]}', "w.0", "-Infinity"),
    ],
    ids=["nan-token", "overflowing-float", "minus-infinity-token"],
)
def test_nan_and_infinity_are_refused_not_stored_as_null(
    api: tuple[httpx.Client, Runtime], content: bytes, loc: str, name: str
) -> None:
    client, runtime = api
    response = post_raw(client, content)
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {"loc": loc, "msg": f"{name} is not a JSON number; send a finite number or null"}
    ]
    assert stored(runtime) == 0


def test_a_link_error_says_only_http_urls_are_accepted(api: tuple[httpx.Client, Runtime]) -> None:
    client, runtime = api
    response = post_raw(client, as_json(_batch(with_item(url="javascript:alert(1)"))))
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert error["loc"] == "events.0.cart.items.0.url"
    assert "only http(s) URLs are accepted" in error["msg"]
    assert stored(runtime) == 0


def test_one_bad_event_refuses_the_whole_batch(api: tuple[httpx.Client, Runtime]) -> None:
    client, runtime = api
    # Given a batch of two good events and one bad one in the middle
    body = _batch(event(id="evt_a"), event(id="evt_b", at="not a time"), event(id="evt_c"))
    # When
    response = post_raw(client, as_json(body))
    # Then
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["errors"]] == ["events.1.at"]
    assert stored(runtime) == 0


def test_unknown_fields_are_kept_not_rejected(api: tuple[httpx.Client, Runtime]) -> None:
    client, runtime = api
    body = event(shop_extra={"campaign": "bf-2026", "ab": [1, 2]})
    body["cart"]["items"][0]["colour"] = "red"
    response = post_raw(client, as_json(body))
    assert response.status_code == 202, response.text
    with runtime.db.sessions() as session:
        raw = session.get(RawEvent, "evt_1")
        assert raw is not None
        assert raw.payload["shop_extra"] == {"campaign": "bf-2026", "ab": [1, 2]}
        assert raw.payload["cart"]["items"][0]["colour"] == "red"


def test_unknown_keys_beside_a_batch_are_not_rejected(api: tuple[httpx.Client, Runtime]) -> None:
    client, runtime = api
    response = post_raw(client, as_json({"events": [event()], "source": "shop", "v": 2}))
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 1, "duplicates": 0}
    assert stored(runtime) == 1


def test_a_body_over_the_size_limit_is_413(api: tuple[httpx.Client, Runtime]) -> None:
    client, runtime = api
    body = event(padding="x" * (5 * 1024 * 1024 + 1))
    response = post_raw(client, as_json(body))
    assert response.status_code == 413, response.text
    assert stored(runtime) == 0


def test_a_chunked_body_over_the_size_limit_is_413(api: tuple[httpx.Client, Runtime]) -> None:
    client, runtime = api
    # Given a body without Content-Length, so the cap can only be applied while reading
    chunk = b" " * (256 * 1024)

    def chunks() -> Iterator[bytes]:
        yield as_json(event())[:-1] + b', "padding": "'
        for _ in range(5 * 4 + 1):
            yield chunk
        yield b'"}'

    # When
    response = client.post(
        "/v1/events", content=chunks(), headers={"Content-Type": "application/json", **auth()}
    )
    # Then
    assert response.status_code == 413, response.text
    assert "body larger than" in response.json()["error"]
    assert stored(runtime) == 0


# -- 405: the method is named in Allow -------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/v1/events", "POST"),
        ("PUT", "/v1/events", "POST"),
        ("DELETE", "/v1/events", "POST"),
        ("POST", "/healthz", "GET"),
    ],
)
def test_a_wrong_method_is_405_with_an_allow_header(
    api: tuple[httpx.Client, Runtime], method: str, path: str, allow: str
) -> None:
    client, _ = api
    response = client.request(method, path, headers=auth())
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == allow
    assert response.json() == {"error": "Method Not Allowed"}


# -- 401: no or wrong key --------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {API_KEY}x"},
        {"Authorization": f"Basic {API_KEY}"},
        {"Authorization": "Bearer"},
        {"Authorization": API_KEY},
    ],
    ids=["none", "wrong", "longer", "basic-scheme", "empty-token", "no-scheme"],
)
@pytest.mark.parametrize(
    "content", [as_json(event()), b"{not json"], ids=["valid-body", "invalid-body"]
)
def test_no_or_wrong_api_key_is_401_before_the_body_is_read(
    api: tuple[httpx.Client, Runtime], headers: dict[str, str], content: bytes
) -> None:
    client, runtime = api
    response = post_raw(client, content, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Bearer" in response.json()["error"]
    assert stored(runtime) == 0


def test_the_right_key_is_202(api: tuple[httpx.Client, Runtime]) -> None:
    client, runtime = api
    response = post_raw(client, as_json(event()), headers={"Authorization": f"bearer  {API_KEY}"})
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 1, "duplicates": 0}
    assert stored(runtime) == 1


# -- never a 5xx: inputs that reach past validation ---------------------------------------
NEVER_5XX: list[Any] = [
    pytest.param(
        b'{"id": "evt_1", "type": "cart.updated", "n": ' + b"1" * 5000 + b"}",
        id="integer-with-5000-digits",
    ),
    pytest.param(
        b"[" * 100_000 + b"]" * 100_000,
        id="deeply-nested-json",
    ),
    pytest.param(
        as_json(event(id="evt\u00001")),
        id="nul-in-event-id",
    ),
    pytest.param(
        as_json(event(note="a\u0000b")),
        id="nul-in-unknown-field",
    ),
    pytest.param(
        as_json(event(at="9999-12-31T23:00:00-14:00")),
        id="timestamp-past-year-9999-in-utc",
    ),
    pytest.param(
        b'{"id": "evt_1", "type": "cart.updated", "at": "2026-11-22T10:00:00Z", '
        b'"customer_id": "c", "cart": {"id": "c", "items": []}, "extra": Infinity}',
        id="infinity-in-unknown-field",
    ),
    pytest.param(as_json(event(at="0001-01-01T00:00:00+00:00")), id="year-one"),
    pytest.param(as_json(event(id="x" * 201)), id="id-too-long"),
    pytest.param(as_json(event(cart={"id": "c" * 201, "items": []})), id="cart-id-too-long"),
    pytest.param(as_json(event(customer_id="c" * 5000)), id="customer-id-too-long"),
]


@pytest.mark.parametrize("content", NEVER_5XX)
def test_odd_input_is_never_a_5xx(api: tuple[httpx.Client, Runtime], content: bytes) -> None:
    client, _ = api
    response = post_raw(client, content)
    if response.status_code >= 500:
        # The server thread is still logging the exception's traceback. On CPython 3.11
        # the ast module's recursion bookkeeping is shared between threads, and both
        # traceback formatting there and pytest's failure report here call ast.parse:
        # let the server finish, and report without a Python traceback.
        time.sleep(0.5)
        pytest.fail(f"HTTP {response.status_code}: {response.text[:300]}", pytrace=False)
