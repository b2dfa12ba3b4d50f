"""What the worker's requests cost the server in queries: Django's test client, in process.

A worker makes two requests per job (the claim, then ``finish/``); each query is ORM work on
a server that shares the workers' cores, so the count is held here. A dataset's set sizes,
which every claim and result needs, are counted once per dataset version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from pages_django import django_in_process, rolled_back
from server_helpers import png_bytes

SIZES = {"training": 4, "test": 2, "validation": 2}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A worker account and a versioned dataset, in a fresh database."""
    with django_in_process(tmp_path_factory.mktemp("queries-django")):
        from django.contrib.auth.models import User

        from server.models import Dataset, Point

        worker = User.objects.create_user("worker", password="queries-Pw-1", is_staff=True)
        dataset = Dataset.objects.create(name="toy", task="classification", features=["x"])
        sets = [name for name, size in SIZES.items() for _ in range(size)]
        for number, set_name in enumerate(sets):
            Point.objects.create(dataset=dataset, set=set_name, values={"x": number}, label=0)
        dataset.refresh_version()
        yield {"worker": worker, "dataset": dataset}


@pytest.fixture(autouse=True)
def _each_test_rolled_back(data: dict[str, Any]) -> Iterator[None]:
    from django.core.cache import cache

    cache.clear()
    with rolled_back():
        yield


def _running_job(data: dict[str, Any]) -> Any:
    from server.models import Job

    return Job.objects.create(
        owner=data["worker"], algorithm="knn", dataset=data["dataset"], status="running",
        attempt=1, worker="host:1",
    )  # fmt: skip


def _client(data: dict[str, Any]) -> Any:
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(data["worker"])
    return client


def _finish(client: Any, job_id: int, **extra: Any) -> Any:
    fields = {
        "score_test": "0.5",
        "score_validation": "0.5",
        "labels_training": json.dumps([0] * SIZES["training"]),
        "labels_test": json.dumps([0] * SIZES["test"]),
        "labels_validation": json.dumps([0] * SIZES["validation"]),
        **extra,
    }
    return client.post(f"/jobs/{job_id}/finish/", fields)


def test_set_sizes_are_counted_once_per_dataset_version(data: dict[str, Any]) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from server.models import Point
    from server.wire import set_sizes

    dataset = data["dataset"]
    with CaptureQueriesContext(connection) as counted:
        assert set_sizes(dataset) == SIZES
        assert set_sizes(dataset) == SIZES
    assert len(counted) == 1
    Point.objects.create(dataset=dataset, set="test", values={"x": 9}, label=1)
    dataset.refresh_version()
    assert set_sizes(dataset) == {**SIZES, "test": SIZES["test"] + 1}


def test_points_are_encoded_once_per_dataset_version_and_role(data: dict[str, Any]) -> None:
    """A second download of the same points runs no query on them; a new version, or a
    student instead of a worker, gets its own body (hidden labels stay hidden)."""
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from server.models import Point

    dataset, worker = data["dataset"], _client(data)
    url = f"/datasets/{dataset.pk}/points/"
    first = worker.get(url)
    with CaptureQueriesContext(connection) as counted:
        again = worker.get(url)
    assert again.content == first.content
    assert not [query for query in counted if "point" in query["sql"].lower()]
    assert [point["label"] for point in first.json()] == [0] * sum(SIZES.values())

    student = Client(HTTP_HOST="127.0.0.1")
    student.force_login(User.objects.create_user("student", password="queries-Pw-2"))
    hidden = {point["set"]: point["label"] for point in student.get(url).json()}
    assert hidden == {"training": 0, "test": None, "validation": None}

    Point.objects.create(dataset=dataset, set="training", values={"x": 9}, label=1)
    dataset.refresh_version()
    assert [point["label"] for point in worker.get(url).json()][-1] == 1


def test_a_finish_with_two_pictures_costs_seven_queries(data: dict[str, Any]) -> None:
    """The user, the job with its dataset's version, then in a transaction (here a savepoint)
    the job's update, its pictures' digests and one insert of both. The session came from
    its cache, and the set sizes were counted by the first result."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from server.models import Job

    client = _client(data)
    first, second = _running_job(data), _running_job(data)
    _finish(client, first.pk)  # counts the dataset's set sizes
    pictures = [png_bytes(1), png_bytes(2)]
    with CaptureQueriesContext(connection) as counted:
        answer = _finish(client, second.pk, picture=[_upload(p, n) for n, p in enumerate(pictures)])
    assert answer.json() == {"success": True, "refused": []}
    assert len(counted) == 7, "\n".join(query["sql"][:100] for query in counted)
    job = Job.objects.get(pk=second.pk)
    assert job.status == "done"
    assert job.pictures.count() == len(pictures)


def test_a_repeated_finish_is_a_duplicate_and_a_different_one_a_conflict(
    data: dict[str, Any],
) -> None:
    client = _client(data)
    job = _running_job(data)
    assert _finish(client, job.pk).json() == {"success": True, "refused": []}
    assert _finish(client, job.pk).json() == {"success": True, "duplicate": True}
    assert _finish(client, job.pk, score_test="0.25").status_code == 409


def test_a_finish_stores_bytes_the_job_already_has_once(data: dict[str, Any]) -> None:
    from server.models import Picture

    client = _client(data)
    job = _running_job(data)
    same = png_bytes(3)
    before = client.post(f"/jobs/{job.pk}/pictures/", {"picture": _upload(same, 0)})
    assert before.status_code == 201
    other = png_bytes(4)
    uploads = [_upload(same, 1), _upload(same, 2), _upload(other, 3)]
    assert _finish(client, job.pk, picture=uploads).json()["success"]
    stored = Picture.objects.filter(job=job).values_list("sha256", flat=True)
    assert sorted(stored) == sorted(hashlib.sha256(png).hexdigest() for png in (same, other))


def _upload(png: bytes, number: int) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(f"p{number}.png", png, content_type="image/png")
