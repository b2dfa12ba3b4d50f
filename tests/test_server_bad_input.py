"""Bad input to the reference server: a clear error naming the field, and nothing changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import RunningServer
from server_helpers import png_bytes, result_fields, running_job

from worker.api import API
from worker.errors import APIError, InvalidInputError, NotFoundError

pytestmark = pytest.mark.slow  # a real server process per module

SUBMIT_CASES = [
    ({"algorithm": None}, 400, "algorithm"),
    ({"algorithm": "KNN"}, 400, "algorithm"),
    ({"algorithm": "k nn"}, 400, "algorithm"),
    ({"algorithm": "a" * 65}, 400, "algorithm"),
    ({"algorithm": "../knn"}, 400, "algorithm"),
    ({"dataset": ""}, 400, "dataset"),
    ({"dataset": "iris"}, 400, "dataset"),
    ({"dataset": "1.5"}, 400, "dataset"),
    ({"dataset": "999999"}, 404, "dataset"),
    ({"dataset": "99999999999999999999999"}, 400, "dataset"),
    ({"params": "[1, 2]"}, 400, "params"),
    ({"params": "{not json"}, 400, "params"),
    ({"params": '{"C": NaN}'}, 400, "params"),
    ({"params": '{"C": 1e999}'}, 400, "params"),
    ({"params": "3"}, 400, "params"),
    ({"params": '{"a": ' * 100_000 + "1" + "}" * 100_000}, 400, "params"),
    ({"round": "first"}, 400, "round"),
    ({"round": "999999"}, 404, "round"),
    ({"time_limit": "0"}, 400, "time_limit"),
    ({"time_limit": "ten"}, 400, "time_limit"),
    ({"time_limit": "-5"}, 400, "time_limit"),
]


@pytest.mark.parametrize(("override", "status", "field"), SUBMIT_CASES)
def test_submit_refuses_bad_fields(
    admin: API, iris: int, override: dict[str, str | None], status: int, field: str
) -> None:
    """A bad submission answers its status naming the field; no job is created."""
    fields = {"algorithm": "knn", "dataset": str(iris), "params": "{}", **override}
    before = admin.submit_job("knn", iris)
    with pytest.raises(APIError) as raised:
        admin.load("jobs/submit/", **fields)
    assert raised.value.status == status
    assert field in raised.value.message
    if isinstance(raised.value, InvalidInputError):
        assert field in raised.value.fields
    assert admin.submit_job("knn", iris) == before + 1


def _update_cases() -> list[tuple[str, Any, str]]:
    """(field, bad value as sent, field named) for jobs/<id>/update/."""
    return [
        ("score_test", "1.5", "score_test"),
        ("score_test", "-0.1", "score_test"),
        ("score_test", "nan", "score_test"),
        ("score_test", "NaN", "score_test"),
        ("score_test", "inf", "score_test"),
        ("score_test", "-Infinity", "score_test"),
        ("score_test", "high", "score_test"),
        ("score_test", None, "score_test"),
        ("score_validation", "2", "score_validation"),
        ("score_validation", None, "score_validation"),
        ("labels_training", None, "labels_training"),
        ("labels_test", "[1, 2]", "labels_test"),
        ("labels_test", "not json", "labels_test"),
        ("labels_test", '{"a": 1}', "labels_test"),
        ("labels_validation", "[[1]]", "labels_validation"),
        ("labels_training", "[NaN]", "labels_training"),
        ("extra_scores_test", '{"f1": "high"}', "extra_scores_test"),
        ("extra_scores_test", '{"f1": NaN}', "extra_scores_test"),
        ("extra_scores_test", '{"f1": true}', "extra_scores_test"),
        ("extra_scores_validation", "[0.5]", "extra_scores_validation"),
        ("message", "x" * 10_001, "message"),
        ("success", "maybe", "success"),
    ]


def _sent(value: Any) -> str:
    """A field's value as the client would send it (JSON text unless a string)."""
    return value if isinstance(value, str) else json.dumps(value)


