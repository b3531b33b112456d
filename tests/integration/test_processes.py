"""Production mode as ops run it (architecture §6): ``cartflow api``, ``cartflow worker`` and
``cartflow scheduler`` as three processes configured only through the environment, one
PostgreSQL, one Redis — and each stops cleanly on SIGTERM.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from cartflow.engine.store.database import Database
from cartflow.engine.store.models import Delivery

from .conftest import (
    API_KEY,
    ago,
    auth,
    cart_event,
    cartflow_process,
    free_port,
    wait_until,
)
from .fake_provider import FakeProvider

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_the_three_processes_run_a_cart_and_stop_on_sigterm(
    pg_url: str,
    redis_url: str,
    config_path: Path,
    fake_provider: FakeProvider,
    tmp_path: Path,
    recipient_zone: str,
) -> None:
    # Given the three production processes, configured through the environment
    port = free_port()
    env = {
        "CARTFLOW_DATABASE_URL": pg_url,
        "CARTFLOW_REDIS_URL": redis_url,
        "CARTFLOW_CONFIG": str(config_path),
        "CARTFLOW_API_KEYS": API_KEY,
        "CARTFLOW_API_HOST": "127.0.0.1",
        "CARTFLOW_API_PORT": str(port),
        "CARTFLOW_DISPATCH_INTERVAL": "0.2",
        "CARTFLOW_TIMER_LEASE": "10",
        "CARTFLOW_LOG_FORMAT": "json",
        "CARTFLOW_RELOAD_INTERVAL": "60",
    }
    log = tmp_path / "processes.log"
    base = f"http://127.0.0.1:{port}"
    db = Database(pg_url, pool_size=1)
    try:
        with (
            cartflow_process(["api"], env, log) as api,
            cartflow_process(["worker", "--threads", "2"], env, log) as worker,
            cartflow_process(["scheduler"], env, log) as scheduler,
        ):
            processes = {"api": api, "worker": worker, "scheduler": scheduler}
            wait_until(lambda: _healthy(base), message="the API to answer /healthz")
            # When the shop posts a cart abandoned 25 hours ago
            event = cart_event("cart_procs", at=ago(hours=25), zone=recipient_zone)
            response = httpx.post(f"{base}/v1/events", json=event, headers=auth(), timeout=10)
            assert response.status_code == 202, response.text
            # Then the reminders go out, in order, once each
            fake_provider.wait_for(lambda r: len(r) >= 3)
            wait_until(
                lambda: _statuses(db) == ["accepted"] * 3, message="three accepted deliveries"
            )
            assert [r.channel for r in fake_provider.requests()] == ["push", "sms", "email"]
            crashed = {name: p.returncode for name, p in processes.items() if p.poll() is not None}
            assert crashed == {}, log.read_text()[-3000:]

            # When ops stop them
            for process in processes.values():
                process.send_signal(signal.SIGTERM)
            # Then each one exits cleanly and promptly
            started = time.monotonic()
            codes: dict[str, int | None] = {}
            for name, process in processes.items():
                try:
                    codes[name] = process.wait(timeout=max(1.0, 20 - (time.monotonic() - started)))
                except subprocess.TimeoutExpired:
                    codes[name] = None
            # (uvicorn shuts down gracefully, then re-raises the SIGTERM it captured, so the
            # API process ends "killed by SIGTERM" rather than with cmd_api's return 0)
            if codes["api"] == -signal.SIGTERM:
                codes["api"] = 0
            assert codes == {"api": 0, "worker": 0, "scheduler": 0}, log.read_text()[-3000:]
            assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    finally:
        db.dispose()


def _statuses(db: Database) -> list[str]:
    with db.sessions() as session:
        return list(session.scalars(select(Delivery.status).order_by(Delivery.created_at)))
