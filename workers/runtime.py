"""Wire one process: database, configuration, providers, engine, broker, actors.

Embedded mode: SQLite, StubBroker with in-process worker threads, everything in one
process. Production mode: PostgreSQL and Dramatiq on Redis; ``api``, ``worker`` and
``scheduler`` are separate processes, each scalable to many replicas.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import redis
import structlog
import uvicorn
from dramatiq import Worker
from dramatiq.rate_limits.backends import RedisBackend, StubBackend

from cartflow.engine.clock import Clock, SystemClock
from cartflow.engine.configs import ConfigHolder
from cartflow.engine.links import Links, LinkSettingsError
from cartflow.engine.sending import Sender
from cartflow.engine.service import Engine
from cartflow.engine.store.database import Database
from cartflow.providers.layers import Counted
from cartflow.providers.live import LiveRouter
from cartflow.providers.registry import ChannelRouter, validators
from cartflow.providers.throttle import MemoryStore, Policy, RedisStore, Throttle
from cartflow.workers.actors import (
    CHECKS_QUEUE,
    EVENTS_QUEUE,
    QUEUE,
    QUEUES,
    Actors,
    declare,
    redis_broker,
    stub_broker,
)
from cartflow.workers.api import ServerLimits, create_app, server_config
from cartflow.workers.dispatcher import REDRIVE_AFTER, Dispatcher
from cartflow.workers.errors import CliError
from cartflow.workers.settings import Settings

log = structlog.get_logger("cartflow.runtime")


class _SecondWorkerNotice(logging.Filter):
    """Events and sends each have a Dramatiq ``Worker`` on one broker (threads of their
    own); each adds its own consumer middleware, which Dramatiq warns about. Harmless: each
    worker consumes only its whitelisted queue."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "middleware of the same type twice" not in record.getMessage()


for _name in ("dramatiq.broker.RedisBroker", "dramatiq.broker.StubBroker"):
    logging.getLogger(_name).addFilter(_SecondWorkerNotice())


#: Added to the slowest provider's timeout before a send still ``sending`` is taken for
#: one whose worker vanished.
GRACE_MARGIN = 5.0
#: The longest a send waits for room under its provider's rate limit.
THROTTLE_WAIT = 10.0


