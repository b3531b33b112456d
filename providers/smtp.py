"""Sends email through an SMTP relay (the shop's own server, or a vendor's SMTP endpoint),
with the standard library's :mod:`smtplib`.

One connection per send: connect, ``STARTTLS`` or implicit TLS, ``AUTH`` when a username
is set, ``MAIL FROM``, ``RCPT TO``, ``DATA``, ``QUIT`` — closed on every path. Simple and
never stale (no NOOP-before-reuse); a relay that counts connections may want a local
queueing relay in front.

The message is a ``text/plain`` part with an optional ``text/html`` alternative
(``multipart/alternative``). Its ``Message-ID`` (made with :func:`email.utils.make_msgid`,
the delivery id in its left part, the sender's domain on the right) is the provider
message id; ``X-Cartflow-Delivery`` carries the delivery id too. When the message's
metadata has an https ``unsubscribe_url``, ``List-Unsubscribe`` and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058) are added, each on one
line (:class:`WirePolicy` never folds them: a relay's DKIM signature over a folded header
can break).

Reply mapping: :data:`REPLY_RULES`, first matching row wins, on the reply code, the
enhanced status code (RFC 3463) at the start of the reply text and the step it answered.
Failures without a reply: refused, DNS, timeout or a drop before the end of ``DATA`` are
retryable; a timeout or drop after the message's final ``.`` was sent and before the
server's answer is ``unknown`` — the server may have queued it, so it is never resent.
SMTP has no way to ask later (:meth:`status` stays ``None``): an ``unknown`` send is final.

Reasons carry the step, the reply code and the enhanced code, never the server's text
(it usually quotes the recipient), the recipient address or the password.
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import formatdate, make_msgid
from typing import Any, Literal
from urllib.parse import urlsplit

import structlog
from pydantic import Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from cartflow.engine.sending import Message, SendResult
from cartflow.providers.base import Provider
from cartflow.providers.options import (
    Email,
    Mailbox,
    Port,
    ProviderOptions,
    Seconds,
    Secret,
    Text,
    addr_spec,
)

log = structlog.get_logger("cartflow.providers.smtp")

#: Hosts ``security: none`` is allowed for (a relay on this machine).
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
#: Headers written on one line however long (a relay's DKIM signature over a folded
#: ``List-Unsubscribe`` can break; RFC 8058 §3.1 asks for both to be signed).
ONE_LINE = frozenset({"list-unsubscribe", "list-unsubscribe-post"})


class WirePolicy(EmailPolicy):
    """The SMTP policy (CRLF, 78-column folding) except for :data:`ONE_LINE` headers,
    which are never folded (``max_line_length=None`` for those alone: a long subject
    still folds, as a line over 998 octets would break RFC 5322)."""

    def fold(self, name: str, value: str) -> str:
        policy = self.clone(max_line_length=None) if name.lower() in ONE_LINE else self
        folded: str = EmailPolicy.fold(policy, name, value)
        return folded

    def fold_binary(self, name: str, value: str) -> bytes:
        policy = self.clone(max_line_length=None) if name.lower() in ONE_LINE else self
        folded: bytes = EmailPolicy.fold_binary(policy, name, value)
        return folded


#: How messages are built and written out.
WIRE = WirePolicy(linesep="\r\n")

Step = Literal["connect", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "end of DATA"]
Kind = Literal["accepted", "retryable", "permanent"]


class SmtpOptions(ProviderOptions):
    #: The relay's host name or address (required).
    host: Text
    #: The relay's port; default 587 (submission). Implicit TLS is usually 465.
    port: Port = 587
    #: ``starttls`` (default: upgrade before AUTH, refuse a server that cannot),
    #: ``tls`` (implicit TLS from the first byte) or ``none`` (only for a relay on this
    #: machine: localhost, 127.0.0.1, ::1).
    security: Literal["starttls", "tls", "none"] = "starttls"
    #: The From address, ``shop@example.com`` or ``Shop <shop@example.com>`` (required).
    sender: Email
    #: A Reply-To address; default none.
    reply_to: Email | None = None
    #: Log in with this name (``AUTH``); default none (no login).
    username: Text | None = None
    #: The password for ``username``; secret; required when ``username`` is given.
    password: Secret | None = Field(default=None, validate_default=True)
    #: Seconds to wait for the connection and for each reply; default 10.
    timeout: Seconds = 10.0
    #: An address that unsubscribes by mail, added to ``List-Unsubscribe``; default none.
    list_unsubscribe_mailto: Mailbox | None = None

    @field_validator("host")
    @classmethod
    def _a_host(cls, value: str) -> str:
        if "${" not in value and (value != value.strip() or any(c in value for c in " /@\t")):
            raise PydanticCustomError(
                "cartflow_smtp_host", "must be a host name or address, e.g. smtp.example.com"
            )
        return value

    @field_validator("security")
    @classmethod
    def _plain_only_here(cls, value: str, info: ValidationInfo) -> str:
        host = info.data.get("host")
        remote = host is not None and host.strip().strip("[]").lower() not in LOOPBACK
        if value == "none" and remote and "${" not in str(host):
            raise PydanticCustomError(
                "cartflow_smtp_plain",
                "can be 'none' only when 'host' is localhost, 127.0.0.1 or ::1; "
                "use starttls or tls",
            )
        return value

    @field_validator("password")
    @classmethod
    def _with_username(cls, value: Any, info: ValidationInfo) -> Any:
        if "username" not in info.data:  # the username itself is wrong: said there
            return value
        username = info.data["username"]
        if username is not None and value is None:
            raise PydanticCustomError(
                "cartflow_smtp_password", "is needed when 'username' is given"
            )
        if username is None and value is not None:
            raise PydanticCustomError("cartflow_smtp_username", "is given but 'username' is not")
        return value


@dataclass(frozen=True)
class ReplyRule:
    """A row of :data:`REPLY_RULES`: what an SMTP reply means for the send."""

    #: Reply codes this row is for.
    codes: frozenset[int]
    kind: Kind
    #: What the reason says after ``SMTP <code> <enhanced> at <step>:``.
    why: str
    #: Enhanced status codes (``5.1.1``; ``5.7.*`` = any detail); empty = any or none.
    enhanced: frozenset[str] = frozenset()
    #: The steps whose reply this row reads; empty = any.
    steps: frozenset[str] = frozenset()
    invalid_contact: bool = False

    def matches(self, code: int, enhanced: str | None, step: str) -> bool:
        if code not in self.codes or (self.steps and step not in self.steps):
            return False
        if not self.enhanced:
            return True
        if enhanced is None:
            return False
        subject = enhanced.rsplit(".", 1)[0] + ".*"
        return enhanced in self.enhanced or subject in self.enhanced


def _codes(*codes: int | range) -> frozenset[int]:
    found: set[int] = set()
    for code in codes:
        found.update(code if isinstance(code, range) else (code,))
    return frozenset(found)


#: What a reply means, first matching row wins (a reply matching none — a 3xx where a
#: 2xx belongs, a garbled code — is retryable before the end of DATA, unknown after it).
REPLY_RULES: tuple[ReplyRule, ...] = (
    ReplyRule(_codes(range(200, 300)), "accepted", "accepted", steps=frozenset({"end of DATA"})),
    ReplyRule(
        _codes(550, 551, 553),
        "permanent",
        "the mailbox or its domain does not exist",
        enhanced=frozenset({"5.1.1", "5.1.2", "5.1.3", "5.1.10"}),
        steps=frozenset({"RCPT", "end of DATA"}),
        invalid_contact=True,
    ),
    ReplyRule(
        _codes(range(500, 600)),
        "permanent",
        "the sender address was refused: check 'sender'",
        enhanced=frozenset({"5.1.*"}),
        steps=frozenset({"MAIL"}),
    ),
    ReplyRule(
        _codes(550),
        "permanent",
        "refused by the server's policy (spam, reputation, authentication)",
        enhanced=frozenset({"5.7.*"}),
    ),
    ReplyRule(_codes(552), "permanent", "message too large or mailbox full"),
    ReplyRule(
        _codes(530, 534, 535, 538),
        "permanent",
        "authentication required or refused: check 'username', 'password' and 'security'",
    ),
    ReplyRule(_codes(421), "retryable", "service not available, try again later"),
    ReplyRule(_codes(450), "retryable", "mailbox unavailable for now"),
    ReplyRule(_codes(451), "retryable", "local error at the server"),
    ReplyRule(_codes(452), "retryable", "insufficient storage at the server"),
    ReplyRule(_codes(range(400, 500)), "retryable", "temporary failure"),
    ReplyRule(_codes(range(500, 600)), "permanent", "refused"),
)

#: ``5.1.1`` at the start of a reply's text (its class must be the reply code's).
_ENHANCED = re.compile(rb"\s*([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")


def enhanced_code(code: int, reply: bytes) -> str | None:
    """The enhanced status code a reply starts with (RFC 3463), or None."""
    found = _ENHANCED.match(reply)
    if found is None or found[1] != str(code)[:1].encode():
        return None
    return b".".join(found.groups()).decode()


def rule_for(code: int, enhanced: str | None, step: str) -> ReplyRule | None:
    return next((rule for rule in REPLY_RULES if rule.matches(code, enhanced, step)), None)


class SmtpProvider(Provider):
    name = "smtp"
    channels = ("email",)
    options_model = SmtpOptions
    options: SmtpOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.envelope_from = addr_spec(self.options.sender) or ""
        domain = self.envelope_from.rpartition("@")[2]
        try:
            self.id_domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            self.id_domain = "cartflow.invalid"

    # -- the message --------------------------------------------------------------------------
    def compose(self, message: Message) -> tuple[EmailMessage, str]:
        """The email for ``message`` and its Message-ID."""
        safe_id = re.sub(r"[^A-Za-z0-9._-]", "-", message.delivery_id)
        message_id = make_msgid(idstring=safe_id, domain=self.id_domain)
        email = EmailMessage(policy=WIRE)
        email["Subject"] = " ".join(message.parts.get("subject", "").split())
        email["From"] = self.options.sender
        email["To"] = message.address
        if self.options.reply_to:
            email["Reply-To"] = self.options.reply_to
        email["Date"] = formatdate(usegmt=True)
        email["Message-ID"] = message_id
        email["X-Cartflow-Delivery"] = message.delivery_id
        unsubscribe = self._unsubscribe(message)
        if unsubscribe:
            email["List-Unsubscribe"] = unsubscribe
            email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        email.set_content(message.parts.get("text", ""))
        if message.parts.get("html"):
            email.add_alternative(message.parts["html"], subtype="html")
            for part in email.iter_parts():
                del part["MIME-Version"]  # add_alternative gives the part one of its own
        return email, message_id

    def _unsubscribe(self, message: Message) -> str | None:
        url = message.metadata.get("unsubscribe_url")
        if not url:
            return None
        parts = urlsplit(str(url)) if isinstance(url, str) else None
        if parts is None or parts.scheme != "https" or not parts.netloc or _unsafe(url):
            log.warning("smtp_unsubscribe_url_refused", delivery_id=message.delivery_id)
            return None
        links = [f"<{url}>"]
        if self.options.list_unsubscribe_mailto:
            links.append(f"<mailto:{self.options.list_unsubscribe_mailto}>")
        return ", ".join(links)

    # -- the conversation ---------------------------------------------------------------------
    def send(self, message: Message) -> SendResult:
        recipient = message.address
        if addr_spec(recipient) != recipient:
            return SendResult.permanent(
                self.name, "the address is not one email address", invalid_contact=True
            )
        email, message_id = self.compose(message)
        international = not (recipient.isascii() and self.options.sender.isascii())
        data = email.as_bytes(policy=WIRE.clone(utf8=international))
        return self._deliver(recipient, data, message_id, international)

    def _deliver(
        self, recipient: str, data: bytes, message_id: str, international: bool
    ) -> SendResult:
        step: Step = "connect"
        client: smtplib.SMTP | None = None
        polite = True  # QUIT before closing, unless the connection broke or timed out
        try:
            client = self._connect()
            client.ehlo_or_helo_if_needed()
            if self.options.security == "starttls":
                step = "STARTTLS"
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if self.options.username:
                step = "AUTH"
                password = self.options.password
                client.login(self.options.username, password.get_secret_value() if password else "")
            mail_options: list[str] = []
            if international:
                if not client.has_extn("smtputf8"):
                    return SendResult.permanent(
                        self.name, "a non-ASCII address needs SMTPUTF8, which the server lacks"
                    )
                mail_options.append("SMTPUTF8")

            step = "MAIL"
            code, reply = client.mail(self.envelope_from, mail_options)
            if not 200 <= code < 300:
                return self._answer(code, reply, step)

            step = "RCPT"
            code, reply = client.rcpt(recipient)
            if not 200 <= code < 300:
                return self._answer(code, reply, step)

            step = "DATA"
            code, reply = client.docmd("DATA")
            if code != 354:
                return self._answer(code, reply, step)
            client.send(_stuffed(data))  # a failure here: the final "." never left

            step = "end of DATA"
            code, reply = client.getreply()
            result = self._answer(code, reply, step)
            if result.status == "accepted":
                return SendResult.accepted(self.name, message_id)
            return result
        except smtplib.SMTPResponseException as exc:  # greeting, EHLO, STARTTLS, AUTH
            return self._answer(exc.smtp_code, exc.smtp_error, step)
        except smtplib.SMTPNotSupportedError:
            return SendResult.permanent(
                self.name, f"the server does not offer {step}: check 'security' and 'username'"
            )
        except ssl.SSLCertVerificationError:
            polite = False
            return SendResult.permanent(
                self.name, f"{step}: the server's TLS certificate is not trusted for 'host'"
            )
        except (OSError, smtplib.SMTPException) as exc:
            polite = type(exc) is smtplib.SMTPException  # AUTH: no method in common
            return self._broken(exc, step)
        finally:
            _hang_up(client, polite=polite)

    def _connect(self) -> smtplib.SMTP:
        host, port, timeout = self.options.host, self.options.port, self.options.timeout
        if self.options.security == "tls":
            context = ssl.create_default_context()
            return smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        return smtplib.SMTP(host, port, timeout=timeout)

    def _answer(self, code: int, reply: bytes | str, step: str) -> SendResult:
        raw = reply.encode("utf-8", "replace") if isinstance(reply, str) else reply
        enhanced = enhanced_code(code, raw)
        said = f"SMTP {code}{f' {enhanced}' if enhanced else ''} at {step}"
        rule = rule_for(code, enhanced, step)
        if rule is None:
            if step == "end of DATA":
                return SendResult.unknown(self.name, f"{said}: unexpected reply after the message")
            return SendResult.retryable(self.name, f"{said}: unexpected reply")
        if rule.kind == "accepted":
            return SendResult.accepted(self.name)
        if rule.kind == "retryable":
            return SendResult.retryable(self.name, f"{said}: {rule.why}")
        return SendResult.permanent(
            self.name, f"{said}: {rule.why}", invalid_contact=rule.invalid_contact
        )

    def _broken(self, exc: BaseException, step: str) -> SendResult:
        """No reply at all: the connection failed, timed out or dropped."""
        timed_out = _caused_by(exc, TimeoutError)
        if step == "end of DATA":
            what = "timed out" if timed_out else "connection dropped"
            return SendResult.unknown(
                self.name,
                f"{what} after the message was sent, before the server answered "
                "(it may have queued it)",
            )
        if step == "connect":
            if isinstance(exc, socket.gaierror):
                why = "DNS lookup of 'host' failed"
            elif isinstance(exc, ConnectionRefusedError):
                why = "connection refused"
            elif timed_out:
                why = "connect timeout"
            else:
                why = type(exc).__name__
            return SendResult.retryable(self.name, f"connect: {why}")
        if step == "AUTH" and type(exc) is smtplib.SMTPException:  # no method in common
            return SendResult.permanent(self.name, "AUTH: no login method in common")
        what = "timed out" if timed_out else type(exc).__name__
        return SendResult.retryable(self.name, f"{step}: {what} before the message was sent")


def _stuffed(data: bytes) -> bytes:
    """The DATA body as it goes on the wire: CRLF lines, leading dots doubled, the final
    ``.`` line (what :meth:`smtplib.SMTP.data` does, split so that the answer is known
    to come after the message)."""
    body = re.sub(rb"(?:\r\n|\n|\r(?!\n))", b"\r\n", data)
    body = re.sub(rb"(?m)^\.", b"..", body)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body + b".\r\n"


def _hang_up(client: smtplib.SMTP | None, *, polite: bool) -> None:
    if client is None:
        return
    if polite:
        with contextlib.suppress(OSError, smtplib.SMTPException):
            client.quit()
    client.close()


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _unsafe(url: str) -> bool:
    """Characters that would end the ``<url>`` or the header."""
    return any(c in url for c in "<>\r\n\t ,")
