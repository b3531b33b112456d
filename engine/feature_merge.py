"""Two profiles' kept features as one person's (a merge: :mod:`cartflow.engine.merge`)."""

from __future__ import annotations

from cartflow.engine.feature_doc import (
    KEEP_CARTS,
    KEEP_ORDERS,
    KEEP_VISITS,
    MAX_CATEGORIES,
    Doc,
    came_back,
    copy,
    extreme,
    first_latest,
    keep_latest,
    parse_time,
    set_base,
    step,
    trim_days,
    visit_order,
)


def merged(target: Doc, source: Doc) -> Doc:
    """One person's document from two profiles' (``source`` merged into ``target``): counts
    add up (each event was counted on one profile only), for a first/latest value the
    earlier/later time wins, the lifetime baseline with the later ``at`` stands."""
    out, src = copy(target), copy(source)
    out["sessions"] = out.get("sessions", 0) + src.get("sessions", 0)
    for day, bucket in src["days"].items():
        mine = out["days"].setdefault(day, {})
        for key, value in bucket.items():
            if key == "c":
                for category, n in value.items():
                    if category in mine.get("c", {}) or len(mine.get("c", {})) < MAX_CATEGORIES:
                        mine.setdefault("c", {})[category] = mine.get("c", {}).get(category, 0) + n
            else:
                mine[key] = mine.get(key, 0) + value
    trim_days(out["days"])
    for sid, visit in src["visits"].items():
        had = out["visits"].setdefault(sid, {**visit, "pv": 0, "prv": 0})
        had["at"] = min(had["at"], visit["at"], key=parse_time)
        had["pv"] += visit["pv"]
        had["prv"] += visit["prv"]
    keep_latest(out["visits"], KEEP_VISITS, visit_order(out["visits"]))
    for cid, cart in src["carts"].items():
        had = out["carts"].get(cid)
        closed = bool(cart.get("closed") or (had or {}).get("closed"))
        if had is None or parse_time(cart["at"]) > parse_time(had["at"]):
            out["carts"][cid] = cart
        out["carts"][cid]["closed"] = closed
    keep_latest(out["carts"], KEEP_CARTS, lambda cid: (out["carts"][cid]["at"], cid))
    for key in ("device", "source"):
        if f"{key}_first" in src:
            first_latest(out, key, src[f"{key}_first"], parse_time(src[f"{key}_first_at"]))
            first_latest(out, key, src[f"{key}_latest"], parse_time(src[f"{key}_latest_at"]))
    out["checkout_reached"] = bool(out.get("checkout_reached") or src.get("checkout_reached"))
    if "checkout_step_at" in src:
        step(out, src["checkout_step"], parse_time(src["checkout_step_at"]))
    out["orders"] = {**src.get("orders", {}), **out.get("orders", {})}
    keep_latest(out["orders"], KEEP_ORDERS, lambda oid: (out["orders"][oid], oid))
    for key, pick in (("order_first_at", min), ("order_last_at", max)):
        if src.get(key):
            extreme(out, key, parse_time(src[key]), pick)
    # an order on both profiles counts once (entries kept before they had an id: never equal)
    ids = {o[3] for o in out.get("seen", []) if len(o) > 3}
    more = [o for o in src.get("seen", []) if len(o) <= 3 or o[3] not in ids]
    out["seen"] = [*out.get("seen", []), *more]
    if src.get("base"):
        set_base(out, src["base"])
    elif out.get("base"):
        out["seen"] = [o for o in out["seen"] if parse_time(o[0]) > parse_time(out["base"]["at"])]
    if "back" in src:
        out = came_back(out, src["back"]["channel"], parse_time(src["back"]["at"]))
    return out
