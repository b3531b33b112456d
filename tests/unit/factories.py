"""Native events (docs/events.md) for one shopper, and read-backs of what the engine stored.

Plain functions, not fixtures: tests call them with the moment they need.
"""

from __future__ import annotations

import itertools
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from cartflow.engine.clock import Clock, SimulatedClock
from cartflow.engine.configs import ConfigHolder
from cartflow.engine.errors import ConfigError
from cartflow.engine.events import Event
from cartflow.engine.scenario.loader import Config, load_config
from cartflow.engine.sending import Message, SendResult
from cartflow.engine.service import Engine
from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Cart, Database, Decision, Delivery, Journey, Timer
from cartflow.providers.recording import RecordingProvider
from cartflow.providers.registry import ChannelRouter, validators

REPO = Path(__file__).resolve().parents[2]

#: 10:00 in Moscow on a Sunday: inside every send window and outside quiet hours.
T0 = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)
#: Europe/Moscow has had no DST since 2014.
MOSCOW_OFFSET = timedelta(hours=3)

_ids = itertools.count(1)


# -- events -----------------------------------------------------------------------------
ITEMS = [{"sku": "SKU-1", "name": "Кроссовки", "price": 4990, "quantity": 2}]
CONTACT = {
    "email": "anna@example.com",
    "phone": "+79991234567",
    "push_token": "tok-1",
    "locale": "ru",
    "timezone": "Europe/Moscow",
    "first_name": "Анна",
}
CONSENT = {"email": True, "sms": True, "push": True}


def event(type_: str, at: datetime, *, event_id: str | None = None, **fields: Any) -> Event:
    """A native event for shopper ``cust_1`` (override any field)."""
    body: dict[str, Any] = {
        "id": event_id or f"evt_{next(_ids)}",
        "type": type_,
        "at": at.isoformat(),
        "anonymous_id": "anon_1",
        "customer_id": "cust_1",
    }
    body.update(fields)
    return Event.model_validate(body)


def cart_updated(
    at: datetime,
    *,
    items: list[dict[str, Any]] | None = None,
    cart_id: str = "cart_1",
    with_contact: bool = True,
    consent: dict[str, bool] | None = None,
    **fields: Any,
) -> Event:
    extra: dict[str, Any] = {}
    if with_contact:
        extra["contact"] = CONTACT
        extra["consent"] = CONSENT if consent is None else consent
    return event(
        "cart.updated",
        at,
        cart={
            "id": cart_id,
            "currency": "RUB",
            "url": f"https://shop.example/{cart_id}",
            "items": ITEMS if items is None else items,
        },
        **extra,
        **fields,
    )


def page_viewed(at: datetime, **fields: Any) -> Event:
    return event("page.viewed", at, **fields)


def order_completed(at: datetime, *, cart_id: str | None = "cart_1", **fields: Any) -> Event:
    order: dict[str, Any] = {"id": f"order_{next(_ids)}", "total": 9980, "currency": "RUB"}
    if cart_id is not None:
        order["cart_id"] = cart_id
    return event("order.completed", at, order=order, **fields)


def shopper(
    at: datetime,
    *,
    timezone: str | None = "Europe/Moscow",
    phone: str | None = None,
    customer: str = "cust_1",
    anonymous: str | None = None,
    cart_id: str = "cart_1",
    items: list[dict[str, Any]] | None = None,
) -> Event:
    """A ``cart.updated`` (``items``, default :data:`ITEMS`: 2 items, 9 980 RUB) from
    ``customer``, with an email, a push token (and ``phone``) and consent on every channel;
    ``timezone=None`` leaves the profile without a time zone."""
    contact: dict[str, Any] = {"email": f"{customer}@example.com", "push_token": f"tok-{customer}"}
    contact.update(locale="ru", timezone=timezone, phone=phone)
    return event(
        "cart.updated",
        at,
        cart={"id": cart_id, "currency": "RUB", "items": ITEMS if items is None else items},
        contact={k: v for k, v in contact.items() if v is not None},
        consent=CONSENT,
        customer_id=customer,
        anonymous_id=anonymous or f"anon_{customer}",
    )


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# -- reading back -----------------------------------------------------------------------
def deliveries(db: Database) -> list[Delivery]:
    with db.sessions() as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.created_at, Delivery.id)))


def journeys(db: Database) -> list[Journey]:
    with db.sessions() as session:
        return list(session.scalars(select(Journey).order_by(Journey.started_at)))


def decisions(db: Database, decision: str | None = None) -> list[Decision]:
    with db.sessions() as session:
        query = select(Decision).order_by(Decision.at, Decision.id)
        if decision is not None:
            query = query.where(Decision.decision == decision)
        return list(session.scalars(query))


def timers(db: Database) -> list[Timer]:
    with db.sessions() as session:
        return list(session.scalars(select(Timer).order_by(Timer.due_at)))


def cart(db: Database, cart_id: str = "cart_1") -> Cart | None:
    with db.sessions() as session:
        return session.get(Cart, cart_id)


