"""Provider clients: one small protocol (:mod:`providers.base`), one module per vendor,
and a registry (:mod:`providers.registry`) that turns ``scenarios.yaml``'s ``providers:``
section into a :class:`engine.sending.Sender`."""
