"""``cartflow`` command line (architecture §9, a contract).

Every command turns bad input into a one-line error and an exit code, never a traceback.

Each command imports what it needs when it runs (the functions below import inside):
``cartflow validate`` should not pay for uvicorn, Dramatiq and the HTTP app, which the
long-running commands load. That is the one place cartflow imports inside functions on
purpose.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from cartflow.engine.scenario.loader import ConfigError, load_config
from cartflow.engine.timing import parse_duration
from cartflow.workers.errors import CliError as CliError  # re-exported (defined here before)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except CliError as exc:
        print(f"cartflow {args.command}: {exc}", file=sys.stderr)
        return exc.code
    except Exception as exc:  # never a traceback to a user; CARTFLOW_DEBUG=1 shows it
        if os.environ.get("CARTFLOW_DEBUG"):
            raise
        print(
            f"cartflow {args.command}: internal error: {type(exc).__name__}: {exc} "
            "(set CARTFLOW_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cartflow", description="Abandoned-cart reminders that never annoy."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("validate", help="check scenarios.yaml, includes and templates")
    p.add_argument("--config", default="scenarios.yaml")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("schema", help="write JSON Schemas of the files, for editors")
    p.add_argument("--out", default="schema", help="directory to write them in (default: schema)")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("preview", help="render one step as the channel carries it")
    p.add_argument("scenario")
    p.add_argument("step")
    p.add_argument("--locale")
    p.add_argument("--cart", help="JSON file with a cart (native event 'cart' object)")
    p.add_argument("--config", default="scenarios.yaml")
    p.add_argument(
        "--html-out", help="where to write the email HTML (default: preview-<step>.html)"
    )
    p.set_defaults(func=lambda a: _lazy("cartflow.workers.tools", "cmd_preview")(a))

    p = sub.add_parser(
        "simulate", help="run the engine over a JSONL event file on a simulated clock"
    )
    p.add_argument("--events", required=True)
    p.add_argument("--config", default="scenarios.yaml")
    p.add_argument("--until", help="ISO time or +duration after the last event (default +7d)")
    p.add_argument("--format", choices=("jsonl", "table"), default="jsonl")
    p.set_defaults(func=lambda a: _lazy("cartflow.workers.tools", "cmd_simulate")(a))

    p = sub.add_parser("import", help="import a shop's customers.csv or orders.csv history")
    p.add_argument("file", help="customers CSV (customer_id, orders_count, ...) or orders CSV")
    p.add_argument(
        "--as-of", help="ISO time the customers' figures are as of (default: file mtime)"
    )
    p.add_argument("--config", default=os.environ.get("CARTFLOW_CONFIG", "scenarios.yaml"))
    p.set_defaults(func=lambda a: _lazy("cartflow.workers.importing", "cmd_import")(a))

    p = sub.add_parser(
        "diff", help="what changed between two configurations, and which journeys it touches"
    )
    p.add_argument("old", help="scenarios.yaml path or git revision")
    p.add_argument("new", help="scenarios.yaml path or git revision")
    p.add_argument("--config", default="scenarios.yaml", help="config path inside a git revision")
    p.add_argument("--database", default=os.environ.get("CARTFLOW_DATABASE_URL"))
    p.add_argument("--apply", choices=("keep", "migrate"), default="keep")
    p.set_defaults(func=lambda a: _lazy("cartflow.workers.diff", "cmd_diff")(a))

    p = sub.add_parser("demo", help="run the embedded product with a built-in shop simulator")
    p.add_argument("--speed", type=float, default=2400.0, help="simulated seconds per real second")
    p.add_argument("--duration", default="27h", help="simulated shop time (default 27h)")
    p.add_argument(
        "--shoppers",
        type=int,
        help="simulated shoppers (default: one of each persona, workers/shop.py)",
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--config", help="scenarios.yaml to run (default: the shipped example)")
    p.add_argument("--verbose", action="store_true")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("run", help="embedded mode as a service: API, dispatcher, workers, SQLite")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_run)

    for name, helptext, func in (
        ("api", "serve POST /v1/events (production)", cmd_api),
        ("worker", "run Dramatiq workers (production)", cmd_worker),
        ("scheduler", "run the timer dispatcher (production)", cmd_scheduler),
    ):
        p = sub.add_parser(name, help=helptext)
        p.set_defaults(func=func)
        if name == "worker":
            p.add_argument("--threads", type=int)

    p = sub.add_parser("status", help="queue depths and timer lag")
    p.set_defaults(func=lambda a: _lazy("cartflow.workers.tools", "cmd_status")(a))
    p = sub.add_parser("profile", help="one shopper: features, journeys, deliveries, products")
    p.add_argument("id", help="a profile id, a customer id or an anonymous id")
    p.add_argument("--show-pii", action="store_true", help="show contacts unmasked")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--config", default="scenarios.yaml", help="whose segments to evaluate")
    p.set_defaults(func=lambda a: _lazy("cartflow.workers.profile_cmd", "cmd_profile")(a))
    p = sub.add_parser("features", help="the shoppers' kept features (sessions, orders, ...)")
    action = p.add_subparsers(dest="action", required=True)
    p = action.add_parser("rebuild", help="rebuild them from the events, visits and paid carts")
    p.add_argument("--all", action="store_true", help="every profile (default: those without)")
    p.set_defaults(func=lambda a: _lazy("cartflow.workers.features_cmd", "cmd_rebuild")(a))
    p = sub.add_parser("report", help="messages and recovered carts per scenario, step, channel")
    p.set_defaults(func=lambda a: _lazy("cartflow.workers.tools", "cmd_report")(a))
    return parser


def _lazy(module: str, name: str) -> Any:
    import importlib

    return getattr(importlib.import_module(module), name)


def _logging(fmt: str, level: int = logging.INFO) -> None:
    from cartflow.workers.logs import configure

    configure(fmt, level)


def cmd_validate(args: argparse.Namespace) -> int:
    from cartflow.providers.registry import validators

    try:
        config = load_config(args.config, provider_types=validators())
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        errors = sum(1 for p in exc.problems if p.severity == "error")
        print(f"{errors} error(s); configuration refused", file=sys.stderr)
        return 1
    for warning in config.warnings:
        print(warning, file=sys.stderr)
    print(
        f"ok: {len(config.scenarios)} scenario(s), {len(config.files)} file(s), "
        f"{len(config.warnings)} warning(s), version {config.version}"
    )
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cartflow.engine.scenario.editor_schema import write_schemas

    try:
        written = write_schemas(Path(args.out))
    except OSError as exc:
        raise CliError(f"cannot write {args.out}: {exc.strerror}") from None
    for path in written:
        print(f"wrote {path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from cartflow.workers.demo import DEFAULT_CONFIG, run_demo
    from cartflow.workers.shop import PERSONAS

    _logging("console", logging.INFO if args.verbose else logging.WARNING)
    try:
        duration = parse_duration(args.duration)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.speed <= 0:
        raise CliError("--speed must be positive")
    summary = run_demo(
        config_path=args.config or str(DEFAULT_CONFIG),
        speed=args.speed,
        duration=duration,
        shoppers=len(PERSONAS) if args.shoppers is None else args.shoppers,
        seed=args.seed,
        out=sys.stdout,
    )
    return 0 if summary["sent_after_purchase"] == 0 else 1


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def _settings() -> Any:
    from cartflow.workers.settings import Settings

    return Settings()


def cmd_run(args: argparse.Namespace) -> int:
    from cartflow.workers.runtime import Runtime

    settings = _settings()
    _logging("console" if sys.stderr.isatty() else settings.log_format)
    if not settings.api_keys:
        raise CliError("set CARTFLOW_API_KEYS (comma-separated) so the shop can authenticate")
    runtime = Runtime(settings, embedded=True)
    runtime.start_worker(threads=min(settings.worker_threads, 4))
    runtime.start_dispatcher(reload_interval=settings.reload_interval)
    port = runtime.start_api(args.host, args.port)
    print(
        f"cartflow running on http://{args.host}:{port} (SQLite, embedded); Ctrl-C stops",
        file=sys.stderr,
    )
    _wait_for_signal()
    runtime.stop()
    return 0


def cmd_api(_: argparse.Namespace) -> int:
    import uvicorn

    from cartflow.workers.api import ServerLimits, server_config
    from cartflow.workers.runtime import Runtime

    settings = _settings()
    _logging(settings.log_format)
    try:
        limits = ServerLimits.from_settings(settings)
    except ValueError as exc:
        raise CliError(f"CARTFLOW_API_* setting: {exc}") from None
    runtime = Runtime(settings, embedded=False)
    config = server_config(runtime.app(), limits, host=settings.api_host, port=settings.api_port)
    try:
        uvicorn.Server(config).run()
    finally:
        runtime.stop()
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from cartflow.workers.runtime import Runtime

    settings = _settings()
    _logging(settings.log_format)
    runtime = Runtime(settings, embedded=False)
    runtime.start_worker(threads=args.threads)
    reload = threading.Thread(
        target=_reload_loop, args=(runtime, settings.reload_interval), daemon=True
    )
    reload.start()
    _wait_for_signal()
    runtime.stop()
    return 0


def _reload_loop(runtime: Any, interval: float) -> None:
    stop = threading.Event()
    while not stop.wait(interval):
        runtime.configs.reload()


def cmd_scheduler(_: argparse.Namespace) -> int:
    from cartflow.workers.runtime import Runtime

    settings = _settings()
    _logging(settings.log_format)
    runtime = Runtime(settings, embedded=False)
    runtime.start_dispatcher(reload_interval=settings.reload_interval)
    _wait_for_signal()
    runtime.stop()
    return 0


__all__ = ["main", "timedelta"]
