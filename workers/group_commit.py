"""Group commit for the API: the events of requests that arrive together are stored in one
transaction and announced in one queue message, and each request still gets its own
answer.

One event per request is how most shops post (a webhook per cart change). Stored one
transaction per request, a 2-core API spends its time on commits and pool checkouts and
falls behind at a few hundred requests a second. Here a request hands its events to a
*lane*; while a lane's transaction runs, the requests that arrive queue up and go
together in the next one. Under light load a request is stored alone, at once (nothing
waits for company); under heavy load the groups grow and the commits per event shrink.

Each request's answer is exactly what storing it alone would have given: its own new ids
(the rest are duplicates), a 409 when one of *its* ids was reused with another body, a
422 for an event storage cannot hold. When a group fails for a reason that belongs to
one request — a conflict, an unstorable value — the group is stored again request by
request, so one client's mistake never refuses another's events. A storage failure
(the database is down) fails every request of the group: nothing was stored.

The 202 leaves only after the group's commit and its enqueue, as before: "accepted"
means durable (architecture §3).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog
from starlette.concurrency import run_in_threadpool

from cartflow.engine.events import Event
from cartflow.engine.service import EventConflict

log = structlog.get_logger("cartflow.api")

#: Events stored in one transaction at most (a batch request is never split).
MAX_GROUP_EVENTS = 1000
#: Transactions in flight at once.
LANES = 2


@dataclass
class _Request:
    events: Sequence[Event]
    done: asyncio.Future[list[str]]


@dataclass
class GroupCommit:
    """``await submit(events)`` → the ids of ``events`` that were new (stored now)."""

    ingest: Callable[[Sequence[Event]], list[str]]
    enqueue: Callable[[list[str]], None]
    max_events: int = MAX_GROUP_EVENTS
    lanes: int = LANES
    #: Requests waiting for a lane, and the lanes running, per event loop (a server has
    #: one; a test client may run several, and a future belongs to its own loop).
    _waiting: dict[asyncio.AbstractEventLoop, deque[_Request]] = field(default_factory=dict)
    _lanes: dict[asyncio.AbstractEventLoop, set[asyncio.Task[None]]] = field(default_factory=dict)
    #: Transactions and requests stored so far (for the benchmark and /metrics).
    groups: int = 0
    requests: int = 0

    async def submit(self, events: Sequence[Event]) -> list[str]:
        loop = asyncio.get_running_loop()
        request = _Request(events, loop.create_future())
        waiting = self._waiting.setdefault(loop, deque())
        waiting.append(request)
        lanes = self._lanes.setdefault(loop, set())
        if len(lanes) < self.lanes:
            lane = loop.create_task(self._lane(waiting))  # it ends when nothing waits
            lanes.add(lane)
            lane.add_done_callback(lambda done: self._ended(loop, done))
        return await request.done

    def _ended(self, loop: asyncio.AbstractEventLoop, lane: asyncio.Task[None]) -> None:
        lanes = self._lanes.get(loop, set())
        lanes.discard(lane)
        if not lanes and not self._waiting.get(loop):  # forget a loop that is done
            self._lanes.pop(loop, None)
            self._waiting.pop(loop, None)

    async def _lane(self, waiting: deque[_Request]) -> None:
        while waiting:
            await self._store(self._take(waiting))

    def _take(self, waiting: deque[_Request]) -> list[_Request]:
        group: list[_Request] = []
        size = 0
        while waiting and (not group or size + len(waiting[0].events) <= self.max_events):
            request = waiting.popleft()
            group.append(request)
            size += len(request.events)
        return group

    async def _store(self, group: list[_Request]) -> None:
        self.groups += 1
        self.requests += len(group)
        try:
            new = await run_in_threadpool(self.ingest, [e for r in group for e in r.events])
        except (EventConflict, ValueError) as exc:
            if len(group) == 1:
                _fail(group, exc)
                return
            for request in group:  # whose mistake: each on its own
                await self._store([request])
            return
        except Exception as exc:
            _fail(group, exc)
            return
        if new:
            try:
                # off the event loop: a slow broker must not stall every other request
                await run_in_threadpool(self.enqueue, new)
            except Exception:  # durable already; the dispatcher re-drives unapplied events
                log.exception("enqueue_failed", count=len(new))
        fresh = set(new)
        for request in group:
            # a new id a later request of the group repeats is that request's duplicate,
            # as it would be had it come a moment later
            mine = [i for i in dict.fromkeys(e.id for e in request.events) if i in fresh]
            fresh.difference_update(mine)
            if not request.done.done():  # its client may have gone
                request.done.set_result(mine)


def _fail(group: list[_Request], exc: BaseException) -> None:
    """Storing ``group`` failed: each request raises what it failed with."""
    for request in group:
        if not request.done.done():
            request.done.set_exception(exc)
