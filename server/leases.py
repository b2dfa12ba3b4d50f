"""Claiming jobs and taking them back from workers that went silent.

A claim is a lease of ``time_limit + JOB_LEASE_GRACE`` seconds. Expired leases are swept
lazily, before every claim and whenever a job is looked at, so no timer process is needed.

Claims are atomic on both databases we support: on SQLite every transaction begins
``IMMEDIATE`` (settings), so claims run one after another; on PostgreSQL the oldest pending
row is locked with ``SKIP LOCKED``. The final update is conditional on the job still being
pending either way, so a job is never handed out twice.
"""

from __future__ import annotations

import datetime
import logging

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from server.models import Job

log = logging.getLogger(__name__)

WORKER_LOST = "worker lost"


def expire_leases() -> int:
    """Requeue running jobs whose lease has passed, or fail them after the last attempt."""
    now = timezone.now()
    expired = Job.objects.filter(status="running", lease_expires__lt=now)
    if not expired.exists():
        return 0
    with transaction.atomic():
        lost = expired.filter(attempt__gte=settings.JOB_MAX_ATTEMPTS).update(
            status="failed", message=WORKER_LOST, finished=now, lease_expires=None
        )
        requeued = expired.update(status="pending", lease_expires=None)
    if lost or requeued:
        log.info("expired leases: %d jobs requeued, %d failed", requeued, lost)
    return lost + requeued


def _lease_end(job: Job, now: datetime.datetime) -> datetime.datetime:
    time_limit = job.time_limit or settings.JOB_DEFAULT_TIME_LIMIT
    return now + datetime.timedelta(seconds=time_limit + settings.JOB_LEASE_GRACE)


def claim_job(worker: str) -> Job | None:
    """Give the oldest pending job to ``worker`` (running, attempt + 1), or ``None``."""
    expire_leases()
    with transaction.atomic():
        pending = Job.objects.filter(status="pending").order_by("created", "id")
        if connection.features.has_select_for_update_skip_locked:
            pending = pending.select_for_update(skip_locked=True)
        job = pending.first()
        if job is None:
            return None
        now = timezone.now()
        claimed = Job.objects.filter(pk=job.pk, status="pending").update(
            status="running",
            attempt=F("attempt") + 1,
            lease_expires=_lease_end(job, now),
            claimed=now,
            worker=worker[:200],
        )
    if not claimed:
        return None
    job.refresh_from_db()
    log.info("job %d claimed by %s (attempt %d)", job.pk, worker or "?", job.attempt)
    return job
