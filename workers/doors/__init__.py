"""Doors: routes of the API app that take a shop platform's own webhooks, check them the
platform's way over the raw body, and store them as native events through the same path
as ``POST /v1/events`` (docs/doors.md).

* :mod:`~cartflow.workers.doors.shopify` — ``POST /v1/shopify/webhooks``
  (mapping: :mod:`~cartflow.workers.doors.shopify_map`)
* :mod:`~cartflow.workers.doors.woocommerce` — ``POST /v1/woocommerce/webhooks``
* :mod:`~cartflow.workers.doors.generic` — ``POST /v1/doors/{name}``, configured under
  ``doors:`` in ``scenarios.yaml``

Shared: :mod:`~cartflow.workers.doors.signatures` (how a webhook is verified),
:mod:`~cartflow.workers.doors.drafts` (native events built from a payload, and the 422
naming the payload's path), :mod:`~cartflow.workers.doors.intake` (the answers, storing).
"""
