"""Jobs pages: the list (own jobs, or every job for staff, with filters), a job, submitting."""

from __future__ import annotations

import json
from typing import Any

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from server.leases import expire_leases
from server.models import Job
from server.pages import protocol
from server.pages.access import Refused, page, viewer
from server.pages.forms import JobFilterForm, SubmitPageForm
from server.pages.results import shown_result
from server.views import jobs as api_jobs

JOBS_PER_PAGE = 50


def _filtered(jobs: QuerySet[Job], form: JobFilterForm) -> QuerySet[Job]:
    """The jobs matching the filters; none while a filter is invalid (the form says which)."""
    if not form.is_bound:
        return jobs
    if not form.is_valid():
        return jobs.none()
    data = form.cleaned_data
    if data["status"]:
        jobs = jobs.filter(status=data["status"])
    if data["round"] is not None:
        jobs = jobs.filter(round=data["round"])
    if data["algorithm"]:
        jobs = jobs.filter(algorithm=data["algorithm"].strip())
    if data.get("user"):
        jobs = jobs.filter(owner__username=data["user"].strip())
    return jobs


@require_GET
@page()
def job_list(request: HttpRequest) -> HttpResponse:
    """A student's own jobs, newest first; staff see every job and may filter by user."""
    user = viewer(request)
    expire_leases()  # as ``jobs/<id>/result/`` does, so a lost job's status is current
    jobs = Job.objects.select_related("dataset", "round", "owner").order_by("-id")
    if not user.is_staff:
        jobs = jobs.filter(owner=user)
    form = JobFilterForm(request.GET or None, staff=user.is_staff)
    listing = Paginator(_filtered(jobs, form), JOBS_PER_PAGE).get_page(request.GET.get("page"))
    shown = [(job, shown_result(job, user)) for job in listing]
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "listing": listing,
        "rows": [(job, result, _json(result["params"])) for job, result in shown],
        "query": query.urlencode(),
        "nav": "jobs",
    }
    return render(request, "pages/jobs.html", context)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "))


def _score_table(result: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Extra scores as rows ``(name, test, validation)``, from what the protocol shows."""
    test = result.get("extra_scores_test") or {}
    validation = result.get("extra_scores_validation") or {}
    names = list(test) + [name for name in validation if name not in test]
    return [(name, test.get(name), validation.get(name)) for name in names]


@require_GET
@page()
def job_page(request: HttpRequest, job_id: int) -> HttpResponse:
    """A job's scores, extra scores, message and pictures; staff also see its worker.

    The result and the refusals are ``jobs/<id>/result/``'s own answers to this user.
    """
    try:
        result = protocol.call(api_jobs.result, request, job_id)
    except protocol.ProtocolRefusal as refusal:
        raise Refused(refusal.status, refusal.sentence) from None
    job = Job.objects.select_related("dataset", "round", "owner").get(pk=job_id)
    context = {
        "job": job,
        "result": result,
        "params": _json(result["params"]),
        "extra_scores": _score_table(result),
        "nav": "jobs",
    }
    return render(request, "pages/job.html", context)


def _algorithm_names() -> list[str]:
    """Algorithms already used on this server, as suggestions (workers decide what runs)."""
    names = Job.objects.order_by("algorithm").values_list("algorithm", flat=True).distinct()
    return list(names[:200])


@require_http_methods(["GET", "POST"])
@page()
def submit(request: HttpRequest) -> HttpResponse:
    """The submit form; a POST goes through ``jobs/submit/``, then to the new job's page."""
    user = viewer(request)
    if request.method == "POST":
        form = SubmitPageForm(request.POST, user=user)
    else:  # a round's page links here with its dataset and round chosen
        chosen = {name: request.GET[name] for name in ("dataset", "round") if name in request.GET}
        form = SubmitPageForm(initial=chosen, user=user)
    error, field_errors = "", {}
    if request.method == "POST":
        try:
            answer = protocol.call(api_jobs.submit, request)
        except protocol.ProtocolRefusal as refusal:
            error, field_errors = refusal.sentence, refusal.fields
        else:
            return HttpResponseRedirect(reverse("pages:job", args=[answer["job"]]))
    context = {
        "fields": [(form[name], field_errors.get(name, "")) for name in form.fields],
        "error": error,
        "algorithms": _algorithm_names(),
        "nav": "submit",
    }
    return render(request, "pages/submit.html", context, status=400 if error else 200)
