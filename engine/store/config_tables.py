"""Tables of configuration: every version that went live, file by file, so a journey can
finish on the version it started with."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from cartflow.engine.store.base import Base, JSONType


class ConfigVersion(Base):
    """Every configuration that went live, file by file, so a journey can finish on the
    version it started with even after restarts and later changes."""

    __tablename__ = "config_versions"
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime]
    #: Relative path → file text (scenarios.yaml, includes, templates).
    files: Mapped[dict[str, Any]] = mapped_column(JSONType)
