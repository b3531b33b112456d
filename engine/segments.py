"""Built-in segments: conditions over the kept features (:mod:`cartflow.engine.features`).

A ``segments:`` entry of the same name in scenarios.yaml overrides the built-in one. The
thresholds are documented in docs/scenarios.md ("Built-in segments"); a test keeps the
two in step.
"""

from __future__ import annotations

#: name → condition, in the same language as scenarios.yaml's ``segments:``.
BUILTIN_SEGMENTS: dict[str, str] = {
    "purposeful": (
        "visitor.sessions_7d <= 1 and visitor.cart_adds_7d >= 1"
        " and visitor.cart_removals_7d == 0 and visitor.product_views_session <= 3"
    ),
    "explorer": "visitor.product_views_7d >= 10 and not visitor.checkout_reached",
    "hesitant": (
        "visitor.cart_returns_7d >= 2 or visitor.cart_removals_7d >= 2"
        " or (visitor.sessions_7d >= 2 and visitor.product_views_7d >= 3"
        " and visitor.top_category_share >= 0.6)"
    ),
    "first_time": "visitor.sessions <= 1 and customer.orders_total == 0",
    "returning": "customer.orders_total > 0",
    "vip": "customer.orders_total >= 5 or customer.lifetime_value >= 50000",
    "discount_hunter": "customer.orders_total >= 2 and customer.discount_share >= 0.5",
}