def moscow(moment: datetime) -> datetime:
    """``moment`` as Moscow wall-clock time (naive), for readable assertions."""
    return (moment.astimezone(UTC) + MOSCOW_OFFSET).replace(tzinfo=None)


# -- custom configurations ----------------------------------------------------------------
#: Global settings like the shipped ones (``templates`` is filled in by write_config).
SETTINGS_YAML = """\
version: 1
defaults:
  timezone: Europe/Moscow
  locale: ru
  quiet_hours: "21:00-09:00"
  browsing_grace: 10m
caps:
  - {{channel: any, max: 3, per: 7d}}
  - {{channel: sms, max: 1, per: 24h}}
providers:
  push:  {{type: recording}}
  sms:   {{type: recording}}
  email: {{type: recording}}
templates: {templates}
include: [scenarios/*.yaml]
"""


def write_config(
    directory: Path,
    scenario_yaml: str,
    settings_yaml: str | None = None,
    templates: dict[str, str] | None = None,
) -> Config:
    """Write ``scenarios.yaml`` + ``scenarios/test.yaml`` under ``directory`` and load them.
    Templates are the repository's plus ``templates`` (relative name → text)."""
    shipped = Path(__file__).resolve().parents[2] / "templates"
    target = directory / "templates"
    shutil.copytree(shipped, target, dirs_exist_ok=True)
    for name, text in (templates or {}).items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_text(text, encoding="utf-8")
    (directory / "scenarios").mkdir(parents=True, exist_ok=True)
    (directory / "scenarios.yaml").write_text(
        settings_yaml or SETTINGS_YAML.format(templates=target), encoding="utf-8"
    )
    (directory / "scenarios" / "test.yaml").write_text(scenario_yaml, encoding="utf-8")
    return load_config(directory / "scenarios.yaml", provider_types=validators())


def shipped_with(directory: Path, settings_extra: str) -> Config:
    """The shipped abandoned-cart scenario under the test settings plus ``settings_extra``
    (more top-level keys of scenarios.yaml, written after SETTINGS_YAML's lines)."""
    scenario = (REPO / "scenarios" / "abandoned_cart.yaml").read_text(encoding="utf-8")
    settings = SETTINGS_YAML.format(templates=directory / "templates") + settings_extra
    return write_config(directory, scenario, settings)


def config_problems(directory: Path, settings_extra: str) -> list[str]:
    """The problems loading :func:`shipped_with` reports (it must refuse)."""
    try:
        shipped_with(directory, settings_extra)
    except ConfigError as refused:
        return [str(problem) for problem in refused.problems]
    raise AssertionError("the configuration loaded")


# -- providers ------------------------------------------------------------------------------
class ClockedRecorder(RecordingProvider):
    """A recording provider that also notes when (on the engine's clock) every call came,
    whatever its handler answered: ``calls`` is ``[(channel, at, status), ...]``."""

    def __init__(self, clock: Clock, **options: Any) -> None:
        super().__init__(**options)
        self.clock = clock
        self.calls: list[tuple[str, datetime, str]] = []

    def send(self, message: Message) -> SendResult:
        result = super().send(message)
        self.calls.append((message.channel, self.clock.now(), result.status))
        return result


def build_engine(
    db: Database, clock: SimulatedClock, configs: ConfigHolder, recorder: RecordingProvider
) -> Engine:
    """The real engine with ``recorder`` behind push, SMS and email."""
    router = ChannelRouter({"push": recorder, "sms": recorder, "email": recorder})
    return Engine(db, clock, configs, router)


@dataclass
class Run:
    """The real engine on its own simulated clock, with a recording provider."""

    sim: Simulation
    db: Database
    recorder: ClockedRecorder

    @classmethod
    def start(cls, config: Config, db: Database, at: datetime = T0) -> Run:
        clock = SimulatedClock(at)
        recorder = ClockedRecorder(clock)
        engine = build_engine(db, clock, ConfigHolder(config), recorder)
        return cls(Simulation(engine, clock), db, recorder)

    def batch(self, events: list[Event], until: timedelta) -> Run:
        """Ingest ``events`` (all due now) in one go, then run for ``until``."""
        engine, now = self.sim.engine, self.sim.clock.now()
        engine.apply_events(engine.ingest(events))
        self.sim.run_until(now + until)
        return self

    def play(self, events: list[Event], until: timedelta) -> Run:
        """Feed ``events``, then run until ``until`` after the first of them."""
        self.sim.feed(events)
        self.sim.run_until(min(e.at for e in events if e.at) + until)
        return self

    @property
    def times(self) -> list[datetime]:
        """When the provider was called, in order."""
        return [at for _, at, _ in self.recorder.calls]

    def sent_at(self) -> dict[str, datetime]:
        """When each step's delivery was written, by step id."""
        return {d.step_id: d.created_at for d in deliveries(self.db)}


def fresh_database(template: Path, directory: Path) -> Database:
    """A copy of the migrated ``template`` file in ``directory`` (much faster than
    migrating a new file)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"cartflow-{next(_ids)}.db"
    shutil.copyfile(template, path)
    return Database(f"sqlite:///{path}")
