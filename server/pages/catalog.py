"""Datasets, groups and rounds, with join buttons: the protocol's answers, drawn as pages.

Each page calls the protocol view that answers the same question (``datasets/``,
``groups/``, ``rounds/``) and the buttons post through ``groups/join/`` and
``rounds/<id>/join/``, so who sees and joins what is decided in one place.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from server.models import Dataset
from server.pages import protocol
from server.pages.access import page
from server.views import catalog as api_catalog


@require_GET
@page()
def datasets(request: HttpRequest) -> HttpResponse:
    """Every dataset: description, task, features and points per set."""
    infos = protocol.call(api_catalog.datasets, request)
    rows = [{"id": int(key), **info} for key, info in infos.items()]
    return render(request, "pages/datasets.html", {"datasets": rows, "nav": "datasets"})


@require_GET
@page()
def groups(request: HttpRequest) -> HttpResponse:
    """The groups the caller may see and every round, with join buttons."""
    group_rows = [
        {"name": name, **info} for name, info in protocol.call(api_catalog.groups, request).items()
    ]
    rounds = protocol.call(api_catalog.rounds, request)
    names = dict(Dataset.objects.values_list("pk", "name"))
    round_rows = [
        {"id": int(key), **info, "dataset_name": names.get(info["dataset"], info["dataset"])}
        for key, info in rounds.items()
    ]
    context = {"groups": group_rows, "rounds": round_rows, "nav": "groups"}
    return render(request, "pages/groups.html", context)


def _joined(request: HttpRequest, what: str, view: protocol.View, *args: int) -> HttpResponse:
    """Join through the protocol's view; a message says what happened, back to the list."""
    try:
        protocol.call(view, request, *args)
    except protocol.ProtocolRefusal as refusal:
        messages.error(request, f"Could not join {what}: {refusal.sentence}.")
    else:
        messages.success(request, f"You joined {what}.")
    return HttpResponseRedirect(reverse("pages:groups"))


@require_POST
@page()
def join_group(request: HttpRequest) -> HttpResponse:
    """The join button of a group (the form posts ``group_name``)."""
    name = request.POST.get("group_name", "")
    return _joined(request, f"the group {name!r}", api_catalog.join_group)


@require_POST
@page()
def join_round(request: HttpRequest, round_id: int) -> HttpResponse:
    """The join button of a round."""
    return _joined(request, f"round {round_id}", api_catalog.join_round, round_id)
