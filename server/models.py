"""The reference job server's data: groups, datasets and their points, rounds, jobs, pictures.

The shapes follow the protocol (``docs/protocol.md``): a point stores its feature values as a
JSON dict and its label separately, so the wire dict ``{"id": pk, **values, <target>: label,
"set": set}`` is rebuilt without guessing which key is the target. A dataset's ``version`` is
recomputed by ``refresh_version()`` whenever points change, so workers can cache points by id
and version.
Students see the version, and it covers hidden labels, so it is an HMAC keyed with the
server's secret (see :func:`dataset_version`): a plain hash would let a student test guesses
of the hidden labels offline.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import models

from server.constants import SETS, STATUSES, TASKS

__all__ = ["SETS", "STATUSES", "TASKS", "Dataset", "Group", "Job", "Picture", "Point", "Round"]


def _choices(values: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(value, value) for value in values]


class Group(models.Model):
    """A group of students; public groups can be joined by anyone."""

    name = models.CharField(max_length=64, unique=True)
    public = models.BooleanField(default=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="ml_groups", blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Dataset(models.Model):
    """A named table of points split into training, test and validation sets."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True, default="")
    task = models.CharField(max_length=16, choices=_choices(TASKS))
    features = models.JSONField(default=list, help_text="Feature names, in order.")
    target = models.CharField(max_length=64, default="label")
    version = models.CharField(max_length=64, blank=True, default="", editable=False)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name

    def refresh_version(self) -> str:
        """Recompute ``version`` from every point (and the column names), save and return it.

        Call it after adding, changing or removing points: workers cache a dataset's points
        under its id and version, so a stale version would serve them stale points.
        """
        rows = self.points.order_by("id").values_list("id", "set", "values", "label")
        header = {"features": self.features, "target": self.target, "task": self.task}
        self.version = dataset_version(self.pk, header, rows.iterator(chunk_size=2000))
        if self.pk is not None:
            self.save(update_fields=["version"])
        return self.version


VERSION_KEY_PURPOSE = b"mlworker dataset version"


def dataset_version(
    dataset_id: int | None, header: dict[str, Any], rows: Iterable[Iterable[Any]]
) -> str:
    """An opaque version of a dataset's content: changes whenever any point or column does.

    HMAC-SHA-256 under a key derived from ``SECRET_KEY``: without the key nobody can compute
    it, so it confirms no guess of a hidden label; the dataset's id is part of the message,
    so two datasets with the same points do not share a version either.
    """
    key = hmac.new(settings.SECRET_KEY.encode(), VERSION_KEY_PURPOSE, hashlib.sha256).digest()
    digest = hmac.new(key, digestmod=hashlib.sha256)
    digest.update(_canonical({"dataset": dataset_id, **header}))
    for row in rows:
        digest.update(b"\n")
        digest.update(_canonical(list(row)))
    return digest.hexdigest()[:16]


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


class Point(models.Model):
    """One row of a dataset: its feature values, its label (or null) and its set."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="points")
    set = models.CharField(max_length=16, choices=_choices(SETS))
    values = models.JSONField(help_text="Feature values: {feature: float}.")
    label = models.JSONField(null=True, blank=True, help_text="int, float, str or null.")

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["dataset", "set", "id"])]

    def __str__(self) -> str:
        return f"point {self.pk} of dataset {self.dataset_id} ({self.set})"


class Round(models.Model):
    """A competition round on one dataset; validation scores stay hidden while it is open."""

    name = models.CharField(max_length=200)
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="rounds")
    open = models.BooleanField(default=True)
    participants = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="ml_rounds", blank=True
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class Job(models.Model):
    """One algorithm run on one dataset, from submission to a worker's result."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ml_jobs"
    )
    algorithm = models.CharField(max_length=64)
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="jobs")
    params = models.JSONField(default=dict, blank=True)
    round = models.ForeignKey(
        Round, on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs"
    )
    time_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Seconds.")
    seed = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=_choices(STATUSES), default="pending")
    attempt = models.PositiveSmallIntegerField(default=0)
    lease_expires = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    claimed = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    score_test = models.FloatField(null=True, blank=True)
    score_validation = models.FloatField(null=True, blank=True)
    labels_training = models.JSONField(null=True, blank=True)
    labels_test = models.JSONField(null=True, blank=True)
    labels_validation = models.JSONField(null=True, blank=True)
    extra_scores_test = models.JSONField(null=True, blank=True)
    extra_scores_validation = models.JSONField(null=True, blank=True)
    message = models.TextField(blank=True, default="")
    update_digest = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["status", "created", "id"])]

    def __str__(self) -> str:
        return f"job {self.pk} ({self.algorithm} on {self.dataset_id}, {self.status})"


def picture_path(instance: Picture, filename: str) -> str:
    """Store a job's pictures under ``MEDIA_ROOT/jobs/<job id>/``."""
    return f"jobs/{instance.job_id}/{filename}"


class Picture(models.Model):
    """A PNG a worker uploaded for a job; the same bytes twice for one job are stored once."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="pictures")
    file = models.FileField(upload_to=picture_path, max_length=255)
    sha256 = models.CharField(max_length=64)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["job", "sha256"], name="unique_picture_per_job")
        ]

    def __str__(self) -> str:
        return self.file.name or ""
