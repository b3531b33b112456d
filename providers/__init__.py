"""Provider clients: one small protocol (:mod:`cartflow.providers.base`), one module per vendor,
and a registry (:mod:`cartflow.providers.registry`) that turns ``scenarios.yaml``'s ``providers:``
section into a :class:`cartflow.engine.sending.Sender`."""