@pytest.mark.parametrize(("name", "value", "field"), _update_cases())
def test_update_refuses_bad_fields(
    admin: API, student: API, iris: int, name: str, value: Any, field: str
) -> None:
    """A bad update is 400 naming the field; the job stays running without a result."""
    job_id = running_job(admin, student, iris)
    fields = {key: _sent(val) for key, val in result_fields(admin, iris).items()}
    if value is None:
        del fields[name]
    else:
        fields[name] = value
    with pytest.raises(InvalidInputError) as raised:
        admin.load(f"jobs/{job_id}/update/", **fields)
    assert raised.value.status == 400
    assert field in raised.value.fields
    result = admin.get_job_result(job_id)
    assert (result["status"], result["score_test"], result["message"]) == ("running", None, "")
    admin.update_job_details(job_id, **result_fields(admin, iris))  # still accepts a good one


def test_update_of_unknown_job_is_404(admin: API) -> None:
    """An update for a job that does not exist answers 404."""
    with pytest.raises(NotFoundError):
        admin.load("jobs/999999/update/", success="false")


def test_wrong_method_and_unknown_address_answer_json(admin: API) -> None:
    """GET on a POST-only address is 405 and an unknown address 404, both as JSON errors."""
    for path, status in (("jobs/submit/", 405), ("no/such/place/", 404)):
        with pytest.raises(APIError) as raised:
            admin.load(path)
        assert raised.value.status == status
        assert path in raised.value.message


def test_update_with_huge_id_is_404_not_500(admin: API) -> None:
    """An id too large for the database is an unknown address, not a server error."""
    with pytest.raises(NotFoundError):
        admin.get_job_result(10**30)


def test_pictures_refuse_non_png_missing_and_oversized(
    demo_server: RunningServer, admin: API, student: API, iris: int, tmp_path: Path
) -> None:
    """Not a PNG (400), no file (400), over 5 MiB (413): each names 'picture', none is stored."""
    job_id = running_job(admin, student, iris)
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"GIF89a" + b"\x00" * 100)
    big = tmp_path / "big.png"
    big.write_bytes(png_bytes(padding=5 * 1024 * 1024))
    just_fits = tmp_path / "fits.png"
    just_fits.write_bytes(png_bytes(3, padding=5 * 1024 * 1024 - 200))
    assert just_fits.stat().st_size <= 5 * 1024 * 1024
    cases = [
        (lambda: admin.add_job_picture(job_id, fake), 400),
        (lambda: admin.load(f"jobs/{job_id}/pictures/", note="no file"), 400),
        (lambda: admin.add_job_picture(job_id, big), 413),
    ]
    for call, status in cases:
        with pytest.raises(InvalidInputError) as raised:
            call()
        assert raised.value.status == status
        assert "picture" in raised.value.fields
    assert admin.get_job_result(job_id)["pictures"] == []
    assert not (demo_server.data_dir / "media" / "jobs" / str(job_id)).exists()
    assert admin.add_job_picture(job_id, just_fits) == {"success": True}


def test_picture_for_unknown_job_is_404(admin: API, tmp_path: Path) -> None:
    """A picture for a job that does not exist answers 404."""
    picture = tmp_path / "p.png"
    picture.write_bytes(png_bytes())
    with pytest.raises(NotFoundError):
        admin.add_job_picture(999_999, picture)


def test_oversized_form_body_is_413_json(admin: API, student: API, iris: int) -> None:
    """A form body over the server's limit is 413 with a JSON error, not an HTML 400."""
    job_id = running_job(admin, student, iris)
    with pytest.raises(InvalidInputError) as raised:
        admin.load(f"jobs/{job_id}/update/", message="x" * (33 * 1024 * 1024))
    assert raised.value.status == 413
    assert admin.get_job_result(job_id)["status"] == "running"
