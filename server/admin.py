"""Django admin for operators: every model, with the filters and actions they need."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from server.models import Dataset, Group, Job, Picture, Point, Round
from server.views.results import RESULT_FIELDS


@admin.register(Group)
class GroupAdmin(admin.ModelAdmin):
    list_display = ["name", "public"]
    list_filter = ["public"]
    search_fields = ["name"]
    filter_horizontal = ["members"]


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "task", "target", "version", "created"]
    list_filter = ["task"]
    search_fields = ["name", "description"]
    readonly_fields = ["version", "created"]
    actions = ["refresh_versions"]

    @admin.action(description="Recompute the version of the selected datasets")
    def refresh_versions(self, request: HttpRequest, queryset: QuerySet[Dataset]) -> None:
        for dataset in queryset:
            dataset.refresh_version()

    def save_model(self, request: HttpRequest, obj: Dataset, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        obj.refresh_version()


@admin.register(Point)
class PointAdmin(admin.ModelAdmin):
    """Editing a point changes its dataset's version, so workers fetch it again."""

    list_display = ["id", "dataset", "set", "label"]
    list_filter = ["set", "dataset"]
    list_select_related = ["dataset"]

    def save_model(self, request: HttpRequest, obj: Point, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        obj.dataset.refresh_version()

    def delete_model(self, request: HttpRequest, obj: Point) -> None:
        dataset = obj.dataset
        super().delete_model(request, obj)
        dataset.refresh_version()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Point]) -> None:
        datasets = list(Dataset.objects.filter(points__in=queryset).distinct())
        super().delete_queryset(request, queryset)
        for dataset in datasets:
            dataset.refresh_version()


@admin.register(Round)
class RoundAdmin(admin.ModelAdmin):
    """Closing a round reveals validation scores to its participants."""

    list_display = ["id", "name", "dataset", "open"]
    list_filter = ["open"]
    list_editable = ["open"]
    filter_horizontal = ["participants"]


def _thumbnail(picture: Picture) -> str:
    """The picture itself, linked to its full size, instead of a bare file link."""
    if not picture.file:
        return "-"
    url = picture.file.url
    return format_html(
        '<a href="{}"><img src="{}" alt="Picture {} of job {}" style="max-height: 12rem"></a>',
        url,
        url,
        picture.pk,
        picture.job_id,
    )


class PictureInline(admin.TabularInline):
    """A job's pictures, shown, never edited: they are what its worker drew."""

    model = Picture
    extra = 0
    can_delete = False
    fields = ["preview", "sha256", "created"]
    readonly_fields = ["preview", "sha256", "created"]

    @admin.display(description="Picture")
    def preview(self, obj: Picture) -> str:
        return _thumbnail(obj)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "owner",
        "algorithm",
        "dataset",
        "status",
        "attempt",
        "worker",
        "score_test",
        "score_validation",
        "created",
    ]
    list_filter = ["status", "algorithm", "dataset", "round"]
    list_select_related = ["owner", "dataset"]
    search_fields = ["algorithm", "message", "worker"]
    # A result is what a worker measured: shown, never edited (requeue the job instead).
    readonly_fields = ["created", "claimed", "finished", "update_digest", *RESULT_FIELDS]
    inlines = [PictureInline]
    actions = ["requeue"]

    @admin.action(description="Queue the selected jobs again (as new, pending)")
    def requeue(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        queryset.update(
            status="pending",
            attempt=0,
            lease_expires=None,
            worker="",
            finished=None,
            message="",
            update_digest="",
        )


@admin.register(Picture)
class PictureAdmin(admin.ModelAdmin):
    """Pictures as their worker uploaded them: shown, never changed or added by hand."""

    list_display = ["id", "job", "file", "created"]
    fields = ["job", "preview", "file", "sha256", "created"]
    readonly_fields = ["job", "preview", "file", "sha256", "created"]

    @admin.display(description="Picture")
    def preview(self, obj: Picture) -> str:
        return _thumbnail(obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
