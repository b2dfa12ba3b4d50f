"""Groups, rounds, datasets and points: what students browse and join."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse

from server.forms import GroupAddForm, GroupJoinForm
from server.models import Dataset, Group, Round
from server.pointbodies import points_body
from server.views.common import (
    ClientError,
    api_view,
    get_or_404,
    json_response,
    user_of,
    valid_form,
)
from server.wire import counted_sizes, dataset_info, with_set_counts


@api_view(method="GET")
def groups(request: HttpRequest) -> HttpResponse:
    """The public groups and the caller's own (admins: all), with member counts."""
    user = user_of(request)
    shown = Group.objects.all()
    if not user.is_staff:
        shown = shown.filter(Q(public=True) | Q(members=user))
    # Count over a fresh query: the members join of the filter must not limit the count.
    visible = Group.objects.filter(pk__in=shown.values("pk")).annotate(n_members=Count("members"))
    mine = set(user.ml_groups.values_list("pk", flat=True))
    return json_response(
        {
            group.name: {
                "public": group.public,
                "members": group.n_members,
                "member": group.pk in mine,
            }
            for group in visible
        }
    )


@api_view(method="POST", staff=True)
def add_group(request: HttpRequest) -> HttpResponse:
    """Create a group; ``409`` when the name is taken."""
    data = valid_form(GroupAddForm(request.POST))
    try:
        with transaction.atomic():
            group = Group.objects.create(name=data["name"], public=data["public"])
    except IntegrityError:
        raise ClientError(
            409, f"a group named {data['name']!r} already exists", {"name": "is taken"}
        ) from None
    return json_response({"success": True, "name": group.name}, status=201)


@api_view(method="POST")
def join_group(request: HttpRequest) -> HttpResponse:
    """Join a public group (admins may join any); joining twice is harmless."""
    name = valid_form(GroupJoinForm(request.POST))["group_name"]
    group = Group.objects.filter(name=name).first()
    if group is None:
        raise ClientError(404, f"no group named {name!r}", {"group_name": "unknown group"})
    if not group.public and not request.user.is_staff:
        raise ClientError(
            403,
            f"group {name!r} is not public: ask its teacher to add you",
            {"group_name": "not public"},
        )
    group.members.add(user_of(request))
    return json_response({"success": True})


@api_view(method="GET")
def rounds(request: HttpRequest) -> HttpResponse:
    """Every round, and whether the caller joined it."""
    joined = set(user_of(request).ml_rounds.values_list("pk", flat=True))
    return json_response(
        {
            str(round_.pk): {
                "name": round_.name,
                "dataset": round_.dataset_id,
                "open": round_.open,
                "joined": round_.pk in joined,
            }
            for round_ in Round.objects.order_by("id")
        }
    )


@api_view(method="POST")
def join_round(request: HttpRequest, round_id: int) -> HttpResponse:
    """Join an open round; ``409`` once it is closed."""
    round_ = get_or_404(Round.objects, round_id, "round")
    if not round_.open:
        raise ClientError(409, f"round {round_id} ({round_.name}) is closed")
    round_.participants.add(user_of(request))
    return json_response({"success": True})


@api_view(method="GET")
def datasets(request: HttpRequest) -> HttpResponse:
    """Every dataset's info, keyed by id."""
    return json_response(
        {
            str(dataset.pk): dataset_info(dataset, counted_sizes(dataset))
            for dataset in with_set_counts(Dataset.objects.all())
        }
    )


@api_view(method="GET")
def points(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """A dataset's points by id; test and validation labels only for admins (workers)."""
    dataset = get_or_404(Dataset.objects, dataset_id, "dataset")
    body = points_body(dataset, hide_labels=not request.user.is_staff)
    return HttpResponse(body, content_type="application/json")
