"""``cartflow preview SCENARIO STEP``: the message exactly as the channel carries it."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cartflow.engine import context_schema as schema
from cartflow.engine.events import Cart as CartModel
from cartflow.engine.features import features_of
from cartflow.engine.render import RenderError
from cartflow.engine.scenario.loader import load_config
from cartflow.engine.sms import SmsShape
from cartflow.providers.registry import validators
from cartflow.workers.errors import CliError

#: Used when no --cart is given.
SAMPLE_CART: dict[str, Any] = {
    "id": "cart_sample",
    "currency": "RUB",
    "url": "https://shop.example/cart/sample",
    "items": [
        {
            "sku": "SKU-1",
            "name": "Кроссовки",
            "price": 4990,
            "quantity": 1,
            "url": "https://shop.example/p/1",
            "image": "https://shop.example/i/1.jpg",
        },
        {
            "sku": "SKU-2",
            "name": "Носки",
            "price": 390,
            "quantity": 2,
            "url": "https://shop.example/p/2",
            "image": "https://shop.example/i/2.jpg",
        },
    ],
}


def preview(args: argparse.Namespace) -> int:
    config = load_config(args.config, provider_types=validators())
    scenario = config.scenario(args.scenario)
    if scenario is None:
        raise CliError(
            f"no scenario {args.scenario!r}; known: {', '.join(s.id for s in config.scenarios)}"
        )
    step = next((s for s in scenario.model.steps if s.id == args.step), None)
    if step is None:
        raise CliError(
            f"scenario {scenario.id} has no step {args.step!r}; steps: "
            + ", ".join(s.id for s in scenario.model.steps)
        )
    raw = SAMPLE_CART
    if args.cart:
        try:
            raw = json.loads(Path(args.cart).read_text(encoding="utf-8"))
            raw = raw.get("cart", raw)
            CartModel.model_validate(raw)
        except (OSError, ValueError) as exc:
            raise CliError(f"--cart {args.cart}: {exc}".splitlines()[0]) from None
    cart = CartModel.model_validate(raw)
    locale = args.locale or config.settings.defaults.locale
    now = datetime.now(UTC)
    blank = features_of({}, now, now)
    context: dict[str, Any] = {
        "cart": schema.view(
            schema.CART,
            {
                "id": cart.id,
                "value": float(cart.value),
                "currency": cart.currency,
                "item_count": sum(i.quantity for i in cart.items),
                "url": cart.url,
                "items": [i.model_dump(mode="json", exclude_none=True) for i in cart.items],
                "status": "abandoned",
                "created_at": now,
            },
        ),
        "customer": schema.view(
            schema.CUSTOMER,
            {
                "id": "preview",
                "first_name": {"ru": "Анна", "uk": "Оксана"}.get(locale, "Emma"),
                "locale": locale,
                **{k: blank[k] for k in schema.CUSTOMER_FEATURES},
            },
        ),
        "visitor": schema.view(
            schema.VISITOR,
            {
                **{k: blank[k] for k in schema.VISITOR_FEATURES},
                "sessions": 2,
                "last_seen_at": now,
                "is_known": True,
            },
        ),
        "session": schema.view(
            schema.SESSION,
            {"id": "preview", "started_at": now, "last_seen_at": now, "count": 2},
        ),
        "journey": schema.view(
            schema.JOURNEY,
            {
                "scenario": scenario.id,
                "step": 0,
                "group": "treatment",
                "started_at": now,
                "sent": 0,
            },
        ),
        "now": now,
        "segments": set(),
        "step": schema.view(schema.STEP, {"id": step.id, "channel": step.channel}),
        "links": schema.view(schema.LINKS, {"cart": cart.url}),
        "discount": None,
    }
    if step.discount is not None:
        d = step.discount
        context["discount"] = schema.view(
            schema.DISCOUNT,
            {
                "code": f"{d.prefix}PREVIEW1",
                "percent": float(d.percent) if d.percent else None,
                "amount": float(d.amount) if d.amount else None,
                "currency": cart.currency,
                "expires_at": now + d.ttl,
            },
        )
    status = 0
    refs = (
        [(v.id, step.template_for(step.channel, v.id)) for v in step.variants]
        if step.variants
        else [(None, step.template_for(step.channel))]
    )
    for variant, ref in refs:
        assert ref is not None
        if variant:
            print(f"variant {variant}")
        try:
            parts = config.templates.render(
                ref, step.channel, locale, context, config.settings.defaults.locale
            )
        except RenderError as exc:
            raise CliError(str(exc)) from None
        print(f"{scenario.id}/{step.id} · {step.channel} · {locale} · {parts['template']}")
        if step.channel == "push":
            print(f"title: {parts['title']}\nbody:  {parts['body']}")
            print(f"link:  {parts.get('url') or cart.url}")
        elif step.channel in ("sms", "messenger"):
            shape = SmsShape.of(parts["text"])
            print(parts["text"])
            print(
                f"-- {shape.encoding}, {shape.length} characters, {shape.parts} part(s) "
                f"of up to {shape.per_part}"
            )
            if shape.parts > step.max_sms_parts:
                print(
                    f"warning: needs {shape.parts} parts; the step allows {step.max_sms_parts} "
                    "(max_sms_parts) — it would be skipped at send time"
                )
                status = 1
        else:
            print(f"subject: {parts['subject']}\n\n{parts['text']}")
            if parts.get("html"):
                out = Path(args.html_out or f"preview-{scenario.id}-{step.id}-{locale}.html")
                out.write_text(parts["html"], encoding="utf-8")
                print(f"\nHTML written to {out}")
    return status
