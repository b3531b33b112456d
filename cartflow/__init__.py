"""cartflow: an abandoned-cart trigger campaign engine.

Three packages live under this one name: :mod:`cartflow.engine` (the domain core),
:mod:`cartflow.providers` (the clients that send; plug-ins import
:mod:`cartflow.providers.base`) and :mod:`cartflow.workers` (the processes: HTTP app,
Dramatiq actors, scheduler, CLI). In the repository they are the top-level folders
``engine/``, ``providers/`` and ``workers/``; ``cartflow/`` links to them.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cartflow")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
