"""``GET /v1/profiles/{profile_id}/consent`` (API key): a shopper's consent, with its
proof — every change as it came (the consent log), and the contact points, masked.

For ops answering "did she agree, when, and how?" (38-FZ art. 18 puts the proof on the
sender). A merged profile answers for the profile it was merged into.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select

from cartflow.engine.service import Engine
from cartflow.engine.store.models import Consent, ConsentLog, Contact, Profile
from cartflow.providers.console import mask

#: How many merges are followed to the live profile.
MAX_MERGES = 20


def add_profile_routes(app: FastAPI, engine: Engine, authorised: Callable[[Request], bool]) -> None:
    @app.get(
        "/v1/profiles/{profile_id}/consent",
        response_model=None,
        summary="A shopper's consent and its proof",
    )
    async def consent_proof(profile_id: str, request: Request) -> Response:
        """The current consent per channel, the consent log (oldest first; ``superseded``:
        an older answer that arrived late, logged but not applied) and the contact
        points, addresses masked."""
        if not authorised(request):
            return JSONResponse(
                {"error": "missing or wrong API key; send 'Authorization: Bearer <key>'"},
                401,
                {"WWW-Authenticate": "Bearer"},
            )
        found = await run_in_threadpool(read_proof, engine, profile_id)
        if found is None:
            return JSONResponse({"error": f"no profile {profile_id!r}"}, 404)
        return JSONResponse(found)


def read_proof(engine: Engine, profile_id: str) -> dict[str, Any] | None:
    with engine.db.reading() as session:
        profile = session.get(Profile, profile_id)
        for _ in range(MAX_MERGES):
            if profile is None or not profile.merged_into:
                break
            profile = session.get(Profile, profile.merged_into)
        if profile is None:
            return None
        current = session.scalars(select(Consent).where(Consent.profile_id == profile.id))
        log = session.scalars(
            select(ConsentLog)
            .where(ConsentLog.profile_id == profile.id)
            .order_by(ConsentLog.at, ConsentLog.id)
        )
        contacts = session.scalars(
            select(Contact).where(Contact.profile_id == profile.id).order_by(Contact.id)
        )
        return {
            "profile_id": profile.id,
            "asked_for": profile_id,
            "consent": {
                row.channel: {
                    "granted": row.granted,
                    "source": row.source,
                    "at": row.updated_at.isoformat(),
                }
                for row in current
            },
            "log": [
                {
                    "channel": row.channel,
                    "granted": row.granted,
                    "source": row.source,
                    "at": row.at.isoformat(),
                    "recorded_at": row.recorded_at.isoformat(),
                    "evidence": row.evidence,
                    "superseded": row.superseded,
                }
                for row in log
            ],
            "contacts": [
                {
                    "channel": row.channel,
                    "address": mask(row.address),
                    "valid": row.valid,
                    "invalid_reason": row.invalid_reason,
                }
                for row in contacts
            ],
        }
