"""The SMTP provider against a real SMTP server on loopback (aiosmtpd on 127.0.0.1, a port
the system picks), scripted per test: a reply at MAIL, RCPT or the end of DATA, a dropped
connection, a server that never answers, AUTH.

TLS is not exercised end to end (no certificate tooling in the dev extras): ``starttls``
and ``tls`` are checked against a server that offers neither, and in validation.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from structlog.testing import capture_logs

from cartflow.engine.scenario.loader import load_config
from cartflow.engine.sending import Message
from cartflow.providers.base import ProviderSettingsError
from cartflow.providers.registry import BUILT_IN, ChannelRouter, available, validators
from cartflow.providers.smtp import REPLY_RULES, SmtpProvider, enhanced_code, rule_for

from ..scenario.sample_config import problems, write_config

ROOT = Path(__file__).resolve().parents[3]
ADDRESS = "anna.petrova@example.org"
SENDER = "Shop <shop@example.com>"
PASSWORD = "pw-Qx81mZr0Lk"
LONG_URL = "https://shop.example/unsubscribe/" + "t0k3n" * 60  # 300+ characters


class Script:
    """An aiosmtpd handler that records what arrives and answers as a test says."""

    def __init__(self) -> None:
        #: The reply to give at "MAIL", "RCPT" or "end of DATA" (default: 250).
        self.replies: dict[str, str] = {}
        #: "drop" (close without a reply) or "stall" (never reply) at a step.
        self.actions: dict[str, str] = {}
        self.envelopes: list[Envelope] = []
        self.quits = 0
        self.opened = 0
        self.closed = 0
        self.logins: list[bytes] = []

    async def _act(self, server: SMTP, step: str) -> None:
        action = self.actions.get(step)
        if action == "drop":
            assert server.transport is not None
            server.transport.abort()
            await asyncio.Event().wait()  # cancelled when the connection is lost
        elif action == "stall":
            await asyncio.sleep(30)  # cancelled when the client gives up

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        await self._act(server, "MAIL")
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return self.replies.get("MAIL", "250 2.1.0 Ok")

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        await self._act(server, "RCPT")
        envelope.rcpt_tos.append(address)
        return self.replies.get("RCPT", "250 2.1.5 Ok")

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)  # the whole message arrived: it could be queued
        await self._act(server, "end of DATA")
        return self.replies.get("end of DATA", "250 2.0.0 Ok: queued as 7F3A21")

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.quits += 1
        return "221 2.0.0 Bye"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append(data.login)
        right = data.login == b"shop" and data.password == PASSWORD.encode()
        return AuthResult(success=right, handled=False)  # handled=False: aiosmtpd answers 535


class CountingSMTP(SMTP):
    """Counts connections opened and closed (to see that every path hangs up)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.event_handler.opened += 1
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self.event_handler.closed += 1
        super().connection_lost(error)


