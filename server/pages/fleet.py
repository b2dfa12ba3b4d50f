"""The fleet page for teachers: workers as the jobs they claimed remember them.

The server keeps no table of workers: a worker is known by the ``X-Worker`` name stored
on each job it claimed. From the jobs alone this page shows each worker's last claim and
running jobs, the leases about to run out, and the latest failures with their messages.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db.models import Count, Max, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from server.leases import expire_leases
from server.models import Job
from server.pages.access import page

EXPIRING_WITHIN = datetime.timedelta(minutes=5)
RECENT_FAILURES = 20


@dataclass(frozen=True)
class WorkerSeen:
    """One ``X-Worker`` name and what the jobs say about it."""

    name: str
    last_claim: datetime.datetime | None
    running: int
    done: int
    failed: int


def workers_seen() -> list[WorkerSeen]:
    """Every worker name on a job, the most recent claimer first."""
    rows = (
        Job.objects.exclude(worker="")
        .values("worker")
        .annotate(
            last_claim=Max("claimed"),
            running=Count("id", filter=Q(status="running")),
            done=Count("id", filter=Q(status="done")),
            failed=Count("id", filter=Q(status="failed")),
        )
        .order_by("-last_claim", "worker")
    )
    return [
        WorkerSeen(row["worker"], row["last_claim"], row["running"], row["done"], row["failed"])
        for row in rows
    ]


def expiring_leases(now: datetime.datetime) -> QuerySet[Job]:
    """Running jobs whose lease ends within :data:`EXPIRING_WITHIN`, soonest first."""
    return (
        Job.objects.filter(status="running", lease_expires__lte=now + EXPIRING_WITHIN)
        .select_related("owner", "dataset")
        .order_by("lease_expires")
    )


def recent_failures() -> QuerySet[Job]:
    """The latest failed jobs, with the worker that ran them and their message."""
    failed = Job.objects.filter(status="failed").select_related("owner", "dataset")
    return failed.order_by("-finished", "-id")[:RECENT_FAILURES]


@require_GET
@page(staff=True)
def fleet(request: HttpRequest) -> HttpResponse:
    """Workers, leases about to expire and recent failures."""
    expire_leases()
    now = timezone.now()
    context = {
        "now": now,
        "workers": workers_seen(),
        "expiring": expiring_leases(now),
        "failures": recent_failures(),
        "expiring_minutes": int(EXPIRING_WITHIN.total_seconds() // 60),
        "pending": Job.objects.filter(status="pending").count(),
        "nav": "fleet",
    }
    return render(request, "pages/fleet.html", context)
