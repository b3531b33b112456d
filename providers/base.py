"""The provider protocol.

A provider sends one :class:`~cartflow.engine.sending.Message` on one channel and answers with a
:class:`~cartflow.engine.sending.SendResult` — accepted, retryable (with retry-after), permanent
(with the reason) or unknown (the request may have left) — never a bare bool.

A provider declares its settings as a pydantic model (``options_model``, a
:class:`~cartflow.providers.options.ProviderOptions`): their types, their defaults, and which are
secret (:class:`~pydantic.SecretStr`: masked in ``repr`` and logs; give them from the
environment, ``${ENV_VAR}`` in YAML).

Capabilities beyond sending arrive as hooks that do nothing here (as dramatiq's
``Middleware`` does), so a provider written before a hook existed keeps working:

* :meth:`Provider.lookup` / :meth:`Provider.status` — what became of a send that came back
  ``unknown`` (by what the engine knows of it / by the vendor's id);
* :meth:`Provider.parse_receipt` — delivery callbacks, in one vocabulary
  (:class:`~cartflow.engine.receipts.ReceiptStatus`);
* :meth:`Provider.parse_inbound` — what shoppers send back (SMS replies: STOP, START).

Errors::

    ValueError
    └── ProviderSettingsError   settings a provider refuses (the values never shown)
"""

from __future__ import annotations

from typing import Any, ClassVar, Union, get_args, get_origin

from pydantic import SecretStr, ValidationError

from cartflow.engine.inbound import Inbound
from cartflow.engine.receipts import InboundRequest, Receipt
from cartflow.engine.sending import Message, SendResult, Sent
from cartflow.providers.options import ProviderOptions, problems


class ProviderSettingsError(ValueError):
    """A provider was given settings it rejects (its values are never in the message)."""


class Provider:
    #: Registry name, used as ``type:`` in scenarios.yaml.
    name: ClassVar[str] = "base"
    #: Channels this provider can carry.
    channels: ClassVar[tuple[str, ...]] = ()
    #: The settings this provider takes (none by default).
    options_model: ClassVar[type[ProviderOptions]] = ProviderOptions

    def __init__(self, **options: Any) -> None:
        """Raises :class:`ProviderSettingsError` (naming settings, not values) when
        ``options`` do not fit :attr:`options_model`."""
        try:
            self.options = self.options_model.model_validate(options)
        except ValidationError:
            found = problems(self.name, self.options_model, options) or ["invalid settings"]
            raise ProviderSettingsError("; ".join(found)) from None

    @classmethod
    def secret(cls) -> frozenset[str]:
        """Names of the settings never to print (those typed ``SecretStr``)."""
        return frozenset(
            name
            for name, field in cls.options_model.model_fields.items()
            if _holds_secret(field.annotation)
        )

    @classmethod
    def validate(cls, options: dict[str, Any]) -> list[str]:
        """Problems with ``options``: unknown settings (with a hint), missing required
        ones, and values of the wrong type — each names the setting, never its value."""
        return problems(cls.name, cls.options_model, options)

    def send(self, message: Message) -> SendResult:
        raise NotImplementedError

    def status(self, provider_message_id: str) -> SendResult | None:
        """What became of a send answered ``unknown``: asked of the vendor by the id it
        gave. ``None`` (the default): this provider cannot tell."""
        return None

    def lookup(self, sent: Sent) -> SendResult | None:
        """What became of a send answered ``unknown``, asked of the vendor by what the
        engine knows of it (:class:`~cartflow.engine.sending.Sent`: the delivery id, the
        vendor's id if it came, the recipient, when). Default: :meth:`status` by the
        vendor's id when there is one. ``None``: cannot tell (asked again later)."""
        if sent.provider_message_id is None:
            return None
        return self.status(sent.provider_message_id)

    def can_look_up(self) -> bool:
        """Whether this provider can ever reconcile an ``unknown`` send (by default:
        it overrides :meth:`lookup` or :meth:`status`); when not, an ``unknown`` send is
        final."""
        kind = type(self)
        return kind.lookup is not Provider.lookup or kind.status is not Provider.status

    def parse_receipt(self, request: InboundRequest) -> list[Receipt] | None:
        """The delivery receipts in a callback the vendor sent. ``None`` (the default):
        this provider does not take callbacks."""
        return None

    def receipt_answer(self) -> str | None:
        """The plain-text body a vendor expects in answer to its delivery callback (SMS.ru
        wants ``100``); None: the receipts endpoint answers with its JSON counts."""
        return None

    def parse_inbound(self, request: InboundRequest) -> list[Inbound] | None:
        """The messages shoppers sent back in a vendor's inbound webhook (an SMS reply),
        after checking it comes from the vendor (:class:`ReceiptRejected` otherwise).
        ``None`` (the default): this provider takes no inbound messages."""
        return None

    def inbound_answer(self) -> tuple[bytes, str]:
        """The body and media type the vendor expects in answer to its inbound webhook."""
        return b'{"ok": true}', "application/json"

    def close(self) -> None:
        """Release connections; called when the process stops or the router is replaced."""

    def __repr__(self) -> str:
        hidden = self.secret()
        shown = {
            k: ("***" if k in hidden else v)
            for k, v in self.options.model_dump(exclude_unset=True).items()
        }
        return f"{type(self).__name__}({shown})"


def _holds_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    origin = get_origin(annotation)
    if origin is Union or origin is not None:
        return any(_holds_secret(arg) for arg in get_args(annotation))
    return False
