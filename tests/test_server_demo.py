"""``mlworker-server run --demo``: accounts, datasets, round, group and jobs, seeded once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import RunningServer
from server_helpers import dataset_id

from algorithms.dataset import Dataset
from algorithms.run import run_algorithm
from worker.api import API
from worker.errors import NotFoundError, PermissionDeniedError

pytestmark = pytest.mark.slow  # a real server process per module


@pytest.fixture(scope="module")
def demo_server(start_server: Callable[..., RunningServer]) -> RunningServer:
    """A demo server seeded by its own first start (not a copy of another's database)."""
    return start_server(demo=True, fresh=True)


DATASETS = {
    "iris": "classification",
    "wine": "classification",
    "breast_cancer": "classification",
    "moons": "classification",
    "circles": "classification",
    "diabetes": "regression",
    "sine": "regression",
    "blobs": "clustering",
    "moons_unlabelled": "clustering",
}
ACCOUNTS = "from django.contrib.auth.models import User; print(sorted(User.objects.values_list("
ACCOUNTS += "'username', 'is_staff', 'is_superuser')))"


def job_ids(admin: API) -> list[int]:
    """Every job id, read through the protocol (ids count up from 1)."""
    ids: list[int] = []
    while True:
        try:
            admin.get_job_details(len(ids) + 1)
        except NotFoundError:
            return ids
        ids.append(len(ids) + 1)


def state(admin: API, student: API, server: RunningServer) -> dict[str, Any]:
    """Everything the demo seeds, as the protocol and the accounts table show it."""
    ids = job_ids(admin)
    return {
        "accounts": server.shell(ACCOUNTS),
        "datasets": admin.get_datasets(),
        "rounds": student.get_rounds(),
        "groups": admin.get_groups(),
        "student groups": student.get_groups(),
        "jobs": [admin.get_job_details(job) for job in ids],
        "results": [student.get_job_result(job) for job in ids],
    }


def test_demo_accounts(demo_server: RunningServer, admin: API, student: API) -> None:
    """backend/foobar is an admin (superuser for Django's admin); student/student is not."""
    assert demo_server.shell(ACCOUNTS) == str([("backend", True, True), ("student", False, False)])
    assert admin.get_job_details(1)["id"] == 1
    with pytest.raises(PermissionDeniedError):
        student.get_job_details(1)


def test_demo_datasets_cover_all_tasks(admin: API) -> None:
    """Nine small datasets of all three tasks, each set non-empty, labels of the right kind."""
    infos = {info["name"]: info for info in admin.get_datasets().values()}
    assert {name: info["task"] for name, info in infos.items()} == DATASETS
    for info in infos.values():
        sizes = info["points"]
        assert min(sizes.values()) > 0
        assert sum(sizes.values()) <= 600
        assert 0.55 < sizes["training"] / sum(sizes.values()) < 0.65
    labels = {
        name: {type(point[infos[name]["target"]]) for point in admin.get_points(key)}
        for key, name in ((dataset_id(admin, name), name) for name in DATASETS)
    }
    assert labels["iris"] == {str}
    assert labels["wine"] == labels["moons"] == labels["blobs"] == {int}
    assert labels["diabetes"] == labels["sine"] == {float}
    assert labels["moons_unlabelled"] == {type(None)}
    assert infos["sine"]["target"] == "y"
    assert infos["moons"]["features"] == ["x", "y"]


def test_demo_round_and_group(admin: API, student: API) -> None:
    """The student is in the public group "demo" and has joined the open round on moons."""
    rounds = student.get_rounds()
    assert list(rounds.values()) == [
        {
            "name": "Moons challenge",
            "dataset": dataset_id(admin, "moons"),
            "open": True,
            "joined": True,
        }
    ]
    assert student.get_groups()["demo"] == {"public": True, "members": 1, "member": True}


def test_demo_jobs_are_pending_and_owned_by_the_student(admin: API, student: API) -> None:
    """About fifteen pending jobs with fixed seeds, across algorithms of all three tasks."""
    ids = job_ids(admin)
    assert 12 <= len(ids) <= 15
    tasks = {info["name"]: info["task"] for info in admin.get_datasets().values()}
    names = {key: info["name"] for key, info in admin.get_datasets().items()}
    details = [admin.get_job_details(job) for job in ids]
    assert {tasks[names[job["dataset"]]] for job in details} == set(DATASETS.values())
    assert len({job["algorithm"] for job in details}) >= 12
    assert all(isinstance(job["seed"], int) for job in details)
    assert {student.get_job_result(job)["status"] for job in ids} == {"pending"}


def test_demo_jobs_run_cleanly_with_the_builtins(admin: API) -> None:
    """Every demo job runs with the built-in algorithms without an error or a warning."""
    datasets = admin.get_datasets()
    for job in (admin.get_job_details(job) for job in job_ids(admin)):
        data = Dataset.from_points(datasets[job["dataset"]], admin.get_points(job["dataset"]))
        result = run_algorithm(
            job["algorithm"], job["params"], data, seed=job["seed"], pictures=False
        )
        assert result.warnings == (), job
        assert 0.4 <= result.score_test <= 1, job


def test_seeding_again_changes_nothing(
    demo_server: RunningServer, admin: API, student: API
) -> None:
    """Restarting with --demo on the same data directory adds or changes nothing."""
    before = state(admin, student, demo_server)
    demo_server.restart()
    after = state(
        demo_server.api("backend", "foobar"), demo_server.api("student", "student"), demo_server
    )
    assert after == before
