"""Findings 7 and 9: what students see yields no hidden label and no hidden score.

7: a dataset's ``version`` (students see it) once was a plain SHA-256 of every point, hidden
labels included, so trying every labelling offline found the hidden labels. 9: a round's
hidden validation score showed when the same job was submitted outside the round, and a
student who never joined a round could submit on its dataset.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import RunningServer
from hostile_client import post
from server_helpers import result_fields, running_job, write_csv

from worker.api import API

pytestmark = pytest.mark.slow

SIZES = {"training": 3, "test": 2, "validation": 2}


@pytest.fixture(scope="module")
def server(start_server: Callable[..., RunningServer]) -> RunningServer:
    """A demo server with two more students, neither in any round."""
    running = start_server(demo=True)
    running.add_students("joe", "kim")
    return running


@pytest.fixture(scope="module")
def admin(server: RunningServer) -> API:
    """The worker account."""
    return server.api("backend", "foobar")


def new_dataset(server: RunningServer, tmp_path: Path, name: str) -> int:
    """A small classification dataset with labels 0 and 1; its id."""
    return server.import_dataset(write_csv(tmp_path / f"{name}.csv", SIZES), name, "classification")


def plain_digest(info: dict[str, Any], points: list[dict[str, Any]]) -> str:
    """The version as the server once computed it: SHA-256 of the header and every row."""

    def canonical(value: object) -> bytes:
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()

    digest = hashlib.sha256(canonical({key: info[key] for key in ("features", "target", "task")}))
    for point in points:
        values = {name: point[name] for name in info["features"]}
        digest.update(b"\n" + canonical([point["id"], point["set"], values, point[info["target"]]]))
    return digest.hexdigest()[:16]


def test_version_confirms_no_guess_of_hidden_labels(
    server: RunningServer, admin: API, tmp_path: Path
) -> None:
    """Trying every labelling of the hidden points never reproduces the version a student sees."""
    kim = server.api("kim", "kim-password")
    dataset = new_dataset(server, tmp_path, "guessable")
    info = kim.get_datasets()[dataset]
    points = kim.get_points(dataset)
    hidden = [point for point in points if point["set"] != "training"]
    assert all(point["label"] is None for point in hidden)
    matches = []
    for labels in itertools.product([0, 1], repeat=len(hidden)):
        for point, label in zip(hidden, labels, strict=True):
            point["label"] = label
        if plain_digest(info, points) == info["version"]:
            matches.append(labels)
    assert matches == []
    truth = admin.get_points(dataset)
    assert plain_digest(info, truth) != info["version"]


def test_version_changes_with_any_point_and_differs_between_datasets(
    server: RunningServer, admin: API, tmp_path: Path
) -> None:
    """A changed hidden label changes the version; two datasets of equal points differ."""
    first = new_dataset(server, tmp_path, "twin-a")
    second = new_dataset(server, tmp_path, "twin-b")
    versions = {key: info["version"] for key, info in admin.get_datasets().items()}
    assert versions[first] != versions[second]
    hidden = next(point for point in admin.get_points(first) if point["set"] == "validation")
    server.shell(
        "from server.models import Point\n"
        f"point = Point.objects.get(pk={hidden['id']})\n"
        "point.label = 1 - point.label\n"
        "point.save()\n"
        "point.dataset.refresh_version()"
    )
    assert admin.get_datasets()[first]["version"] != versions[first]
    assert admin.get_datasets()[second]["version"] == versions[second]


def test_migration_rekeys_existing_versions(server: RunningServer, admin: API) -> None:
    """Datasets of an older database get the keyed version when the server is upgraded."""
    code = (
        "from django.core.management import call_command\n"
        "from server.models import Dataset\n"
        "call_command('migrate', 'server', '0001', verbosity=0)\n"
        "Dataset.objects.update(version='0123456789abcdef')\n"
        "call_command('migrate', verbosity=0)\n"
        "print(sorted(set(Dataset.objects.values_list('version', flat=True))) != "
        "['0123456789abcdef'])\n"
        "print(all(d.version == d.refresh_version() for d in Dataset.objects.all()))"
    )
    assert server.shell(code).split() == ["True", "True"]


def test_round_dataset_needs_the_round_joined(
    server: RunningServer, admin: API, tmp_path: Path
) -> None:
    """Without joining its open round, a student cannot submit on a round's dataset (403)."""
    joe = server.api("joe", "joe-password")
    dataset = new_dataset(server, tmp_path, "contest")
    round_id = server.new_round(dataset, "contest week")
    before = admin.submit_job("knn", dataset)
    refused = post(server.url, joe, "jobs/submit/", algorithm="knn", dataset=str(dataset))
    assert refused.status_code == 403
    assert f"round {round_id}" in refused.json()["fields"]["dataset"]
    assert admin.submit_job("knn", dataset) == before + 1  # nothing was created in between
    joe.join_round(round_id)
    assert joe.submit_job("knn", dataset) == before + 2  # joined: outside the round is fine
    server.close_round(round_id)
    kim = server.api("kim", "kim-password")
    assert kim.submit_job("knn", dataset) > 0  # a closed round keeps nothing


def test_hidden_score_stays_hidden_outside_the_round(
    server: RunningServer, admin: API, tmp_path: Path
) -> None:
    """The same job submitted outside an open round shows no validation score until it closes."""
    joe = server.api("joe", "joe-password")
    dataset = new_dataset(server, tmp_path, "hidden-scores")
    early = running_job(admin, joe, dataset)  # before any round: still on the round's dataset
    admin.update_job_details(early, **result_fields(admin, dataset, score=0.8))
    assert joe.get_job_result(early)["score_validation"] == 0.4
    round_id = server.new_round(dataset, "hidden week")
    joe.join_round(round_id)
    inside = running_job(admin, joe, dataset, round_id=round_id)
    admin.update_job_details(inside, **result_fields(admin, dataset, score=0.8))
    outside = running_job(admin, joe, dataset)
    admin.update_job_details(outside, **result_fields(admin, dataset, score=0.8))
    for job_id in (early, inside, outside):
        shown = joe.get_job_result(job_id)
        assert (shown["score_test"], shown["score_validation"]) == (0.8, None)
        assert shown["extra_scores_validation"] is None
        assert admin.get_job_result(job_id)["score_validation"] == 0.4
    server.close_round(round_id)
    for job_id in (early, inside, outside):
        assert joe.get_job_result(job_id)["score_validation"] == 0.4
