"""The database handle: one code path for SQLite and PostgreSQL.

SQLite (embedded mode) runs every transaction as ``BEGIN IMMEDIATE`` so that worker
threads serialise on the write lock instead of failing to upgrade a read lock; WAL keeps
readers going meanwhile. PostgreSQL uses psycopg 3 and row locks (``FOR UPDATE``,
``SKIP LOCKED``) where the engine needs them.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, make_url
from sqlalchemy.orm import Session, sessionmaker

#: Where Alembic's scripts live: ``migrations/`` next to this module, shipped in the
#: package (``alembic.ini`` at the repository root points at it too).
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def normalise_url(url: str) -> str:
    """Accept the usual spellings: ``postgres://``, ``postgresql://`` → psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def masked_url(url: str) -> str:
    """``url`` fit to print: the password, if any, as ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: show no more than its scheme
        return url.split("://")[0] + "://…" if "://" in url else "(not a URL)"


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite ``url`` names, absolute (relative paths are from the current
    folder); ``None`` for other databases and for in-memory SQLite."""
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() != "sqlite":
        return None
    name = parsed.database or ""
    if name in ("", ":memory:") or name.startswith("file:"):
        return None
    return Path(name).expanduser().absolute()


class Database:
    """A SQLAlchemy engine plus a session factory, and the schema migrations.

    ``read_only=True`` (for tools that only look) never writes: a SQLite file is opened
    with ``mode=ro``, so a missing one is an error instead of a new empty database, and
    its journal mode is left as it is; PostgreSQL sessions are read-only transactions.
    """

    def __init__(
        self, url: str, *, echo: bool = False, pool_size: int = 10, read_only: bool = False
    ) -> None:
        self.url = normalise_url(url)
        self.read_only = read_only
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 60, "check_same_thread": False}
            path = sqlite_file(self.url)
            if read_only and path is not None:
                # our own URI: a path with spaces, '?' or '#' stays one path
                uri = path.as_uri() + "?mode=ro"
                kwargs["creator"] = lambda: sqlite3.connect(
                    uri, uri=True, timeout=60, check_same_thread=False
                )
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
            if read_only:
                kwargs["connect_args"] = {"options": "-c default_transaction_read_only=on"}
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.is_sqlite:
            _make_sqlite_serialisable(self.engine, read_only=read_only)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._pinned = threading.local()

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        pinned: Connection | None = getattr(self._pinned, "connection", None)
        bind = {"bind": pinned} if pinned is not None else {}
        with self.sessions(**bind) as session, session.begin():
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only session that never waits for the write lock (SQLite: a deferred
        ``BEGIN`` under WAL), safe to open while another transaction is writing."""
        pinned: Connection | None = getattr(self._pinned, "connection", None)
        if pinned is not None:  # PostgreSQL only: the read ends in a rollback
            with Session(bind=pinned) as session:
                yield session
            return
        connection = self.engine.connect().execution_options(cartflow_readonly=True)
        with connection, Session(bind=connection) as session:
            yield session

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """Run this thread's transactions and reads inside on one pooled connection.

        A batch of work (the timers of one message, the events of one) then checks a
        connection out of the pool — and pings it — once, not once per transaction; each
        transaction still commits on its own, so a failure rolls back only its own work.
        A connection lost meanwhile is replaced at its next use (SQLAlchemy reconnects
        an invalidated connection once its transaction is rolled back). SQLite: no
        change (its readers and its writer need connections of their own). Nested
        calls share the outer connection.
        """
        if not self.is_postgres or getattr(self._pinned, "connection", None) is not None:
            yield
            return
        with self.engine.connect() as connection:
            self._pinned.connection = connection
            try:
                yield
            finally:
                self._pinned.connection = None

    def missing_tables(self) -> list[str]:
        """The cartflow tables this database lacks (all of them when it was never
        migrated), sorted; empty when the schema is there."""
        from cartflow.engine.store.models import Base

        with self.engine.connect() as connection:
            present = set(inspect(connection).get_table_names())
        return sorted(set(Base.metadata.tables) - present)

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema to ``revision`` with Alembic (idempotent)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        with self.engine.begin() as connection:
            if self.is_postgres:
                # many replicas may start at once: one migrates, the others wait
                connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7226013)")
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    def dispose(self) -> None:
        self.engine.dispose()


def _make_sqlite_serialisable(engine: Engine, *, read_only: bool = False) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        if not read_only:  # setting the journal mode is a write
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        readonly = read_only or connection.get_execution_options().get("cartflow_readonly")
        connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")
