"""Prepared queries (``server.prepared``) answer what their querysets answer, in process."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest
from pages_django import django_in_process, rolled_back

HOUR = datetime.timedelta(hours=1)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Three jobs with JSON params, leases ending at different times, on two datasets."""
    with django_in_process(tmp_path_factory.mktemp("prepared-django")):
        from django.contrib.auth.models import User
        from django.utils import timezone

        from server.models import Dataset, Job

        owner = User.objects.create_user("owner", password="prepared-Pw-1")
        now = timezone.now()
        jobs = []
        for number in range(3):
            dataset = Dataset.objects.create(
                name=f"d{number}", task="classification", features=["x", f"f{number}"]
            )
            lease = now + (number - 1) * HOUR
            job = Job.objects.create(
                owner=owner, algorithm="knn", dataset=dataset, params={"k": number},
                status="running", lease_expires=lease,
            )  # fmt: skip
            jobs.append(job)
        yield {"jobs": jobs, "now": now}


@pytest.fixture(autouse=True)
def _each_test_rolled_back(data: dict[str, Any]) -> Iterator[None]:
    with rolled_back():
        yield


def test_rows_are_the_querysets_own_for_each_value(data: dict[str, Any]) -> None:
    """JSON and time columns, and a joined table's, come out as ``values_list`` gives them."""
    from server.models import Job
    from server.prepared import Prepared

    def build(pk: int) -> Any:
        return Job.objects.filter(pk=pk).values_list(
            "id", "params", "lease_expires", "dataset__features", "dataset__name"
        )

    prepared = Prepared(build, int)
    for job in data["jobs"]:
        assert list(prepared.rows(job.pk)) == list(build(job.pk))
    assert prepared.first(10**9) is None


def test_a_time_parameter_is_compared_as_the_orm_compares_it(data: dict[str, Any]) -> None:
    """Leases ended before a moment are found as by the ORM, for moments between them."""
    from server.models import Job
    from server.prepared import Prepared

    def build(moment: datetime.datetime) -> Any:
        return Job.objects.filter(lease_expires__lt=moment).order_by("id").values_list("id")

    prepared = Prepared(build, datetime.datetime)
    for hours in (-2, -0.5, 0.5, 1.5):
        moment = data["now"] + hours * HOUR
        assert list(prepared.rows(moment)) == list(build(moment))
    assert len(list(prepared.rows(data["now"] + 2 * HOUR))) == len(data["jobs"])


def test_querysets_it_cannot_run_as_written_are_refused() -> None:
    """Model instances, or a parameter the SQL never sees as given, are refused with a reason."""
    from server.models import Job
    from server.prepared import Prepared

    instances = Prepared(lambda pk: Job.objects.filter(pk=pk), int)
    with pytest.raises(ValueError, match="values_list"):
        instances.first(1)
    unused = Prepared(lambda pk: Job.objects.filter(pk=1).values_list("id"), int)
    with pytest.raises(ValueError, match="each parameter to the database"):
        unused.first(1)


def test_an_update_changes_what_the_querysets_update_changes(data: dict[str, Any]) -> None:
    """The same values, an expression included, on the same rows; the count of rows changed."""
    from django.db.models import F

    from server.models import Job
    from server.prepared import PreparedUpdate

    def build(pk: int, moment: datetime.datetime, worker: str) -> Any:
        changes = {"attempt": F("attempt") + 1, "claimed": moment, "worker": worker}
        return Job.objects.filter(pk=pk, status="running"), changes

    prepared = PreparedUpdate(build, int, datetime.datetime, str)
    first, second = data["jobs"][:2]
    moment = data["now"] - HOUR
    assert prepared.run(first.pk, moment, "host:1") == 1
    queryset, changes = build(second.pk, moment, "host:1")
    assert queryset.update(**changes) == 1
    fields = ("attempt", "claimed", "worker")
    ours, theirs = (Job.objects.values_list(*fields).get(pk=job.pk) for job in (first, second))
    assert ours == theirs == (first.attempt + 1, moment, "host:1")
    Job.objects.filter(pk=first.pk).update(status="done")
    assert prepared.run(first.pk, moment, "host:2") == 0
    assert Job.objects.get(pk=first.pk).worker == "host:1"


def test_column_values_are_saved_as_the_orm_saves_them(data: dict[str, Any]) -> None:
    """JSON, numbers, text and None set through the fields give the rows ``update`` gives."""
    from server.models import Job
    from server.prepared import PreparedUpdate

    names = ("labels_training", "labels_test", "score_test", "extra_scores_test", "message")
    columns = {field.name: field for field in Job._meta.concrete_fields}

    def build(pk: int, *values: Any) -> Any:
        return Job.objects.filter(pk=pk), dict(zip(names, values, strict=True))

    prepared = PreparedUpdate(build, int, *(columns[name] for name in names))
    values = ([0, "b", 1.5, None], None, 0.25, {"f1": 0.5}, "fin\u00e9")
    first, second = data["jobs"][:2]
    assert prepared.run(first.pk, *values) == 1
    queryset, changes = build(second.pk, *values)
    assert queryset.update(**changes) == 1
    ours, theirs = (Job.objects.values_list(*names).get(pk=job.pk) for job in (first, second))
    assert ours == theirs == values
    assert prepared.run(first.pk, None, [1], None, None, "") == 1
    assert Job.objects.values_list(*names).get(pk=first.pk) == (None, [1], None, None, "")