class LoopbackController(Controller):
    """aiosmtpd's controller on a port the system picks (port 0)."""

    def factory(self) -> SMTP:
        return CountingSMTP(self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def serve(script: Script, **smtp: Any) -> Iterator[LoopbackController]:
    controller = LoopbackController(script, hostname="127.0.0.1", port=0, **smtp)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def server(script: Script) -> Iterator[LoopbackController]:
    yield from serve(script)


@pytest.fixture
def auth_server(script: Script) -> Iterator[LoopbackController]:
    """AUTH offered over plain TCP (tests only), not required."""
    yield from serve(script, authenticator=script.authenticate, auth_require_tls=False)


def smtp(port: int, **options: Any) -> SmtpProvider:
    return SmtpProvider(
        **{"host": "127.0.0.1", "port": port, "security": "none", "sender": SENDER, **options}
    )


def message(**metadata: Any) -> Message:
    return Message(
        delivery_id=uuid.uuid4().hex,
        idempotency_key="k-1",
        channel="email",
        address=ADDRESS,
        parts={
            "subject": "Ваша корзина ждёт\n  вас",
            "text": "Your cart is waiting.\n.A line that starts with a dot\n",
            "html": "<p>Your cart is <b>waiting</b>.</p>",
        },
        locale="ru",
        metadata=metadata,
    )


def raw_headers(envelope: Envelope) -> list[bytes]:
    content = envelope.original_content
    assert content is not None
    return content.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def hung_up(script: Script) -> bool:
    """Every connection the server saw was closed (the controller's own probe included)."""
    deadline = time.monotonic() + 3
    while script.closed < script.opened and time.monotonic() < deadline:
        time.sleep(0.01)
    return script.opened > 0 and script.closed == script.opened


# -- the message --------------------------------------------------------------------------------
def test_the_server_receives_the_message_with_both_parts_and_our_ids(
    server: LoopbackController, script: Script
) -> None:
    sent = message()
    result = smtp(server.port, reply_to="help@example.com").send(sent)

    assert result.status == "accepted", result
    (envelope,) = script.envelopes
    assert (envelope.mail_from, envelope.rcpt_tos) == ("shop@example.com", [ADDRESS])
    received = email.message_from_bytes(
        envelope.original_content or b"", policy=email.policy.default
    )
    assert received["From"] == SENDER
    assert received["To"] == ADDRESS
    assert received["Reply-To"] == "help@example.com"
    assert received["Subject"] == "Ваша корзина ждёт вас"  # one line, whitespace collapsed
    assert received["X-Cartflow-Delivery"] == sent.delivery_id
    # the Message-ID is the provider message id, our delivery id in its left part
    assert received["Message-ID"] == result.provider_message_id
    left, _, domain = received["Message-ID"].strip("<>").partition("@")
    assert sent.delivery_id in left and domain == "example.com"
    assert received.get_content_type() == "multipart/alternative"
    text, html = received.iter_parts()
    assert text.get_content_type() == "text/plain"
    assert text.get_content().replace("\r\n", "\n") == sent.parts["text"]  # dot kept
    assert html.get_content_type() == "text/html"
    assert html.get_content().strip() == sent.parts["html"]
    assert "List-Unsubscribe" not in received  # no unsubscribe_url in the metadata
    assert script.quits == 1 and hung_up(script)


def test_a_message_without_html_is_plain_text(server: LoopbackController, script: Script) -> None:
    sent = Message(uuid.uuid4().hex, "k", "email", ADDRESS, {"subject": "s", "text": "t"}, "en")
    assert smtp(server.port).send(sent).status == "accepted"
    received = email.message_from_bytes(script.envelopes[0].original_content or b"")
    assert received.get_content_type() == "text/plain"


def test_list_unsubscribe_headers_are_each_on_one_line(
    server: LoopbackController, script: Script
) -> None:
    # Given a long https unsubscribe URL and a mailto address
    provider = smtp(server.port, list_unsubscribe_mailto="unsubscribe@example.com")

    result = provider.send(message(unsubscribe_url=LONG_URL))

    # Then each header is one physical line of what the server received (no folding)
    assert result.status == "accepted"
    lines = raw_headers(script.envelopes[0])
    expected = f"List-Unsubscribe: <{LONG_URL}>, <mailto:unsubscribe@example.com>".encode()
    assert expected in lines
    assert len(expected) > 300
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in lines
    after = lines[lines.index(expected) + 1]
    assert not after.startswith((b" ", b"\t"))  # no continuation line
    # other headers still fold as RFC 5322 asks: no header line is longer than 998 octets
    assert all(len(line) <= 998 for line in lines if not line.startswith(b"List-Unsubscribe"))


def test_a_long_subject_still_folds(server: LoopbackController, script: Script) -> None:
    sent = Message(
        uuid.uuid4().hex, "k", "email", ADDRESS, {"subject": "word " * 60, "text": "t"}, "en"
    )
    assert smtp(server.port).send(sent).status == "accepted"
    assert any(line.startswith(b" ") for line in raw_headers(script.envelopes[0]))
    received = email.message_from_bytes(
        script.envelopes[0].original_content or b"", policy=email.policy.default
    )
    assert received["Subject"] == ("word " * 60).strip()


def test_list_unsubscribe_without_mailto_and_a_non_https_url_is_left_out(
    server: LoopbackController, script: Script
) -> None:
    provider = smtp(server.port)
    assert provider.send(message(unsubscribe_url="https://shop.example/u/1")).status == "accepted"
    assert b"List-Unsubscribe: <https://shop.example/u/1>" in raw_headers(script.envelopes[0])

    with capture_logs() as logs:
        assert (
            provider.send(message(unsubscribe_url="http://shop.example/u/1")).status == "accepted"
        )
    assert not any(
        line.startswith(b"List-Unsubscribe") for line in raw_headers(script.envelopes[1])
    )
    assert [e["event"] for e in logs] == ["smtp_unsubscribe_url_refused"]


def test_an_address_that_is_not_one_email_address_is_never_sent(
    server: LoopbackController, script: Script
) -> None:
    for address in ("", "anna", "a@b.example, c@d.example", "a@b.example\r\nBcc: c@d.example"):
        sent = Message("d1", "k", "email", address, {"subject": "s", "text": "t"}, "en")
        result = smtp(server.port).send(sent)
        assert (result.status, result.invalid_contact) == ("permanent", True), address
    assert script.envelopes == []


# -- the reply table ----------------------------------------------------------------------------
#: (step scripted, the server's reply, expected status, invalid_contact). The replies quote
#: the recipient, as real servers do: the reasons must not.
REPLIES: list[tuple[str, str, str, bool]] = [
    ("end of DATA", "250 2.0.0 Ok: queued as 7F3A21", "accepted", False),
    ("RCPT", f"550 5.1.1 <{ADDRESS}>: Recipient address rejected: User unknown", "permanent", True),
    ("RCPT", f"551 5.1.2 <{ADDRESS}>: bad destination system address", "permanent", True),
    ("RCPT", f"553 5.1.3 <{ADDRESS}>: bad destination mailbox address syntax", "permanent", True),
    ("RCPT", "550 5.1.10 Recipient address rejected: domain has null MX", "permanent", True),
    ("end of DATA", f"550 5.1.1 <{ADDRESS}>: user unknown", "permanent", True),
    (
        "MAIL",
        "553 5.1.8 <shop@example.com>: Sender address rejected: no domain",
        "permanent",
        False,
    ),
    ("end of DATA", "550 5.7.1 Message rejected as spam", "permanent", False),
    ("RCPT", f"550 5.7.1 <{ADDRESS}>: Relay access denied", "permanent", False),
    ("end of DATA", "552 5.3.4 Message size exceeds fixed limit", "permanent", False),
    ("RCPT", f"552 5.2.2 <{ADDRESS}>: mailbox full", "permanent", False),
    ("MAIL", "530 5.7.0 Authentication required", "permanent", False),
    ("RCPT", "421 4.7.0 Try again later, closing connection", "retryable", False),
    ("RCPT", f"450 4.2.0 <{ADDRESS}>: Recipient address rejected: Greylisted", "retryable", False),
    ("end of DATA", "451 4.3.0 Error: queue file write error", "retryable", False),
    ("RCPT", "452 4.5.3 Too many recipients", "retryable", False),
    ("MAIL", "454 4.7.1 Relay access temporarily denied", "retryable", False),
    ("end of DATA", "554 5.6.0 Message content rejected", "permanent", False),
    ("RCPT", f"550 Requested action not taken: mailbox {ADDRESS} unavailable", "permanent", False),
]


@pytest.mark.parametrize(("step", "reply", "status", "invalid_contact"), REPLIES)
def test_each_reply_maps_to_its_row(
    server: LoopbackController,
    script: Script,
    step: str,
    reply: str,
    status: str,
    invalid_contact: bool,
) -> None:
    # Given the server answers `reply` at `step`
    script.replies[step] = reply
    code = int(reply[:3])

    result = smtp(server.port).send(message())

    # Then the result is the row's, with the code and the enhanced code in the reason
    assert (result.status, result.invalid_contact, result.consent_withdrawn) == (
        status,
        invalid_contact,
        False,
    ), result.reason
    if status != "accepted":
        assert result.reason is not None and result.reason.startswith(f"SMTP {code}")
        assert f" at {step}" in result.reason
        enhanced = enhanced_code(code, reply[4:].encode())
        if enhanced:
            assert f"SMTP {code} {enhanced} at {step}" in result.reason
        assert ADDRESS not in result.reason and "anna" not in result.reason
    assert script.quits == 1 and hung_up(script)  # a refusal still ends with QUIT


def test_every_row_of_the_table_is_exercised() -> None:
    hit = {
        REPLY_RULES.index(rule)
        for step, reply, _, _ in REPLIES
        if (
            rule := rule_for(
                int(reply[:3]), enhanced_code(int(reply[:3]), reply[4:].encode()), step
            )
        )
    }
    assert hit == set(range(len(REPLY_RULES)))


@pytest.mark.parametrize(
    ("code", "text", "expected"),
    [
        (550, b"5.1.1 user unknown", "5.1.1"),
        (550, b"5.1.10 null MX", "5.1.10"),
        (451, b"4.3.0 try later", "4.3.0"),
        (550, b"4.1.1 class differs from the code", None),
        (550, b"user 5.1.1 not at the start", None),
        (550, b"5.1.1.1 not one", None),
    ],
)
def test_the_enhanced_code_is_read_from_the_start_of_the_reply(
    code: int, text: bytes, expected: str | None
) -> None:
    assert enhanced_code(code, text) == expected


# -- no reply at all ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_connection_refused_is_retryable() -> None:
    result = smtp(free_port()).send(message())
    assert (result.status, result.reason) == ("retryable", "connect: connection refused")


def test_a_host_that_does_not_resolve_is_retryable() -> None:
    # ".invalid" never resolves (RFC 2606): a real lookup that fails, no patching
    result = smtp(25, host="relay.cartflow.invalid", security="starttls").send(message())
    assert (result.status, result.reason) == ("retryable", "connect: DNS lookup of 'host' failed")


@pytest.mark.parametrize("step", ["MAIL", "RCPT"])
def test_a_drop_before_the_message_was_sent_is_retryable(
    server: LoopbackController, script: Script, step: str
) -> None:
    script.actions[step] = "drop"
    result = smtp(server.port).send(message())
    assert result.status == "retryable", result
    assert result.reason == f"{step}: SMTPServerDisconnected before the message was sent"
    assert script.envelopes == [] and hung_up(script)


def test_a_drop_after_the_message_was_sent_is_unknown(
    server: LoopbackController, script: Script
) -> None:
    # Given a server that receives the whole message, then closes without a reply
    script.actions["end of DATA"] = "drop"

    result = smtp(server.port).send(message())

    # Then it may have queued it: unknown, never retryable
    assert result.status == "unknown"
    assert result.reason == (
        "connection dropped after the message was sent, before the server answered "
        "(it may have queued it)"
    )
    assert len(script.envelopes) == 1 and hung_up(script)


def test_a_stall_after_the_message_was_sent_is_unknown(
    server: LoopbackController, script: Script
) -> None:
    # Given a server that receives the whole message and never answers
    script.actions["end of DATA"] = "stall"

    started = time.monotonic()
    result = smtp(server.port, timeout=0.5).send(message())

    # Then the send gives up after the timeout: unknown
    assert time.monotonic() - started < 5
    assert result.status == "unknown"
    assert result.reason is not None and result.reason.startswith("timed out after the message")
    assert len(script.envelopes) == 1 and hung_up(script)


def test_a_stall_before_the_message_was_sent_is_retryable(
    server: LoopbackController, script: Script
) -> None:
    script.actions["RCPT"] = "stall"
    result = smtp(server.port, timeout=0.5).send(message())
    assert (result.status, result.reason) == (
        "retryable",
        "RCPT: timed out before the message was sent",
    )
    assert hung_up(script)


# -- AUTH and security --------------------------------------------------------------------------
def test_auth_with_the_right_password_sends(
    auth_server: LoopbackController, script: Script
) -> None:
    result = smtp(auth_server.port, username="shop", password=PASSWORD).send(message())
    assert result.status == "accepted", result
    assert script.logins == [b"shop"] and len(script.envelopes) == 1


def test_auth_with_a_wrong_password_is_permanent_and_never_shows_it(
    auth_server: LoopbackController, script: Script
) -> None:
    result = smtp(auth_server.port, username="shop", password="wrong-" + PASSWORD).send(message())
    assert result.status == "permanent" and not result.invalid_contact
    assert result.reason is not None and result.reason.startswith("SMTP 535 5.7.8 at AUTH:")
    assert PASSWORD not in repr(result) and "shop" not in (result.reason or "")
    assert ADDRESS not in repr(result)
    assert script.envelopes == [] and hung_up(script)


def test_starttls_against_a_server_without_it_is_permanent(
    server: LoopbackController, script: Script
) -> None:
    result = smtp(server.port, security="starttls").send(message())
    assert result.status == "permanent"
    assert result.reason == "the server does not offer STARTTLS: check 'security' and 'username'"
    assert script.envelopes == [] and hung_up(script)


def test_implicit_tls_against_a_plain_server_is_retryable(
    server: LoopbackController, script: Script
) -> None:
    result = smtp(server.port, security="tls", timeout=2).send(message())
    assert result.status == "retryable"
    assert result.reason is not None and result.reason.startswith("connect: ")
    assert script.envelopes == [] and hung_up(script)


def test_a_login_the_server_does_not_offer_is_permanent(
    server: LoopbackController, script: Script
) -> None:
    result = smtp(server.port, username="shop", password=PASSWORD).send(message())
    assert result.status == "permanent"
    assert result.reason == "the server does not offer AUTH: check 'security' and 'username'"
    assert PASSWORD not in repr(result)


# -- settings -----------------------------------------------------------------------------------
BASE = {"host": "smtp.example.com", "sender": SENDER}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (BASE, []),
        ({**BASE, "port": 465, "security": "tls", "username": "u", "password": "p"}, []),
        ({**BASE, "host": "localhost", "security": "none"}, []),
        ({**BASE, "host": "::1", "security": "none"}, []),
        ({**BASE, "port": "${SMTP_PORT}", "password": "${SMTP_PASSWORD}", "username": "u"}, []),
        ({"sender": SENDER}, ["provider 'smtp' needs setting 'host'"]),
        ({"host": "smtp.example.com"}, ["provider 'smtp' needs setting 'sender'"]),
        (
            {**BASE, "password": "p"},
            ["setting 'password' of provider 'smtp' is given but 'username' is not"],
        ),
        (
            {**BASE, "username": "u"},
            ["setting 'password' of provider 'smtp' is needed when 'username' is given"],
        ),
        (
            {**BASE, "security": "none"},
            [
                "setting 'security' of provider 'smtp' can be 'none' only when 'host' is "
                "localhost, 127.0.0.1 or ::1; use starttls or tls"
            ],
        ),
        (
            {**BASE, "security": "ssl"},
            ["setting 'security' of provider 'smtp' should be 'starttls', 'tls' or 'none'"],
        ),
        (
            {**BASE, "sender": "shop at example.com"},
            [
                "setting 'sender' of provider 'smtp' must be an email address, "
                "e.g. shop@example.com or Shop <shop@example.com>"
            ],
        ),
        (
            {**BASE, "list_unsubscribe_mailto": "Unsub <u@example.com>"},
            [
                "setting 'list_unsubscribe_mailto' of provider 'smtp' must be a bare email "
                "address, e.g. unsubscribe@example.com"
            ],
        ),
        (
            {**BASE, "port": 70000},
            ["setting 'port' of provider 'smtp' must be a port number between 1 and 65535"],
        ),
        (
            {**BASE, "host": "smtp://smtp.example.com"},
            [
                "setting 'host' of provider 'smtp' must be a host name or address, "
                "e.g. smtp.example.com"
            ],
        ),
        (
            {**BASE, "pasword": "p"},
            ["unknown setting 'pasword' for provider 'smtp' — did you mean 'password'?"],
        ),
    ],
)
def test_validate_names_the_setting(options: dict[str, Any], expected: list[str]) -> None:
    assert SmtpProvider.validate(options) == expected


