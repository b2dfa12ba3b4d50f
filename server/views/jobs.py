"""Submitting jobs, claiming them, and looking at them."""

from __future__ import annotations

import secrets
from typing import Any, cast

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest, HttpResponse

from server.forms import SubmitForm
from server.held import HeldResponse
from server.leases import claim_job, expire_leases
from server.longpoll import HEADER as LONG_POLL_HEADER
from server.longpoll import claim_waiting, granted_wait
from server.models import Dataset, Job, Round
from server.views.common import (
    ADMIN_REQUIRED,
    ClientError,
    api_view,
    error_response,
    get_or_404,
    json_response,
    user_of,
    valid_form,
)
from server.visibility import may_submit_on, open_rounds
from server.wakeup import hub
from server.wire import job_details, job_result, job_to_run

SEED_LIMIT = 2**31
UNFINISHED = ("pending", "running")


def _round_for(user: User, round_id: int, dataset: Dataset) -> Round:
    """The round a job is submitted to, if the caller may submit to it."""
    round_ = get_or_404(Round.objects, round_id, "round", field="round")
    if round_.dataset_id != dataset.pk:
        raise ClientError(
            400,
            f"invalid round: round {round_id} is on dataset {round_.dataset_id}, not {dataset.pk}",
            {"round": f"is on dataset {round_.dataset_id}"},
        )
    if not user.is_staff and not round_.participants.filter(pk=user.pk).exists():
        raise ClientError(
            403, f"join round {round_id} before submitting to it", {"round": "not joined"}
        )
    if not round_.open:
        raise ClientError(409, f"round {round_id} ({round_.name}) is closed", {"round": "closed"})
    return round_


def _check_competition(user: User, dataset: Dataset) -> None:
    """A dataset with an open round is for that round's participants (and staff) only."""
    if not may_submit_on(user, dataset.pk):
        ids = ", ".join(str(pk) for pk in open_rounds(dataset.pk).values_list("pk", flat=True))
        raise ClientError(
            403,
            f"dataset {dataset.pk} is used by open round {ids}: join the round before "
            "submitting on its dataset",
            {"dataset": f"join round {ids} first"},
        )


def _over_quota(user: User) -> HttpResponse | None:
    """A ``429`` when a student already has the most unfinished jobs allowed, else ``None``.

    Call it inside the transaction that creates the job: the user's row is locked there, so
    concurrent submissions by one student are counted one after another.
    """
    limit = settings.JOB_MAX_PENDING_PER_USER
    if user.is_staff or not limit:
        return None
    User.objects.select_for_update().filter(pk=user.pk).first()
    waiting = Job.objects.filter(owner=user, status__in=UNFINISHED).count()
    if waiting < limit:
        return None
    answer = error_response(
        429,
        f"you have {waiting} jobs waiting or running, the most allowed is {limit}: "
        "submit more once some have finished",
        {"jobs": f"at most {limit} waiting or running"},
    )
    answer["Retry-After"] = str(settings.JOB_QUOTA_RETRY_AFTER)
    return answer


@api_view(method="POST")
def submit(request: HttpRequest) -> HttpResponse:
    """Queue a job; the server picks its seed so that reruns are reproducible."""
    user = user_of(request)
    data = valid_form(SubmitForm(request.POST))
    if data["time_limit"] is not None and not user.is_staff:
        raise ClientError(403, ADMIN_REQUIRED, {"time_limit": "only admins may set a time limit"})
    dataset = get_or_404(Dataset.objects, data["dataset"], "dataset", field="dataset")
    round_ = None if data["round"] is None else _round_for(user, data["round"], dataset)
    _check_competition(user, dataset)
    with transaction.atomic():
        refusal = _over_quota(user)
        if refusal is not None:
            return refusal
        job = Job.objects.create(
            owner=user,
            algorithm=data["algorithm"],
            dataset=dataset,
            params=data["params"],
            round=round_,
            time_limit=data["time_limit"],
            seed=secrets.randbelow(SEED_LIMIT),
        )
    return json_response({"job": job.pk}, status=201)


@api_view(method="GET")
def result(request: HttpRequest, job_id: int) -> HttpResponse:
    """A job's status, scores, message and pictures, for its owner or an admin.

    Leases are swept first, so the status shown is current. ``details`` needs no sweep:
    nothing it answers changes when a lease expires.
    """
    expire_leases()
    job = get_or_404(Job.objects.select_related("round"), job_id, "job")
    staff = request.user.is_staff
    if not staff and job.owner_id != request.user.pk:
        raise ClientError(403, f"job {job_id} is not yours: only its owner or an admin may see it")
    return json_response(job_result(job, staff=staff))


@api_view(method="GET", staff=True)
def details(request: HttpRequest, job_id: int) -> HttpResponse:
    """What a worker needs to run a job."""
    job = job_to_run(job_id)
    if job is None:
        raise ClientError(404, f"no job with id {job_id}")
    return json_response(job_details(job))


@api_view(method="POST", staff=True)
def request_job(request: HttpRequest) -> HttpResponse:
    """Claim the oldest pending job for the worker named in ``X-Worker``.

    With ``wait=<seconds>`` a request that finds no job is held until one comes or the wait
    ends (a long poll, :mod:`server.longpoll`), on the event loop; the ``X-Long-Poll``
    header tells the seconds granted, so a worker knows this server holds claims. With
    ``details=true`` the answer also carries the claimed job's details, saving the worker a
    ``GET jobs/<id>/``.
    """
    try:
        wait = granted_wait(request.POST.get("wait"))
    except ValueError as error:
        raise ClientError(400, f"invalid wait: {error}", {"wait": str(error)}) from None
    worker = request.headers.get("X-Worker", "")
    details = request.POST.get("details") == "true"
    job = claim_job(worker)
    if job is None and wait > 0:
        return HeldClaim(worker, wait, details=details)
    return _claim_answer(job, wait, details=details)


def _claim_answer(job: int | None, wait: float, *, details: bool) -> HttpResponse:
    body: dict[str, Any] = {"job": job}
    if job is not None and details:
        body["details"] = job_details(cast(Job, job_to_run(job)))  # claimed: it exists
    answer = json_response(body)
    answer[LONG_POLL_HEADER] = f"{wait:g}"
    return answer


class HeldClaim(HeldResponse):
    """A claim that found no job, held on the event loop until one comes or the wait ends."""

    def __init__(self, worker: str, wait: float, *, details: bool) -> None:
        super().__init__(content_type="application/json")
        self[LONG_POLL_HEADER] = f"{wait:g}"
        self.worker = worker
        self.wait = wait
        self.details = details

    async def complete(self) -> None:
        job = await claim_waiting(self.worker, self.wait)
        self.answer(
            await hub().in_db_thread(lambda: _claim_answer(job, self.wait, details=self.details))
        )
