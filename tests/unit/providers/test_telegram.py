"""The Telegram provider against a fake Bot API on loopback (real sockets, no patching):
the request it makes, what each answer means (table-driven, the description read before
the code), and updates checked against the webhook's secret token."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cartflow.engine.inbound import Inbound
from cartflow.engine.links import Links
from cartflow.engine.receipts import InboundRequest, ReceiptRejected
from cartflow.engine.sending import Message, SendResult
from cartflow.providers.base import ProviderSettingsError
from cartflow.providers.registry import BUILT_IN
from cartflow.providers.telegram import DESCRIPTIONS, HTTP_STATUSES, TelegramProvider

from .fake_vendor import CLOSE, HANG, FakeVendor, Reply, Seen, serve

BOT_TOKEN = "7123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
SECRET = "hook-secret_Qw8Zr2"
CHAT = "123456789"
TEXT = "Ваша корзина ждёт: https://shop.example/cart/9"
MESSAGE = Message("d-42", "k-42", "messenger", CHAT, {"text": TEXT}, "ru")


def sent(seen: Seen) -> Reply:
    """The Bot API's answer to a sendMessage that went out."""
    chat = seen.json()["chat_id"] if seen.body else CHAT
    result = {"message_id": 321, "date": 1764000000, "chat": {"id": int(chat), "type": "private"}}
    return Reply(200, {"ok": True, "result": result})


def refused(code: int, description: str, **parameters: Any) -> Reply:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return Reply(code, body)


@pytest.fixture
def bot() -> Iterator[FakeVendor]:
    yield from serve(sent)


@pytest.fixture
def build() -> Iterator[Callable[..., TelegramProvider]]:
    built: list[TelegramProvider] = []

    def make(**settings: Any) -> TelegramProvider:
        built.append(TelegramProvider(**settings))
        return built[-1]

    yield make
    for provider in built:
        provider.close()


@pytest.fixture
def provider(bot: FakeVendor, build: Callable[..., TelegramProvider]) -> TelegramProvider:
    return build(
        bot_token=BOT_TOKEN,
        bot_username="shop_bot",
        webhook_secret=SECRET,
        base_url=bot.url,
        timeout=1,
    )


def assert_clean(result: SendResult) -> None:
    assert result.reason
    for secret in (CHAT, BOT_TOKEN, "blocked by the user"):
        assert secret not in result.reason


# -- the request ----------------------------------------------------------------------------
def test_a_send_is_the_documented_send_message_request(
    bot: FakeVendor, provider: TelegramProvider
) -> None:
    result = provider.send(MESSAGE)

    assert result == SendResult.accepted("telegram", f"{CHAT}:321")
    (seen,) = bot.seen
    assert seen.method == "POST"
    assert seen.path == f"/bot{BOT_TOKEN}/sendMessage"
    assert seen.headers["content-type"] == "application/json"
    assert seen.json() == {
        "chat_id": CHAT,
        "text": TEXT,
        "link_preview_options": {"is_disabled": True},
    }
    assert "parse_mode" not in seen.json()  # plain text: nothing rendered is markup


def test_the_type_is_built_in_and_its_secrets_are_never_printed(
    provider: TelegramProvider,
) -> None:
    assert BUILT_IN["telegram"] is TelegramProvider
    assert TelegramProvider.secret() == {"bot_token", "webhook_secret"}
    assert BOT_TOKEN not in repr(provider) and SECRET not in repr(provider)
    with pytest.raises(ProviderSettingsError, match="bot_token") as refused_:
        TelegramProvider(bot_tokn=BOT_TOKEN)
    assert BOT_TOKEN not in str(refused_.value)


# -- what each answer means -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("reply", "status", "invalid", "withdrawn"),
    [
        (refused(403, "Forbidden: bot was blocked by the user"), "permanent", False, True),
        (refused(403, "Forbidden: user is deactivated"), "permanent", True, False),
        (
            refused(403, "Forbidden: bot can't initiate conversation with a user"),
            "permanent",
            True,
            False,
        ),
        (refused(400, "Bad Request: chat not found"), "permanent", True, False),
        (refused(400, "Bad Request: PEER_ID_INVALID"), "permanent", True, False),
        (refused(400, "Bad Request: message is too long"), "permanent", False, False),
        (refused(400, "Bad Request: can't parse entities"), "permanent", False, False),
        (refused(401, "Unauthorized"), "permanent", False, False),
        (refused(404, "Not Found"), "permanent", False, False),
        (
            refused(429, "Too Many Requests: retry after 34", retry_after=34),
            "retryable",
            False,
            False,
        ),
        (refused(503, "Service Unavailable"), "retryable", False, False),
        (refused(500, "Internal Server Error"), "unknown", False, False),
        (Reply(502, "<html>Bad Gateway</html>"), "unknown", False, False),
        (Reply(200, {"ok": True, "result": {}}), "unknown", False, False),
    ],
)
def test_each_answer_maps_to_one_result(
    bot: FakeVendor,
    provider: TelegramProvider,
    reply: Reply,
    status: str,
    invalid: bool,
    withdrawn: bool,
) -> None:
    bot.script = [reply]
    result = provider.send(MESSAGE)
    assert (result.status, result.invalid_contact, result.consent_withdrawn) == (
        status,
        invalid,
        withdrawn,
    )
    assert_clean(result)


def test_a_429_waits_as_long_as_telegram_says(bot: FakeVendor, provider: TelegramProvider) -> None:
    bot.script = [refused(429, "Too Many Requests: retry after 34", retry_after=34)]
    assert provider.send(MESSAGE).retry_after == 34


