"""A round's leaderboard: each participant's best job under the round's rules.

While a round is open it ranks by the test score and its validation scores stay hidden
from students (the protocol's rule, read through :func:`shown_result`); once closed it
ranks by the validation score, when the viewer may see every one of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from server.models import Job, Round
from server.pages.access import Refused, page, viewer
from server.pages.results import shown_result


@dataclass(frozen=True)
class Entry:
    """One participant's line: their best job's shown scores and how many jobs they ran."""

    rank: int
    participant: str
    job: int
    score_test: float | None
    score_validation: float | None
    jobs: int
    mine: bool


@dataclass(frozen=True)
class Board:
    """A round's ranked entries and the score they are ranked by."""

    rank_by: str
    entries: list[Entry]


def _rank_by(round_: Round, results: list[dict[str, Any]]) -> str:
    """The validation score once the round is closed and every one is shown; else test."""
    if not round_.open and all(r["score_validation"] is not None for r in results):
        return "score_validation"
    return "score_test"


def leaderboard(round_: Round, user: User) -> Board:
    """Each participant's best finished job in ``round_``, as ``user`` may see it."""
    jobs = Job.objects.filter(round=round_, status="done").select_related("owner", "round")
    shown = [(job, shown_result(job, user)) for job in jobs.order_by("id")]
    rank_by = _rank_by(round_, [result for _, result in shown])
    best: dict[int, tuple[Job, dict[str, Any]]] = {}
    counts: dict[int, int] = {}
    for job, result in shown:
        counts[job.owner_id] = counts.get(job.owner_id, 0) + 1
        if result[rank_by] is None:
            continue
        held = best.get(job.owner_id)
        if held is None or result[rank_by] > held[1][rank_by]:  # ties: the earlier job
            best[job.owner_id] = (job, result)
    ordered = sorted(best.values(), key=lambda pair: (-pair[1][rank_by], pair[0].pk))
    entries = [
        Entry(
            rank=number,
            participant=job.owner.username,
            job=job.pk,
            score_test=result["score_test"],
            score_validation=result["score_validation"],
            jobs=counts[job.owner_id],
            mine=job.owner_id == user.pk,
        )
        for number, (job, result) in enumerate(ordered, start=1)
    ]
    return Board(rank_by, entries)


@require_GET
@page()
def round_page(request: HttpRequest, round_id: int) -> HttpResponse:
    """A round's leaderboard page."""
    user = viewer(request)
    round_ = Round.objects.select_related("dataset").filter(pk=round_id).first()
    if round_ is None:
        raise Refused(404, f"there is no round {round_id}")
    joined = round_.participants.filter(pk=user.pk).exists()
    context = {
        "round": round_,
        "board": leaderboard(round_, user),
        "joined": joined,
        "nav": "groups",
    }
    return render(request, "pages/round.html", context)
