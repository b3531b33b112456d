"""The processes and their wiring: HTTP app, Dramatiq actors, the dispatcher tick, the
CLI, and the embedded runner. Everything here is transport; the logic is in ``engine``."""
