"""Durable state: SQLAlchemy models, the database handle, and the queries the engine needs.

One code path for SQLite (embedded, the default) and PostgreSQL (production, psycopg 3).
"""

from cartflow.engine.store.database import Database
from cartflow.engine.store.models import (
    Base,
    Cart,
    ConfigVersion,
    Consent,
    Contact,
    Decision,
    Delivery,
    DiscountToken,
    Identity,
    Journey,
    Profile,
    RawEvent,
    Session,
    Timer,
)

__all__ = [
    "Base",
    "Cart",
    "ConfigVersion",
    "Consent",
    "Contact",
    "Database",
    "Decision",
    "Delivery",
    "DiscountToken",
    "Identity",
    "Journey",
    "Profile",
    "RawEvent",
    "Session",
    "Timer",
]
