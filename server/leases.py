"""Claiming jobs and taking them back from workers that went silent.

A claim is a lease of ``time_limit + JOB_LEASE_GRACE`` seconds. Expired leases are swept
lazily, before every claim and whenever a job's result is looked at, so no timer process is
needed.

A job made pending again, here or by a submit, wakes a waiting long poll
(:mod:`server.wakeup`).

Claims are atomic on both databases we support: on SQLite every transaction begins
``IMMEDIATE`` (settings), so claims run one after another; on PostgreSQL the oldest pending
row is locked with ``SKIP LOCKED``. The final update is conditional on the job still being
pending either way, so a job is never handed out twice.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from server.models import Job
from server.prepared import Prepared, PreparedUpdate
from server.wakeup import job_ready

log = logging.getLogger(__name__)

WORKER_LOST = "worker lost"


def _expired(now: datetime.datetime) -> QuerySet[Job]:
    return Job.objects.filter(status="running", lease_expires__lt=now)


def _oldest_pending() -> QuerySet[Job, tuple[int, int | None, int]]:
    pending = Job.objects.filter(status="pending").order_by("created", "id")
    if connection.features.has_select_for_update_skip_locked:
        pending = pending.select_for_update(skip_locked=True)
    return pending.values_list("pk", "time_limit", "attempt")[:1]


# Run before and in every claim: compiled once (server.prepared).
_ANY_EXPIRED = Prepared(
    lambda now: _expired(now).order_by().values_list("pk")[:1], datetime.datetime
)
_OLDEST_PENDING = Prepared(_oldest_pending)


def _claim(
    pk: int, lease: datetime.datetime, now: datetime.datetime, worker: str
) -> tuple[QuerySet[Job], dict[str, Any]]:
    changes = {
        "status": "running",
        "attempt": F("attempt") + 1,
        "lease_expires": lease,
        "claimed": now,
        "worker": worker,
    }
    return Job.objects.filter(pk=pk, status="pending"), changes


_CLAIM = PreparedUpdate(_claim, int, datetime.datetime, datetime.datetime, str)


def expire_leases() -> int:
    """Requeue running jobs whose lease has passed, or fail them after the last attempt."""
    now = timezone.now()
    if _ANY_EXPIRED.first(now) is None:
        return 0
    expired = _expired(now)
    with transaction.atomic():
        lost = expired.filter(attempt__gte=settings.JOB_MAX_ATTEMPTS).update(
            status="failed", message=WORKER_LOST, finished=now, lease_expires=None
        )
        requeued = expired.update(status="pending", lease_expires=None)
    if lost or requeued:
        log.info("expired leases: %d jobs requeued, %d failed", requeued, lost)
    if requeued:
        job_ready(requeued)
    return lost + requeued


def _lease_end(time_limit: int | None, now: datetime.datetime) -> datetime.datetime:
    seconds = (time_limit or settings.JOB_DEFAULT_TIME_LIMIT) + settings.JOB_LEASE_GRACE
    return now + datetime.timedelta(seconds=seconds)


def claim_job(worker: str) -> int | None:
    """Give the oldest pending job to ``worker`` (running, attempt + 1); its id, or ``None``.

    Only the columns the lease needs are read, and nothing is read back: this runs on
    every worker's poll.
    """
    expire_leases()
    with transaction.atomic():
        row = _OLDEST_PENDING.first()
        if row is None:
            return None
        job_id, time_limit, attempt = row
        now = timezone.now()
        claimed = _CLAIM.run(job_id, _lease_end(time_limit, now), now, worker[:200])
    if not claimed:
        return None
    # The row was locked (PostgreSQL) or the database serialized (SQLite): attempt + 1 holds.
    log.info("job %d claimed by %s (attempt %d)", job_id, worker or "?", attempt + 1)
    return job_id


def release_claim(job_id: int, worker: str) -> bool:
    """Undo a claim whose answer never left (the long poll's client went away meanwhile).

    Only if the job is still running for ``worker``; it is pending again as if never
    claimed, and a waiting worker is woken for it. True when released.
    """
    with transaction.atomic():
        released = Job.objects.filter(pk=job_id, status="running", worker=worker[:200]).update(
            status="pending", attempt=F("attempt") - 1, lease_expires=None, claimed=None, worker=""
        )
        if released:
            job_ready()
    if released:
        log.info("job %d released: %s went away before the answer", job_id, worker or "?")
    return bool(released)
