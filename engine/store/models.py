"""Tables. Every timestamp is stored as UTC and read back timezone-aware.

The shapes leave room for what the roadmap adds later: contact points that can be marked
invalid, consent with its source, delivery states up to ``unknown`` with the provider's
message id, a holdout group and an A/B variant on every journey and delivery, a token
ledger, and a decision log that answers "why didn't she get it?".

Every table is importable from here, and importing this module puts every table in
``Base.metadata`` (Alembic's ``env.py`` and ``Database.missing_tables`` read it). They are
defined by area, on the one :class:`~cartflow.engine.store.base.Base`:
:mod:`~cartflow.engine.store.shopper_tables` (profiles, identities, contacts, consent,
sessions), :mod:`~cartflow.engine.store.cart_tables` (carts, journeys, timers),
:mod:`~cartflow.engine.store.event_tables` (accepted events, their stops),
:mod:`~cartflow.engine.store.send_tables` (deliveries and their events, decisions,
discount tokens), :mod:`~cartflow.engine.store.reply_tables` (shoppers' replies) and
:mod:`~cartflow.engine.store.config_tables` (configuration versions).
"""

from __future__ import annotations

from cartflow.engine.store.base import Base, Id, JSONType, UTCDateTime
from cartflow.engine.store.browse_tables import RecentProduct
from cartflow.engine.store.cart_tables import Cart, Journey, SegmentCart, Timer
from cartflow.engine.store.config_tables import ConfigVersion
from cartflow.engine.store.event_tables import EventStop, RawEvent
from cartflow.engine.store.reply_tables import ShopperReply
from cartflow.engine.store.send_tables import Decision, Delivery, DeliveryEventRow, DiscountToken
from cartflow.engine.store.shopper_tables import (
    Consent,
    ConsentLog,
    Contact,
    Identity,
    Profile,
    ProfileFeatures,
    Session,
)

#: Defined here before the split, and still imported from here.
__all__ = [
    "Base",
    "Cart",
    "ConfigVersion",
    "Consent",
    "ConsentLog",
    "Contact",
    "Decision",
    "Delivery",
    "DeliveryEventRow",
    "DiscountToken",
    "EventStop",
    "Id",
    "Identity",
    "JSONType",
    "Journey",
    "Profile",
    "ProfileFeatures",
    "RawEvent",
    "RecentProduct",
    "SegmentCart",
    "Session",
    "ShopperReply",
    "Timer",
    "UTCDateTime",
]