def sending_grace(timer_lease: float, config: Any) -> timedelta:
    """How long a delivery may stay ``sending`` before the scheduler settles it ``unknown``:
    at least the timer lease, and longer than any provider's own timeout, so a slow but
    live send is never declared lost while its request is still running."""
    timeouts = [
        float(value)
        for provider in config.settings.providers.values()
        if isinstance(value := provider.options().get("timeout"), int | float | str)
        and str(value).replace(".", "", 1).isdigit()
    ]
    slowest = [t + GRACE_MARGIN + THROTTLE_WAIT for t in timeouts]
    return timedelta(seconds=max([timer_lease, *slowest]))


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        embedded: bool,
        clock: Clock | None = None,
        sender: Sender | None = None,
        provider_override: str | None = None,
        migrate: bool = True,
    ) -> None:
        self.settings = settings
        self.embedded = embedded
        self.db = Database(settings.database_url)
        if migrate:
            self.db.migrate()
        self.configs = ConfigHolder.from_path(settings.config_path, validators())
        #: Send attempts by (provider, status), for ``/metrics`` (with the built sender).
        self.send_counts = Counted()
        #: Rate limits and circuit breakers, shared through Redis by every worker.
        self.throttle = Throttle(
            self._policy_for(provider_override),
            MemoryStore() if embedded else RedisStore(redis.Redis.from_url(settings.redis_url)),
            StubBackend() if embedded else RedisBackend(url=settings.redis_url),  # type: ignore[no-untyped-call]
            max_wait=THROTTLE_WAIT,
        )
        if sender is None:
            live = LiveRouter(
                lambda providers: ChannelRouter.from_settings(
                    providers, override=provider_override
                ),
                self.configs.current.settings.providers,
                layers=[self.send_counts, self.throttle],
            )
            self.configs.on_reload.append(live.on_reload)  # a changed providers: goes live
            sender = live
        self.sender: Any = sender
        self.clock = clock or SystemClock()
        try:
            links = Links.from_settings(settings.public_url, settings.link_secret)
        except LinkSettingsError as exc:
            raise CliError(str(exc)) from None
        self.engine = Engine(
            self.db,
            self.clock,
            self.configs,
            self.sender,
            sending_grace=sending_grace(settings.timer_lease, self.configs.current),
            lease=timedelta(seconds=settings.timer_lease),
            apply_batch=settings.apply_batch,
            links=links,
        )
        self.broker = stub_broker() if embedded else redis_broker(settings.redis_url)
        self.actors: Actors = declare(self.broker, self.engine, fire_batch=settings.fire_batch)
        self.worker: Any = None
        self.event_worker: Any = None
        self.dispatcher: Dispatcher | None = None
        self.api_server: Any = None
        self._api_thread: threading.Thread | None = None

    def _policy_for(self, override: str | None) -> Callable[[str], Policy | None]:
        def policy_for(channel: str) -> Policy | None:
            spec = self.configs.current.settings.providers.get(channel)  # type: ignore[call-overload]
            if spec is None:
                return None
            kind, breaker = override or spec.type, spec.breaker
            return Policy(
                provider=kind,
                key=f"{channel}:{kind}",
                rate=spec.rate(),
                failures=breaker.failures,
                within=breaker.within.total_seconds(),
                open_for=breaker.open_for.total_seconds(),
            )

        return policy_for

    def start_worker(
        self, threads: int | None = None, poll_ms: int = 100, event_threads: int | None = None
    ) -> None:
        """Start the worker threads: ``threads`` for timers and sends, ``event_threads``
        of their own for event application (so a send backlog never delays state)."""
        self.event_worker = Worker(
            self.broker,
            queues={EVENTS_QUEUE},
            worker_threads=event_threads or self.settings.event_worker_threads,
            worker_timeout=poll_ms,
        )
        self.worker = Worker(
            self.broker,
            queues={QUEUE, CHECKS_QUEUE},  # sends first: the actors' priorities
            worker_threads=threads or self.settings.worker_threads,
            worker_timeout=poll_ms,
        )
        self.event_worker.start()
        self.worker.start()

    def start_dispatcher(
        self,
        interval: float | None = None,
        lease: float | None = None,
        reload_interval: float | None = None,
        redrive_after: timedelta = REDRIVE_AFTER,
    ) -> Dispatcher:
        """Start the tick; ``None`` means "from the settings" (0 is not a valid interval).
        ``lease`` is how long a claimed timer waits in the queue before it is claimed
        again (the queue lease; the worker holds a started one for the timer lease)."""
        self.dispatcher = Dispatcher(
            self.engine,
            self.actors,
            interval=self.settings.dispatch_interval if interval is None else interval,
            batch=self.settings.dispatch_batch,
            lease=timedelta(seconds=self.settings.queue_lease if lease is None else lease),
            redrive_after=redrive_after,
            event_retention=(
                timedelta(days=self.settings.event_retention_days)
                if self.settings.event_retention_days > 0
                else None
            ),
        )
        self.dispatcher.start(reload_interval=reload_interval)
        return self.dispatcher

    def app(self) -> Any:
        return create_app(
            self.engine,
            self.actors.apply_events.send,
            self.settings.api_keys,
            {
                "shopify": self.settings.shopify_secrets,
                "woocommerce": self.settings.woocommerce_secrets,
                "segment": self.settings.segment_write_keys,
            },
        )

    def start_api(self, host: str, port: int) -> int:
        """Serve the API on a background thread; returns the port (0 picks a free one)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        port = sock.getsockname()[1]
        limits = ServerLimits.from_settings(self.settings)
        config = server_config(self.app(), limits, host=host, port=port)
        self.api_server = uvicorn.Server(config)
        self._api_thread = threading.Thread(
            target=self.api_server.run, kwargs={"sockets": [sock]}, daemon=True, name="cartflow-api"
        )
        self._api_thread.start()
        while not self.api_server.started:
            threading.Event().wait(0.02)
        return int(port)

    def join_queues(self, timeout: float = 30.0) -> None:
        """Embedded mode: wait until every in-process queue is empty (events first)."""
        for queue in QUEUES:
            self.broker.join(queue, timeout=int(timeout * 1000))

    def join_queue(self, timeout: float = 30.0) -> None:
        """Embedded mode: wait until the in-process queue is drained."""
        if self.embedded:
            for queue in QUEUES:
                self.broker.join(queue, timeout=int(timeout * 1000))
            for worker in (self.event_worker, self.worker):
                if worker is not None:
                    worker.join()

    def stop(self) -> None:
        if self.api_server is not None:
            self.api_server.should_exit = True
            if self._api_thread is not None:
                self._api_thread.join(timeout=5)
        if self.dispatcher is not None:
            self.dispatcher.stop()
        for worker in (self.worker, self.event_worker):
            if worker is not None:
                worker.stop(timeout=10_000)
        self.broker.close()
        close = getattr(self.sender, "close", None)
        if callable(close):
            close()
        self.db.dispose()
