"""Process settings, from the environment only (secrets never live in files).

* ``CARTFLOW_DATABASE_URL`` — SQLAlchemy URL, ``postgresql://…`` or SQLite
  (default ``sqlite:///cartflow.db``)
* ``CARTFLOW_REDIS_URL`` — Redis for Dramatiq (default ``redis://127.0.0.1:6379/0``)
* ``CARTFLOW_CONFIG`` — path of scenarios.yaml (default ``scenarios.yaml``)
* ``CARTFLOW_API_KEYS`` — comma-separated keys for ``Authorization: Bearer``
  (default none: the API refuses everyone)
* ``CARTFLOW_LOG_FORMAT`` — ``json`` (default) or ``console``
* ``CARTFLOW_WORKER_THREADS`` — worker threads per process for timers and sends (default 8)
* ``CARTFLOW_EVENT_WORKER_THREADS`` — worker threads per process that apply events, on a
  queue of their own (default 2)
* ``CARTFLOW_DISPATCH_INTERVAL`` — seconds between dispatcher ticks (default 1.0)
* ``CARTFLOW_DISPATCH_BATCH`` — timers claimed per query (default 500)
* ``CARTFLOW_FIRE_BATCH`` — claimed timers per queue message, run one after another on
  one database connection (default 20)
* ``CARTFLOW_EVENT_RETENTION_DAYS`` — days an applied event's raw body is kept (default 30;
  0 keeps them forever). An event id is remembered as long: the same id posted later is
  a new event
* ``CARTFLOW_APPLY_BATCH`` — events applied per transaction (default 50; a batch with an
  event that cannot be applied is split, each event on its own)
* ``CARTFLOW_TIMER_LEASE`` — seconds a worker holds the timer it works on (default 60)
* ``CARTFLOW_QUEUE_LEASE`` — seconds a claimed timer waits in the queue before it is claimed
  again (default 600)
* ``CARTFLOW_PUBLIC_URL`` / ``CARTFLOW_LINK_SECRET`` — where shoppers reach cartflow's API
  (``https://…``) and the secret (≥ 16 bytes) its links are signed with: tracked clicks and
  one-click unsubscribe (``cartflow.engine.links``); both or neither (default: neither —
  links go out untracked, a template needing ``unsubscribe_url`` is not sent)
* ``CARTFLOW_API_HOST`` / ``CARTFLOW_API_PORT`` — where ``cartflow api`` listens
  (default 0.0.0.0:8000)
* ``CARTFLOW_RELOAD_INTERVAL`` — seconds between configuration reload checks (default 5)
* ``CARTFLOW_PHONE_REGION`` — two-letter country whose national phone formats are
  scrubbed from logs, e.g. ``8 (999) 123-45-67`` for ``RU`` (default ``RU``)
* ``CARTFLOW_SHOPIFY_SECRETS`` / ``CARTFLOW_WOOCOMMERCE_SECRETS`` — comma-separated
  secrets the Shopify and WooCommerce webhooks are signed with (docs/doors.md); more than
  one while a secret is rotated. Unset: that door is off (404)

How long the API waits for a client (docs/deployment.md; a reverse proxy in front should
use the same or shorter limits):

* ``CARTFLOW_API_HEADER_TIMEOUT`` — seconds to receive a request's line and headers,
  counted from the connection or the first byte of the next request; then 408 and close
  (default 10)
* ``CARTFLOW_API_BODY_TIMEOUT`` — seconds to receive the whole body once the headers are
  in; then 408 and close (default 10)
* ``CARTFLOW_API_KEEP_ALIVE`` — whole seconds an idle keep-alive connection stays open
  (default 5)
* ``CARTFLOW_API_MAX_CONNECTIONS`` — open connections (or requests in progress) per
  ``cartflow api`` process beyond which new requests get 503 (default 1000)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

#: Phone region when ``CARTFLOW_PHONE_REGION`` is unset (the shipped defaults are Russian:
#: Europe/Moscow, RUB).
DEFAULT_PHONE_REGION = "RU"


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_secrets(name: str) -> tuple[str, ...]:
    """The comma-separated secrets in the environment variable ``name`` (none if unset)."""
    return tuple(secret.strip() for secret in _env(name, "").split(",") if secret.strip())


def env_phone_region() -> str:
    """``CARTFLOW_PHONE_REGION``, upper-cased; :data:`DEFAULT_PHONE_REGION` if unset or empty."""
    return (_env("CARTFLOW_PHONE_REGION", "").strip() or DEFAULT_PHONE_REGION).upper()


@dataclass(frozen=True)
class Settings:
    database_url: str = field(
        default_factory=lambda: _env("CARTFLOW_DATABASE_URL", "sqlite:///cartflow.db")
    )
    redis_url: str = field(
        default_factory=lambda: _env("CARTFLOW_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    config_path: str = field(default_factory=lambda: _env("CARTFLOW_CONFIG", "scenarios.yaml"))
    api_keys: tuple[str, ...] = field(
        default_factory=lambda: tuple(
            k.strip() for k in _env("CARTFLOW_API_KEYS", "").split(",") if k.strip()
        )
    )
    log_format: str = field(default_factory=lambda: _env("CARTFLOW_LOG_FORMAT", "json"))
    worker_threads: int = field(default_factory=lambda: int(_env("CARTFLOW_WORKER_THREADS", "8")))
    event_worker_threads: int = field(
        default_factory=lambda: int(_env("CARTFLOW_EVENT_WORKER_THREADS", "2"))
    )
    dispatch_interval: float = field(
        default_factory=lambda: float(_env("CARTFLOW_DISPATCH_INTERVAL", "1.0"))
    )
    dispatch_batch: int = field(default_factory=lambda: int(_env("CARTFLOW_DISPATCH_BATCH", "500")))
    fire_batch: int = field(default_factory=lambda: int(_env("CARTFLOW_FIRE_BATCH", "20")))
    apply_batch: int = field(default_factory=lambda: int(_env("CARTFLOW_APPLY_BATCH", "50")))
    event_retention_days: float = field(
        default_factory=lambda: float(_env("CARTFLOW_EVENT_RETENTION_DAYS", "30"))
    )
    timer_lease: float = field(default_factory=lambda: float(_env("CARTFLOW_TIMER_LEASE", "60")))
    queue_lease: float = field(default_factory=lambda: float(_env("CARTFLOW_QUEUE_LEASE", "600")))
    api_host: str = field(default_factory=lambda: _env("CARTFLOW_API_HOST", "0.0.0.0"))
    api_port: int = field(default_factory=lambda: int(_env("CARTFLOW_API_PORT", "8000")))
    reload_interval: float = field(
        default_factory=lambda: float(_env("CARTFLOW_RELOAD_INTERVAL", "5"))
    )
    phone_region: str = field(default_factory=env_phone_region)
    api_header_timeout: float = field(
        default_factory=lambda: float(_env("CARTFLOW_API_HEADER_TIMEOUT", "10"))
    )
    api_body_timeout: float = field(
        default_factory=lambda: float(_env("CARTFLOW_API_BODY_TIMEOUT", "10"))
    )
    api_keep_alive: int = field(default_factory=lambda: int(_env("CARTFLOW_API_KEEP_ALIVE", "5")))
    api_max_connections: int = field(
        default_factory=lambda: int(_env("CARTFLOW_API_MAX_CONNECTIONS", "1000"))
    )
    public_url: str = field(default_factory=lambda: _env("CARTFLOW_PUBLIC_URL", "").strip())
    link_secret: str = field(default_factory=lambda: _env("CARTFLOW_LINK_SECRET", ""), repr=False)
    shopify_secrets: tuple[str, ...] = field(
        default_factory=lambda: env_secrets("CARTFLOW_SHOPIFY_SECRETS"), repr=False
    )
    woocommerce_secrets: tuple[str, ...] = field(
        default_factory=lambda: env_secrets("CARTFLOW_WOOCOMMERCE_SECRETS"), repr=False
    )
    segment_write_keys: tuple[str, ...] = field(
        default_factory=lambda: env_secrets("CARTFLOW_SEGMENT_WRITE_KEYS"), repr=False
    )

    def __repr__(self) -> str:  # the URLs may hold passwords
        return "Settings(database_url=***, redis_url=***, api_keys=***, link_secret=***)"
