"""The development providers: ``webhook`` signs its body the Standard Webhooks way (checked
with the ``standardwebhooks`` package a receiver would use, against a loopback server),
``file`` appends each message as one JSON line."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from cartflow.engine.sending import Message, SendResult
from cartflow.providers.base import ProviderSettingsError
from cartflow.providers.file import FileProvider
from cartflow.providers.registry import BUILT_IN
from cartflow.providers.webhook import WebhookProvider

from .fake_vendor import FakeVendor, Reply, serve

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MESSAGE = Message("d-7", "j-7:push", "push", "token-1", {"title": "Корзина", "body": "ждёт"}, "ru")


@pytest.fixture
def receiver() -> Iterator[FakeVendor]:
    yield from serve(lambda seen: Reply(200, {"id": "their-1"}))


def test_a_signed_webhook_verifies_with_the_standard_library(receiver: FakeVendor) -> None:
    provider = WebhookProvider(url=f"{receiver.url}/send", secret=SECRET)
    try:
        assert provider.send(MESSAGE) == SendResult.accepted("webhook", "their-1")
        assert provider.send(MESSAGE).status == "accepted"  # a retry of the same delivery
    finally:
        provider.close()
    first, again = receiver.posts()
    # what a receiver does: verify the raw body against the headers
    body = Webhook(SECRET).verify(first.body, first.headers)
    assert body["id"] == "d-7" and body["parts"]["title"] == "Корзина"
    assert first.headers["webhook-id"] == again.headers["webhook-id"] == "d-7"
    # a body changed on the way does not verify
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(first.body.replace(b"d-7", b"d-8"), first.headers)
    # nor does it under another secret
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 32).verify(first.body, first.headers)


def test_without_a_secret_nothing_is_signed(receiver: FakeVendor) -> None:
    provider = WebhookProvider(url=receiver.url, token="t0ken")
    try:
        provider.send(MESSAGE)
    finally:
        provider.close()
    (seen,) = receiver.posts()
    assert "webhook-signature" not in seen.headers
    assert seen.headers["authorization"] == "Bearer t0ken"


@pytest.mark.parametrize("secret", ["plain-text-secret", "whsec_not base64!", "whsec_c2hvcnQ="])
def test_a_secret_that_is_not_a_standard_webhooks_secret_is_refused(secret: str) -> None:
    assert WebhookProvider.validate({"url": "https://x.example", "secret": secret}) != []
    with pytest.raises(ProviderSettingsError, match="secret") as refused:
        WebhookProvider(url="https://x.example", secret=secret)
    assert secret not in str(refused.value)
    assert "secret" in WebhookProvider.secret()


def test_the_file_provider_appends_one_line_per_message(tmp_path: Path) -> None:
    assert BUILT_IN["file"] is FileProvider
    path = tmp_path / "outbox.jsonl"
    provider = FileProvider(path=str(path))
    threads = [threading.Thread(target=provider.send, args=(MESSAGE,)) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 20
    assert all(json.loads(line)["parts"]["body"] == "ждёт" for line in lines)


def test_a_file_that_cannot_be_written_holds_the_message(tmp_path: Path) -> None:
    provider = FileProvider(path=str(tmp_path / "missing-folder" / "outbox.jsonl"))
    result = provider.send(MESSAGE)
    assert result.status == "retryable" and "cannot write the file" in (result.reason or "")