def test_the_password_is_secret_and_masked() -> None:
    provider = SmtpProvider(**BASE, username="shop", password=PASSWORD)
    assert SmtpProvider.secret() == frozenset({"password"})
    assert PASSWORD not in repr(provider) and "'password': '***'" in repr(provider)
    assert provider.options.port == 587 and provider.options.security == "starttls"
    assert provider.options.timeout == 10.0
    with pytest.raises(ProviderSettingsError) as refused:
        SmtpProvider(**BASE, password=PASSWORD)
    assert PASSWORD not in str(refused.value)


def test_smtp_is_a_built_in_type_for_email() -> None:
    assert BUILT_IN["smtp"] is SmtpProvider and available()["smtp"] is SmtpProvider
    assert SmtpProvider.channels == ("email",)


def _doc_snippet() -> str:
    text = (ROOT / "docs" / "providers-smtp.md").read_text(encoding="utf-8")
    start = text.index("```yaml\nproviders:\n") + len("```yaml\n")
    return text[start : text.index("```", start)]


def test_the_documented_configuration_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given scenarios.yaml with the providers block docs/providers-smtp.md shows
    providers = (
        "providers:\n  push: {type: console}\n  sms: {type: console}\n  email: {type: console}\n"
    )
    main = write_config(tmp_path / "config", {"scenarios.yaml": (providers, _doc_snippet())})
    monkeypatch.setenv("SMTP_USERNAME", "shop")
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)

    # Then it validates, and the router builds the SMTP provider with the secret from the env
    assert problems(main) == []
    config = load_config(main, provider_types=validators())
    router = ChannelRouter.from_settings(config.settings.providers)
    provider = router.by_channel["email"]
    assert isinstance(provider, SmtpProvider)
    assert provider.options.password is not None
    assert provider.options.password.get_secret_value() == PASSWORD
    assert PASSWORD not in repr(provider)
