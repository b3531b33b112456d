"""How an SMS text travels: in GSM-7 or, with one character outside it, UCS-2; its length
in units and the number of parts it is sent in (:class:`SmsShape`). A step's
``max_sms_parts`` is checked against it when the message is sent, and by the lint on a
worst-case sample."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# GSM 03.38 basic set plus the extension table (extension chars cost two septets).
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€\f")


def _pack(text: str, per_part: int, wide: Callable[[str], bool]) -> int:
    """Parts of a concatenated SMS: an escape pair (GSM-7) or a surrogate pair (UCS-2)
    is never split across two parts, so a part may carry one unit less."""
    parts, used = 1, 0
    for ch in text:
        size = 2 if wide(ch) else 1
        if used + size > per_part:
            parts, used = parts + 1, 0
        used += size
    return parts


@dataclass(frozen=True)
class SmsShape:
    """How an SMS text travels: encoding, length in units, and the number of parts."""

    encoding: str  # GSM-7 | UCS-2
    length: int
    parts: int
    per_part: int

    @classmethod
    def of(cls, text: str) -> SmsShape:
        wide: Callable[[str], bool]
        if all(ch in _GSM_BASIC or ch in _GSM_EXTENDED for ch in text):
            # an extended character is an escape pair: two septets
            wide, single, multi, encoding = _GSM_EXTENDED.__contains__, 160, 153, "GSM-7"
        else:
            # UTF-16 code units: characters outside the BMP (emoji) are a surrogate pair
            wide, single, multi, encoding = (lambda ch: ord(ch) > 0xFFFF), 70, 67, "UCS-2"
        length = sum(2 if wide(ch) else 1 for ch in text)
        if length <= single:
            return cls(encoding, length, 1 if length else 0, single)
        return cls(encoding, length, _pack(text, multi, wide), multi)
