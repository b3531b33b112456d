"""The command line's errors: the ``CliError`` branch of :mod:`cartflow.engine.errors`' tree.

They live here, not in the engine (which has no command line), and not in
:mod:`cartflow.workers.cli`, so the modules behind the commands
(:mod:`cartflow.workers.tools`, :mod:`cartflow.workers.diff`, :mod:`cartflow.workers.preview`)
raise them without importing the CLI that imports them.
"""

from __future__ import annotations

from cartflow.engine.errors import CartflowError


class CliError(CartflowError):
    """A user mistake on the command line: printed as one line, exit :attr:`code`."""

    #: The exit status (2: the command line was wrong).
    code: int = 2


class NoDatabase(CliError):
    """A read-only command found nothing to read: exit 1."""

    code = 1


__all__ = ["CliError", "NoDatabase"]
