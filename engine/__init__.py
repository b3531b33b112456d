"""cartflow's domain core: events, scenarios, journeys, timers, store.

Nothing in here imports a web framework, a broker or a concrete provider; the engine
talks to the outside world through small protocols (:class:`cartflow.engine.clock.Clock`,
:class:`cartflow.engine.sending.Sender`) so the same code runs in tests, in the embedded demo and
on a cluster.
"""