def test_every_listed_description_and_status_is_tested() -> None:
    # the table above covers the tables in the module (a new row needs a case)
    covered = {
        "bot was blocked by the user",
        "user is deactivated",
        "chat not found",
        "bot can't initiate conversation",
        "peer_id_invalid",
        "message is too long",
    }
    listed = {phrase for phrase, _, _ in DESCRIPTIONS}
    assert listed - covered <= {"bot was kicked", "message text is empty"}
    assert set(HTTP_STATUSES) == {401, 404, 429, 503}


def test_a_request_that_never_left_is_retryable(
    build: Callable[..., TelegramProvider], nothing_listening: str
) -> None:
    provider = build(bot_token=BOT_TOKEN, base_url=nothing_listening, timeout=1)
    assert provider.send(MESSAGE).status == "retryable"


@pytest.mark.parametrize("failure", [CLOSE, HANG])
def test_a_request_lost_after_it_left_is_unknown_and_final(
    bot: FakeVendor, provider: TelegramProvider, failure: str
) -> None:
    bot.script = [failure]
    result = provider.send(MESSAGE)
    assert result.status == "unknown"
    assert not provider.can_look_up()  # no lookup in the Bot API: never sent again


# -- updates --------------------------------------------------------------------------------
def update(body: dict[str, Any], secret: str | None = SECRET) -> InboundRequest:
    headers = {"content-type": "application/json"}
    if secret is not None:
        headers["x-telegram-bot-api-secret-token"] = secret
    return InboundRequest(
        "POST", "/v1/providers/telegram/inbound", headers, {}, json.dumps(body).encode()
    )


def text_update(text: str, chat_type: str = "private", update_id: int = 1001) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": 5,
            "from": {"id": int(CHAT), "is_bot": False, "first_name": "Анна"},
            "chat": {"id": int(CHAT), "type": chat_type, "first_name": "Анна"},
            "date": 1764000000,
            "text": text,
        },
    }


def blocked_update(status: str = "kicked") -> dict[str, Any]:
    return {
        "update_id": 1002,
        "my_chat_member": {
            "chat": {"id": int(CHAT), "type": "private"},
            "from": {"id": int(CHAT), "is_bot": False, "first_name": "Анна"},
            "date": 1764000100,
            "old_chat_member": {"user": {"id": 1, "is_bot": True}, "status": "member"},
            "new_chat_member": {"user": {"id": 1, "is_bot": True}, "status": status},
        },
    }


def test_a_private_message_is_an_inbound_text(provider: TelegramProvider) -> None:
    (found,) = provider.parse_inbound(update(text_update("/stop")))
    assert (found.channel, found.sender, found.text, found.message_id, found.kind) == (
        "messenger",
        CHAT,
        "/stop",
        "1001",
        "message",
    )
    assert CHAT not in repr(found)


def test_blocking_the_bot_is_an_inbound_block(provider: TelegramProvider) -> None:
    (found,) = provider.parse_inbound(update(blocked_update()))
    assert (found.sender, found.kind) == (CHAT, "blocked")
    assert provider.parse_inbound(update(blocked_update("member"))) == []  # unblocked


def test_group_chats_and_other_updates_give_nothing(provider: TelegramProvider) -> None:
    assert provider.parse_inbound(update(text_update("/stop", chat_type="group"))) == []
    assert provider.parse_inbound(update({"update_id": 7, "edited_message": {}})) == []


@pytest.mark.parametrize("secret", [None, "", "hook-secret_Qw8Zr3"])
def test_an_update_without_the_secret_token_is_refused(
    provider: TelegramProvider, secret: str | None
) -> None:
    with pytest.raises(ReceiptRejected, match="secret token"):
        provider.parse_inbound(update(text_update("/stop"), secret=secret))


def test_without_a_webhook_secret_every_update_is_refused(
    bot: FakeVendor, build: Callable[..., TelegramProvider]
) -> None:
    provider = build(bot_token=BOT_TOKEN, base_url=bot.url)
    with pytest.raises(ReceiptRejected, match="webhook_secret is not set"):
        provider.parse_inbound(update(text_update("/stop")))


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"message": {}}'])
def test_an_unreadable_update_is_a_value_error(provider: TelegramProvider, body: bytes) -> None:
    request = InboundRequest("POST", "/", {"x-telegram-bot-api-secret-token": SECRET}, {}, body)
    with pytest.raises(ValueError, match="telegram"):
        provider.parse_inbound(request)


# -- the deep link --------------------------------------------------------------------------
def test_the_start_link_carries_a_signed_token_telegram_accepts(
    provider: TelegramProvider,
) -> None:
    links = Links("https://cf.shop.example", b"0123456789abcdef-secret")
    token = links.messenger("9f2c4e7a1b3d4c5e8f9a0b1c2d3e4f5a")
    url = provider.link(token)
    assert url == f"https://t.me/shop_bot?start={token}"
    assert len(token) <= 64 and all(c.isalnum() or c in "_-" for c in token)
    assert links.messenger_profile(token) == "9f2c4e7a1b3d4c5e8f9a0b1c2d3e4f5a"
    forged = "0" + token[1:]
    assert links.messenger_profile(forged) is None
    other = Links("https://cf.shop.example", b"another-secret-of-16+")
    assert other.messenger_profile(token) is None


def test_no_link_without_a_bot_username(
    bot: FakeVendor, build: Callable[..., TelegramProvider]
) -> None:
    assert build(bot_token=BOT_TOKEN, base_url=bot.url).link("abc") is None


def test_inbound_repr_hides_the_chat() -> None:
    found = Inbound("telegram", "messenger", CHAT, "hello", "1")
    assert CHAT not in repr(found) and "hello" not in repr(found)
