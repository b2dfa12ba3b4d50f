"""A claim that may wait: ``POST jobs/request/`` with ``wait=<seconds>``.

The view claims at once, like any sync view; a request that found no job is then held
(a :class:`~server.held.HeldResponse`, completed on the event loop) until a job can be
claimed or the wait ends, costing a coroutine and a place in the process's
:class:`~server.wakeup.Hub`. Its claims run in the hub's database thread: a waiting request
holds no thread and no connection.

A client that goes away while waiting (a proxy's idle timeout, a worker stopping) is noticed
by Django, which cancels the wait; a job claimed in that very moment is released again, so
a cut long poll costs no job and no lease.
"""

from __future__ import annotations

import asyncio
import math

from django.conf import settings

from server.leases import claim_job, release_claim
from server.wakeup import Hub, hub

HEADER = "X-Long-Poll"  # on every answer of a server that holds claims: the wait it granted


def granted_wait(raw: str | None) -> float:
    """The seconds a request may be held: its ``wait`` capped at the server's maximum.

    Raises ValueError with the rest of a sentence for anything but a finite number >= 0.
    """
    if raw is None or raw == "":
        return 0.0
    try:
        wait = float(raw)
    except ValueError:
        raise ValueError(f"must be a number of seconds, got {raw[:40]!r}") from None
    if not math.isfinite(wait) or wait < 0:
        raise ValueError(f"must be a finite number of seconds >= 0, got {raw[:40]!r}")
    return min(wait, float(settings.LONG_POLL_MAX))


async def claim_waiting(worker: str, wait: float) -> int | None:
    """Claim the oldest pending job, waiting up to ``wait`` s for one; None if none came."""
    waiters = hub()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    woken = False
    while True:
        job = await _claim(waiters, worker)
        if job is not None:
            if waiters.waiting:
                waiters.wake()  # more may have come at once: the next waiter looks
            return job
        left = deadline - loop.time()
        if left <= 0 or not await waiters.wait(left, first=woken):
            return None
        woken = True  # woken but beaten to it: keep our turn at the head


async def _claim(waiters: Hub, worker: str) -> int | None:
    """One claim; if the request is cancelled meanwhile, the claimed job is released."""
    attempt = asyncio.ensure_future(waiters.in_db_thread(lambda: claim_job(worker)))
    try:
        return await asyncio.shield(attempt)
    except asyncio.CancelledError:
        job = await attempt
        if job is not None:
            await waiters.in_db_thread(lambda: release_claim(job, worker))
        raise
