"""The channels cartflow sends on: one vocabulary for the scenario model, the
events a shop sends (consent per channel), the providers and the tools."""

from __future__ import annotations

from typing import Literal, get_args

#: A channel's name, as written in ``scenarios.yaml``, events, rows and logs.
Channel = Literal["push", "sms", "email", "messenger"]
#: Every channel cartflow knows, in escalation order.
CHANNELS: tuple[Channel, ...] = get_args(Channel)

__all__ = ["CHANNELS", "Channel"]
