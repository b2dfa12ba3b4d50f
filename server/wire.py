"""Models to the protocol's JSON shapes (dataset info, points, job details and results)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar, cast

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Model, Q, QuerySet
from django.urls import reverse

from server.models import SETS, Dataset, Job, Point
from server.prepared import Prepared
from server.visibility import HIDDEN_SETS, labels_hidden, validation_hidden

M = TypeVar("M", bound=Model)

__all__ = [
    "HIDDEN_SETS",
    "counted_sizes",
    "dataset_info",
    "job_details",
    "job_result",
    "job_to_run",
    "point_dicts",
    "set_sizes",
    "validation_hidden",
    "with_set_counts",
]


def with_set_counts(datasets: QuerySet[Dataset]) -> QuerySet[Dataset]:
    """Annotate each dataset with its number of points per set (``n_training``...)."""
    counts = {
        f"n_{name}": Count("points", filter=Q(points__set=name), distinct=False) for name in SETS
    }
    return datasets.annotate(**counts)


def set_sizes(dataset: Dataset) -> dict[str, int]:
    """The number of points of each set of ``dataset``, counted once per version and process.

    Every claim and every result needs them. A dataset's version changes whenever any of
    its points does (:meth:`Dataset.refresh_version`), so sizes cached under it never go
    stale; a dataset without a version yet is counted each time.
    """
    if not dataset.version:
        return _count_sets(dataset.pk)
    key = f"set-sizes:{dataset.pk}:{dataset.version}"
    return cast(dict[str, int], cache.get_or_set(key, lambda: _count_sets(dataset.pk), None))


def _count_sets(dataset_id: int) -> dict[str, int]:
    sizes = dict.fromkeys(SETS, 0)
    rows = Point.objects.filter(dataset_id=dataset_id).values_list("set").annotate(n=Count("id"))
    sizes.update({set_name: n for set_name, n in rows.order_by()})
    return sizes


def counted_sizes(dataset: Dataset) -> dict[str, int]:
    """The set sizes of a dataset that comes from :func:`with_set_counts`."""
    return {name: getattr(dataset, f"n_{name}") for name in SETS}


def dataset_info(dataset: Dataset, sizes: dict[str, int]) -> dict[str, Any]:
    """The protocol's dataset info, with its number of points per set."""
    return {
        "name": dataset.name,
        "description": dataset.description,
        "task": dataset.task,
        "features": list(dataset.features),
        "target": dataset.target,
        "version": dataset.version,
        "points": sizes,
    }


def point_dicts(dataset: Dataset, *, hide_labels: bool) -> Iterator[dict[str, Any]]:
    """The dataset's points as wire dicts, by id; test/validation labels nulled if hidden.

    Feature values are listed in the dataset's feature order, whatever order the database
    gives them back in (PostgreSQL's ``jsonb`` sorts object keys by length).
    """
    rows = Point.objects.filter(dataset=dataset).order_by("id")
    target = dataset.target
    features = list(dataset.features)
    for pk, set_name, values, label in rows.values_list("id", "set", "values", "label"):
        hidden = labels_hidden(set_name, staff=not hide_labels)
        ordered = {name: values[name] for name in features if name in values}
        ordered.update(values)  # keys outside ``features`` (admin edits) keep their place last
        yield {"id": pk, **ordered, target: None if hidden else label, "set": set_name}


def _loaded(model: type[M], names: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` in the model's field order, as ``Model.from_db`` takes them."""
    return tuple(field.attname for field in model._meta.concrete_fields if field.attname in names)


_RUN_JOB = _loaded(
    Job, ("id", "algorithm", "dataset_id", "params", "time_limit", "seed", "attempt")
)
_RUN_DATASET = _loaded(
    Dataset, ("id", "name", "description", "task", "features", "target", "version")
)
# What a worker asks for with every claim: compiled once (server.prepared).
_JOB_TO_RUN = Prepared(
    lambda pk: (
        Job.objects.filter(pk=pk)
        .order_by()
        .values_list(*_RUN_JOB, *(f"dataset__{name}" for name in _RUN_DATASET))
    ),
    int,
)


def job_to_run(job_id: int) -> Job | None:
    """The job with the fields :func:`job_details` reads, and its dataset; None if none."""
    row = _JOB_TO_RUN.first(job_id)
    if row is None:
        return None
    split = len(_RUN_JOB)
    job = Job.from_db(_JOB_TO_RUN.alias, _RUN_JOB, row[:split])
    job.dataset = Dataset.from_db(_JOB_TO_RUN.alias, _RUN_DATASET, row[split:])
    return job


def job_details(job: Job) -> dict[str, Any]:
    """What a worker needs to run ``job``: the effective time limit its lease is based on.

    ``dataset_info`` (an addition to v1) is what ``GET datasets/`` says of the job's
    dataset, version included, so a worker needs no listing of every dataset per job.
    """
    dataset = job.dataset  # with the job: from job_to_run
    return {
        "id": job.pk,
        "algorithm": job.algorithm,
        "dataset": job.dataset_id,
        "dataset_info": dataset_info(dataset, set_sizes(dataset)),
        "params": job.params,
        "time_limit": job.time_limit or settings.JOB_DEFAULT_TIME_LIMIT,
        "seed": job.seed,
        "attempt": job.attempt,
    }


def job_result(job: Job, *, staff: bool) -> dict[str, Any]:
    """The protocol's job result, as its owner (``staff=False``) or an admin sees it.

    What is hidden from students is decided in :mod:`server.visibility`.
    """
    hidden = validation_hidden(job, staff=staff)
    return {
        "id": job.pk,
        "status": job.status,
        "algorithm": job.algorithm,
        "dataset": job.dataset_id,
        "round": job.round_id,
        "params": job.params,
        "attempt": job.attempt,
        "score_test": job.score_test,
        "score_validation": None if hidden else job.score_validation,
        "extra_scores_test": job.extra_scores_test,
        "extra_scores_validation": None if hidden else job.extra_scores_validation,
        "message": job.message,
        "pictures": [
            reverse("media", kwargs={"path": picture.file.name})
            for picture in job.pictures.order_by("id")
        ],
    }
