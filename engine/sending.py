"""What the engine hands a provider, and what comes back.

The engine sees providers only through :class:`Sender`; ``providers/`` implements it
(routing a channel to its configured client, with failover) and ships fakes for tests.

Result tree::

    SendResult
    ├── status="accepted"   the provider took it (provider_message_id set)
    ├── status="retryable"  refused before acceptance: 429, 5xx, connection refused
    │                       (retry_after may be set); safe to try again
    ├── status="permanent"  will never work: invalid number, unsubscribed, bad token
    │                       (``invalid_contact`` / ``consent_withdrawn`` say which)
    └── status="unknown"    the request may have left (timeout mid-flight):
                            reconcile, never resend blindly
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

SendStatus = Literal["accepted", "retryable", "permanent", "unknown"]


@dataclass(frozen=True)
class Message:
    """One message ready to go. ``delivery_id`` travels in the provider's metadata."""

    delivery_id: str
    idempotency_key: str
    channel: str
    address: str
    parts: dict[str, str]
    locale: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # never print the address
        return f"Message(delivery_id={self.delivery_id!r}, channel={self.channel!r})"


@dataclass(frozen=True)
class Sent:
    """A message whose send came back ``unknown``, as the engine knows it: what a
    provider's :meth:`~cartflow.providers.base.Provider.lookup` asks the vendor about."""

    delivery_id: str
    #: The vendor's id when it gave one before the answer was lost (often None).
    provider_message_id: str | None
    channel: str
    #: The contact it went to (a vendor may list messages by recipient); never logged.
    address: str | None
    #: When the request left (at the latest).
    sent_at: datetime
    #: The text parts it carried (a vendor's list may have to be matched by body).
    parts: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # never print the address
        return f"Sent(delivery_id={self.delivery_id!r}, channel={self.channel!r})"


@dataclass(frozen=True)
class SendResult:
    status: SendStatus
    provider: str
    provider_message_id: str | None = None
    reason: str | None = None
    retry_after: float | None = None
    invalid_contact: bool = False
    consent_withdrawn: bool = False

    @classmethod
    def accepted(cls, provider: str, message_id: str | None = None) -> SendResult:
        return cls("accepted", provider, provider_message_id=message_id)

    @classmethod
    def retryable(cls, provider: str, reason: str, retry_after: float | None = None) -> SendResult:
        return cls("retryable", provider, reason=reason, retry_after=retry_after)

    @classmethod
    def permanent(
        cls,
        provider: str,
        reason: str,
        *,
        invalid_contact: bool = False,
        consent_withdrawn: bool = False,
    ) -> SendResult:
        return cls(
            "permanent",
            provider,
            reason=reason,
            invalid_contact=invalid_contact,
            consent_withdrawn=consent_withdrawn,
        )

    @classmethod
    def unknown(cls, provider: str, reason: str) -> SendResult:
        return cls("unknown", provider, reason=reason)


class Sender(Protocol):
    """Routes a message to a provider client for its channel."""

    def send(self, message: Message) -> SendResult: ...

    def provider_for(self, channel: str) -> str | None:
        """Name of the provider configured for ``channel``, or None if there is none."""
        ...
