"""``cartflow import``: a shop's history changes segment membership, applies once, and a
bad row is reported with file:line and column while the other rows are applied."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from cartflow.engine.clock import SimulatedClock
from cartflow.engine.configs import ConfigHolder
from cartflow.engine.context import build_context
from cartflow.engine.scenario.loader import Config
from cartflow.engine.service import Engine
from cartflow.engine.store import Database, Identity, Profile
from cartflow.engine.store.models import Cart
from cartflow.providers.registry import ChannelRouter
from cartflow.workers.cli import main

from ..factories import T0, cart_updated

ROOT = Path(__file__).resolve().parents[3]
AS_OF = T0 + timedelta(hours=1)


def _segments(db: Database, config: Config) -> frozenset[str]:
    with db.sessions() as session:
        ident = session.get(Identity, ("customer_id", "cust_1"))
        assert ident is not None
        profile = session.get(Profile, ident.profile_id)
        assert profile is not None
        cart = session.scalars(select(Cart)).one()
        context = build_context(session, config, profile, cart, T0 + timedelta(hours=2))
        return frozenset(context["segments"])


def _orders_total(db: Database, config: Config) -> int:
    with db.sessions() as session:
        ident = session.get(Identity, ("customer_id", "cust_1"))
        assert ident is not None
        profile = session.get(Profile, ident.profile_id)
        assert profile is not None
        cart = session.scalars(select(Cart)).one()
        context = build_context(session, config, profile, cart, T0 + timedelta(hours=2))
        return int(context["customer"]["orders_total"])


def _run(*args: str) -> int:
    return main(["import", *args, "--config", str(ROOT / "scenarios.yaml")])


def test_imported_history_changes_membership_and_applies_once(
    shipped_config: Config,
    migrated_template: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "shop.db"
    shutil.copyfile(migrated_template, path)
    monkeypatch.setenv("CARTFLOW_DATABASE_URL", f"sqlite:///{path}")
    db = Database(f"sqlite:///{path}")
    try:
        # Given a customer cartflow has seen once, with a cart and no order
        engine = Engine(db, SimulatedClock(T0), ConfigHolder(shipped_config), ChannelRouter({}))
        engine.apply_events(engine.ingest([cart_updated(T0)]))
        before = _segments(db, shipped_config)
        assert "first_time" in before and not {"returning", "vip"} & before
        # When the shop's customers.csv says they ordered 6 times before
        customers = tmp_path / "customers.csv"
        customers.write_text(
            "customer_id,email,orders_count,total_spent,currency,discount_orders_count\n"
            "cust_1,anna@example.com,6,90000.00,RUB,1\n",
            encoding="utf-8",
        )
        assert _run(str(customers), "--as-of", AS_OF.isoformat()) == 0
        # Then they are returning and vip, no longer first_time
        after = _segments(db, shipped_config)
        assert {"returning", "vip"} <= after and "first_time" not in after
        assert _orders_total(db, shipped_config) == 6
        assert "1 applied, 0 already imported, 0 bad" in capsys.readouterr().out
        # and importing the same file again applies nothing twice
        assert _run(str(customers), "--as-of", AS_OF.isoformat()) == 0
        assert "0 applied, 1 already imported" in capsys.readouterr().out
        assert _orders_total(db, shipped_config) == 6
        # An order after the figures' "as of" adds on top; one before is inside them
        orders = tmp_path / "orders.csv"
        orders.write_text(
            "order_id,customer_id,total,currency,discount_code,created_at\n"
            f"o-1,cust_1,1000,RUB,,{(AS_OF + timedelta(minutes=5)).isoformat()}\n"
            f"o-0,cust_1,500,RUB,SAVE,{(AS_OF - timedelta(days=3)).isoformat()}\n",
            encoding="utf-8",
        )
        assert _run(str(orders)) == 0
        assert _orders_total(db, shipped_config) == 7
        assert _run(str(orders)) == 0
        assert _orders_total(db, shipped_config) == 7
        assert "0 applied, 2 already imported" in capsys.readouterr().out.splitlines()[-1]
    finally:
        db.dispose()


def test_a_bad_row_is_reported_with_file_line_and_column_and_the_others_apply(
    shipped_config: Config,
    migrated_template: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "shop.db"
    shutil.copyfile(migrated_template, path)
    monkeypatch.setenv("CARTFLOW_DATABASE_URL", f"sqlite:///{path}")
    db = Database(f"sqlite:///{path}")
    try:
        engine = Engine(db, SimulatedClock(T0), ConfigHolder(shipped_config), ChannelRouter({}))
        engine.apply_events(engine.ingest([cart_updated(T0)]))
        orders = tmp_path / "orders.csv"
        at = (T0 + timedelta(minutes=5)).isoformat()
        orders.write_text(
            "order_id,customer_id,total,currency,created_at\n"
            f"o-1,cust_1,1000,RUB,{at}\n"
            f"o-2,cust_1,lots,RUB,{at}\n"
            f"o-3,cust_1,300,RUB,\n"
            f"o-4,cust_1,200,RUB,{at}\n",
            encoding="utf-8",
        )
        assert _run(str(orders)) == 1
        out, err = capsys.readouterr()
        assert f"{orders}:3: column 'total':" in err
        assert f"{orders}:4: column 'created_at':" in err
        assert "anna" not in err
        assert "4 rows, 2 applied, 0 already imported, 2 bad" in out
        assert _orders_total(db, shipped_config) == 2
    finally:
        db.dispose()


def test_a_bad_customers_row_names_its_column_and_no_contact_detail(
    migrated_template: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "shop.db"
    shutil.copyfile(migrated_template, path)
    monkeypatch.setenv("CARTFLOW_DATABASE_URL", f"sqlite:///{path}")
    customers = tmp_path / "customers.csv"
    customers.write_text(
        "email,customer_id,orders_count,total_spent\n"
        "anna@example.com,cust_1,six,100\n"
        "bob@example.com,cust_2,2,-5\n"
        "cara@example.com,cust_3,2,100\n",
        encoding="utf-8",
    )
    assert _run(str(customers), "--as-of", AS_OF.isoformat()) == 1
    out, err = capsys.readouterr()
    assert f"{customers}:2: column 'orders_count':" in err
    assert f"{customers}:3: column 'total_spent':" in err
    assert "@example.com" not in err
    assert "3 rows, 1 applied, 0 already imported, 2 bad" in out
