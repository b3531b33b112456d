"""Signed links in messages: clicks through cartflow's own redirect, and unsubscribe.

Every link is per delivery and signed with HMAC-SHA256 under a secret only the server
knows (``CARTFLOW_LINK_SECRET``), so a link cannot be forged, altered to point elsewhere
(no open redirect) or moved to another delivery::

    {public_url}/l/{delivery_id}/{signature}?u={url}      a click: recorded, then redirected
    {public_url}/u/{delivery_id}/{signature}              unsubscribe (RFC 8058 one-click)
    {profile_id}{signature}                               a messenger start token (Telegram)

The signature covers the kind of link, the delivery and, for a click, the target URL.
In templates: ``links.cart`` is the tracked cart link, ``{{ url | link }}`` tracks any
other URL, ``{{ unsubscribe_url }}`` is the delivery's unsubscribe link. Without
``CARTFLOW_PUBLIC_URL`` and ``CARTFLOW_LINK_SECRET`` links go out as they are and a
template that needs ``unsubscribe_url`` fails to render (the message is not sent, with
the reason) — never an unsubscribe link that does not work.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

#: What a signature is over: kind, delivery and (for a click) the target, NUL-separated.
CLICK, UNSUBSCRIBE, MESSENGER = "click", "unsubscribe", "messenger"
#: The longest messenger start token (Telegram's ``start`` parameter: 64 characters).
MAX_TOKEN = 64
#: Signature length (base64url characters; 22 ≈ 128 bits).
SIGNATURE_CHARS = 22
#: The shortest secret accepted (bytes).
MIN_SECRET = 16


class LinkSettingsError(ValueError):
    """The public URL or the secret cannot sign links (the secret is never shown)."""


def trackable(url: str) -> bool:
    """Only web links are tracked (and redirected to): ``http``/``https`` with a host."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


@dataclass(frozen=True)
class Links:
    """Makes and checks the signed links of one server."""

    #: Where cartflow's API is reachable from a shopper's phone or mail client.
    public_url: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not trackable(self.public_url):
            raise LinkSettingsError("CARTFLOW_PUBLIC_URL must be an http(s) URL with a host")
        if len(self.secret) < MIN_SECRET:
            raise LinkSettingsError(f"CARTFLOW_LINK_SECRET must be at least {MIN_SECRET} bytes")

    @classmethod
    def from_settings(cls, public_url: str | None, secret: str | None) -> Links | None:
        """None when neither is set; both or neither, else :class:`LinkSettingsError`."""
        if not public_url and not secret:
            return None
        if not public_url or not secret:
            raise LinkSettingsError(
                "set both CARTFLOW_PUBLIC_URL and CARTFLOW_LINK_SECRET, or neither"
            )
        return cls(public_url.rstrip("/"), secret.encode())

    def click(self, delivery_id: str, url: str) -> str:
        """The tracked form of ``url`` in ``delivery_id``'s message (``url`` itself when it
        is not a web link)."""
        if not trackable(url):
            return url
        signature = self._sign(CLICK, delivery_id, url)
        return f"{self.public_url}/l/{delivery_id}/{signature}?u={quote(url, safe='')}"

    def unsubscribe(self, delivery_id: str) -> str:
        return f"{self.public_url}/u/{delivery_id}/{self._sign(UNSUBSCRIBE, delivery_id)}"

    def clicked(self, delivery_id: str, signature: str, url: str) -> bool:
        """Whether ``signature`` is this server's for a click on ``url`` in that delivery."""
        return trackable(url) and self._matches(signature, CLICK, delivery_id, url)

    def unsubscribed(self, delivery_id: str, signature: str) -> bool:
        return self._matches(signature, UNSUBSCRIBE, delivery_id)

    def messenger(self, profile_id: str) -> str:
        """The token that connects a messenger chat to the shopper ``profile_id`` (the
        ``start`` parameter of a ``t.me/<bot>?start=<token>`` link): the profile id and
        its signature, only ``A-Z a-z 0-9 _ -``, at most 64 characters."""
        token = profile_id + self._sign(MESSENGER, profile_id)
        if len(token) > MAX_TOKEN or not profile_id.isalnum():
            raise ValueError("this profile id cannot be carried in a messenger start token")
        return token

    def messenger_profile(self, token: str) -> str | None:
        """The profile a messenger start token names, when it is this server's."""
        if len(token) <= SIGNATURE_CHARS or len(token) > MAX_TOKEN:
            return None
        profile_id, signature = token[:-SIGNATURE_CHARS], token[-SIGNATURE_CHARS:]
        return profile_id if self._matches(signature, MESSENGER, profile_id) else None

    def _matches(self, signature: str, *what: str) -> bool:
        return hmac.compare_digest(self._sign(*what).encode(), signature.encode())

    def _sign(self, *what: str) -> str:
        digest = hmac.new(self.secret, "\0".join(what).encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode()[:SIGNATURE_CHARS]
