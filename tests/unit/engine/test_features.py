"""Features kept incrementally equal a brute-force recomputation over the whole history,
and build_context reads them without COUNT queries."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event as sa_event
from sqlalchemy import select

from cartflow.engine.context import build_context
from cartflow.engine.features import read_features
from cartflow.engine.scenario.loader import Config
from cartflow.engine.state import ACTIVITY, apply_event
from cartflow.engine.store import Database, Identity, Profile
from cartflow.engine.store.models import Cart

from ..factories import T0, cart_updated, event, fresh_database

DEVICES = ("desktop", "mobile", "tablet")


@st.composite
def streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    rows = []
    for n in range(draw(st.integers(1, 25))):
        who = draw(st.sampled_from((1, 2)))
        rows.append(
            {
                "n": n,
                "who": who,
                "type": draw(
                    st.sampled_from(
                        (
                            "session.started",
                            "page.viewed",
                            "product.viewed",
                            "checkout.started",
                            "order.completed",
                            "customer.updated",
                        )
                    )
                ),
                "at": T0 + timedelta(hours=draw(st.integers(-45 * 24, 5 * 24))),
                "session": f"s{who}-{draw(st.integers(0, 5))}",
                "device": draw(st.sampled_from(DEVICES)),
                "source": draw(st.sampled_from(("google", "email", "direct"))),
                "step": draw(st.sampled_from(("address", "shipping", "payment"))),
                "order": f"o{who}-{draw(st.integers(0, 4))}",
                "total": draw(st.integers(0, 50000)),
                "discount": draw(st.sampled_from((None, "SAVE10", "WELCOME"))),
                "figures": {
                    "orders_count": draw(st.integers(0, 12)),
                    "total_spent": draw(st.integers(0, 200000)),
                    "discount_orders_count": draw(st.integers(0, 6)),
                },
            }
        )
    return rows


def _native(row: dict[str, Any]) -> Any:
    ids = {"anonymous_id": f"anon_{row['who']}", "customer_id": f"cust_{row['who']}"}
    extra: dict[str, Any] = {"session_id": row["session"]}
    if row["type"] == "session.started":
        extra["session"] = {"device": row["device"], "source": row["source"]}
    elif row["type"] == "product.viewed":
        extra["product"] = {"sku": "sku-1"}
    elif row["type"] == "checkout.started":
        extra["checkout"] = {"step": row["step"]}
    elif row["type"] == "order.completed":
        order = {"id": row["order"], "total": row["total"], "currency": "RUB"}
        if row["discount"]:
            order["discount_code"] = row["discount"]
        extra = {"order": order}
    elif row["type"] == "customer.updated":
        extra = {"customer": {**row["figures"], "currency": "RUB"}}
    return event(row["type"], row["at"], **ids, **extra)


def _in(at: datetime, now: datetime, days: int) -> bool:
    return 0 <= (now.date() - at.date()).days < days


def _expected(rows: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """Straight from the whole list, as docs/scenarios.md defines each feature."""
    first_seen: dict[str, datetime] = {}
    orders: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["type"] == "order.completed":
            orders.setdefault(row["order"], row)
        elif row["type"] != "customer.updated":
            first_seen.setdefault(row["session"], row["at"])
    visits = [r for r in rows if r["type"] == "session.started"]
    steps = [r for r in rows if r["type"] == "checkout.started"]
    active = [r["at"] for r in rows if r["type"] in ACTIVITY]
    # the latest customer.updated is the baseline "as of its at"; later orders add on top
    updates = [r for r in rows if r["type"] == "customer.updated"]
    base = max(updates, key=lambda r: (r["at"], r["n"])) if updates else None
    figures = base["figures"] if base else {}
    on_top = [r for r in orders.values() if base is None or r["at"] > base["at"]]
    counted = figures.get("orders_count", 0) + len(on_top)
    spent = figures.get("total_spent", 0) + sum(r["total"] for r in on_top)
    discounted = figures.get("discount_orders_count", 0) + sum(1 for r in on_top if r["discount"])
    discounted = min(discounted, counted)

    def latest(key: str) -> Any:
        return max(visits, key=lambda r: (r["at"], r["n"]))[key] if visits else None

    def first(key: str) -> Any:
        return min(visits, key=lambda r: (r["at"], r["n"]))[key] if visits else None

    def views(kind: str) -> int:
        return sum(1 for r in rows if r["type"] == kind and _in(r["at"], now, 7))

    return {
        "sessions": len(first_seen),
        "sessions_7d": sum(1 for at in first_seen.values() if _in(at, now, 7)),
        "sessions_30d": sum(1 for at in first_seen.values() if _in(at, now, 30)),
        "page_views_7d": views("page.viewed"),
        "product_views_7d": views("product.viewed"),
        "checkout_reached": bool(steps),
        "checkout_step": max(steps, key=lambda r: (r["at"], r["n"]))["step"] if steps else None,
        "device": latest("device"),
        "first_device": first("device"),
        "source": latest("source"),
        "first_source": first("source"),
        "hours_since_last_visit": ((now - max(active)).total_seconds() / 3600 if active else None),
        "orders_30d": sum(1 for r in orders.values() if _in(r["at"], now, 30)),
        "orders_total": counted,
        "lifetime_value": float(spent),
        "average_order_value": spent / counted if counted else 0.0,
        "discount_orders": discounted,
        "discount_share": discounted / counted if counted else 0.0,
    }


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=streams(), later=st.integers(0, 40 * 24))
def test_kept_features_equal_a_recomputation_from_the_whole_history(
    migrated_template: Path, tmp_path: Path, rows: list[dict[str, Any]], later: int
) -> None:
    # Given a random, partly out-of-order stream for one or two shoppers, applied one by one
    db = fresh_database(migrated_template, tmp_path)
    now = max(r["at"] for r in rows) + timedelta(hours=later)
    try:
        for row in rows:
            with db.sessions() as session, session.begin():
                apply_event(session, _native(row), now=row["at"], idle=timedelta(hours=1))
        # When the features are read at a random later `now`
        with db.sessions() as session:
            for who in {r["who"] for r in rows}:
                ident = session.get(Identity, ("customer_id", f"cust_{who}"))
                assert ident is not None
                profile = session.get(Profile, ident.profile_id)
                assert profile is not None
                kept = read_features(session, profile.id, now, profile.last_seen_at)
                # Then each equals the recomputation over that shopper's whole list
                mine = [r for r in rows if r["who"] == who]
                assert kept == _expected(mine, now)
    finally:
        db.dispose()


def test_build_context_issues_no_count_and_a_constant_number_of_queries(
    shipped_config: Config, db: Database
) -> None:
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    with db.sessions() as session, session.begin():
        apply_event(session, cart_updated(T0), now=T0, idle=timedelta(hours=1))
    sa_event.listen(db.engine, "before_cursor_execute", record)
    counts = []
    for day in range(3):
        # Given a history that grows (more visits and views each round)
        with db.sessions() as session, session.begin():
            for k in range(20):
                at = T0 + timedelta(days=day, minutes=k)
                apply_event(
                    session,
                    event("page.viewed", at, session_id=f"s-{day}-{k}"),
                    now=at,
                    idle=timedelta(hours=1),
                )
        # When the context is built
        statements.clear()
        with db.sessions() as session:
            profile = session.scalars(select(Profile)).one()
            cart = session.scalars(select(Cart)).one()
            context = build_context(session, shipped_config, profile, cart, T0 + timedelta(3))
        assert context["visitor"]["sessions"] == 20 * (day + 1)
        counts.append(len(statements))
        # Then no statement counts rows
        assert not [s for s in statements if "count(" in s.lower()]
    # and the number of statements does not grow with the history
    assert counts[0] == counts[1] == counts[2] and counts[0] <= 8
