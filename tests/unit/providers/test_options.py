"""Each provider owns a typed settings model; problems name the setting, never the value."""

from __future__ import annotations

from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from cartflow.engine.receipts import InboundRequest
from cartflow.engine.sending import Message, SendResult
from cartflow.providers.base import Provider, ProviderSettingsError
from cartflow.providers.console import ConsoleProvider
from cartflow.providers.options import ProviderOptions, Text
from cartflow.providers.recording import RecordingProvider
from cartflow.providers.webhook import WebhookOptions, WebhookProvider

TOKEN = "tok-Zq9xK7wPvL"


@pytest.mark.parametrize(
    ("provider", "options", "expected"),
    [
        (WebhookProvider, {"url": "https://x.example/send"}, []),
        (WebhookProvider, {}, ["provider 'webhook' needs setting 'url'"]),
        (
            WebhookProvider,
            {"url": "ftp://x.example"},
            ["setting 'url' of provider 'webhook' must be an http:// or https:// URL"],
        ),
        (
            WebhookProvider,
            {"url": "https://x.example", "timeout": 0},
            [
                "setting 'timeout' of provider 'webhook' must be a number of seconds "
                "between 0 and 600, e.g. 10"
            ],
        ),
        (
            WebhookProvider,
            {"url": "https://x.example", "token": 42},
            ["setting 'token' of provider 'webhook' must be text"],
        ),
        (
            WebhookProvider,
            {"url": "https://x.example", "tokn": "x"},
            ["unknown setting 'tokn' for provider 'webhook' — did you mean 'token'?"],
        ),
        (
            ConsoleProvider,
            {"colour": "red"},
            ["unknown setting 'colour' for provider 'console' (known: stream, show_address)"],
        ),
        (
            ConsoleProvider,
            {"show_address": "yes"},
            ["setting 'show_address' of provider 'console' must be true or false"],
        ),
        (
            ConsoleProvider,
            {"stream": "stderr"},
            [
                "setting 'stream' of provider 'console' can only be given in code, "
                "not in scenarios.yaml"
            ],
        ),
        (RecordingProvider, {"path": " "}, ["setting 'path' of provider 'recording' must be text"]),
        # a value still holding ${...} is the loader's to report (the variable is unset)
        (WebhookProvider, {"url": "${CARTFLOW_UNSET}"}, []),
    ],
)
def test_validate_names_the_setting_and_what_it_must_be(
    provider: type[Provider], options: dict[str, Any], expected: list[str]
) -> None:
    assert provider.validate(options) == expected


def test_the_settings_model_gives_types_and_defaults() -> None:
    options = WebhookOptions.model_validate({"url": "https://x.example", "timeout": "5"})
    assert options.timeout == 5.0
    assert options.token is None
    assert WebhookOptions.model_validate({"url": "https://x.example"}).timeout == 10.0


def test_a_secret_setting_is_masked_in_repr_and_logs_but_used() -> None:
    # Given a webhook provider with a token
    provider = WebhookProvider(url="https://x.example/send", token=TOKEN)

    # Then the token is declared secret, never printed, and still sent
    assert WebhookProvider.secret() == frozenset({"token", "secret"})
    assert TOKEN not in repr(provider)
    assert TOKEN not in repr(provider.options)
    with structlog.testing.capture_logs() as logs:
        structlog.get_logger().info("provider_built", provider=provider, options=provider.options)
    assert TOKEN not in str(logs)
    assert isinstance(provider.options.token, SecretStr)
    assert provider.client.headers["authorization"] == f"Bearer {TOKEN}"
    provider.close()


def test_building_from_bad_settings_raises_without_the_value() -> None:
    with pytest.raises(ProviderSettingsError, match="setting 'timeout'") as refused:
        WebhookProvider(url="https://x.example", timeout=TOKEN)
    assert TOKEN not in str(refused.value)


class _Old(Provider):
    """A plug-in written before the hooks existed: it only sends."""

    name = "old"
    channels = ("sms",)

    class Options(ProviderOptions):
        sender_id: Text

    options_model = Options

    def send(self, message: Message) -> SendResult:
        return SendResult.accepted(self.name, "1")


def test_hooks_do_nothing_unless_a_provider_has_them() -> None:
    provider = _Old(sender_id="SHOP")
    assert provider.status("1") is None
    assert provider.parse_receipt(InboundRequest("POST", "/receipts", body=b"{}")) is None
    assert _Old.validate({}) == ["provider 'old' needs setting 'sender_id'"]
