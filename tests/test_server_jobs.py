"""The reference server's job life cycle through worker.api: submit, claim, pictures, update."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import RunningServer
from server_helpers import dataset_id, png_bytes, result_fields, running_job, write_csv

from worker.api import API
from worker.errors import ConflictError, InvalidInputError, NotFoundError, PermissionDeniedError
from worker.http import encode_form, json_body

pytestmark = pytest.mark.slow  # a real server process per module


def test_submitted_job_has_server_seed_and_defaults(admin: API, student: API, iris: int) -> None:
    """A submitted job is pending with its params, a server seed and the default time limit."""
    job_id = student.submit_job("knn", iris, {"n_neighbors": 3})
    result = student.get_job_result(job_id)
    assert result["status"] == "pending"
    assert result["attempt"] == 0
    details = admin.get_job_details(job_id)
    assert details["algorithm"] == "knn"
    assert details["dataset"] == iris
    assert details["params"] == {"n_neighbors": 3}
    assert details["time_limit"] == 300
    assert 0 <= details["seed"] < 2**31
    assert student.submit_job("knn", iris) != job_id


def test_admin_sets_a_time_limit_students_may_not(admin: API, student: API, iris: int) -> None:
    """time_limit is taken from admins and refused (403) from students."""
    job_id = admin.submit_job("svm", iris, time_limit=42)
    assert admin.get_job_details(job_id)["time_limit"] == 42
    with pytest.raises(PermissionDeniedError) as raised:
        student.submit_job("svm", iris, time_limit=42)
    assert raised.value.status == 403
    assert "admin rights required" in raised.value.message
    assert student.submit_job("svm", iris) == job_id + 1  # the refused one made no job


def test_claim_records_the_worker_and_grows_attempt(
    demo_server: RunningServer, admin: API, student: API, iris: int
) -> None:
    """request_job hands out a job running, attempt 1, recording the X-Worker header."""
    worker = demo_server.api("backend", "foobar", worker_id="host-a:4242")
    job_id = running_job(worker, student, iris)
    assert admin.get_job_result(job_id)["status"] == "running"
    assert admin.get_job_details(job_id)["attempt"] == 1
    code = f"from server.models import Job; print(Job.objects.get(pk={job_id}).worker)"
    assert demo_server.shell(code) == "host-a:4242"


def test_no_pending_job_claims_none(admin: API, student: API, iris: int) -> None:
    """With every job claimed, request_job answers None."""
    running_job(admin, student, iris)
    assert admin.request_job() is None


def test_update_finishes_and_repeats_as_duplicate(admin: API, student: API, iris: int) -> None:
    """An update finishes a running job; the same update again is a duplicate."""
    job_id = running_job(admin, student, iris)
    fields = result_fields(admin, iris, score=0.9)
    assert admin.update_job_details(job_id, **fields) == {"success": True}
    assert admin.update_job_details(job_id, **fields) == {"success": True, "duplicate": True}
    result = admin.get_job_result(job_id)
    assert result["status"] == "done"
    assert result["score_test"] == 0.9
    assert result["score_validation"] == 0.45
    assert result["extra_scores_test"] == {"f1_macro": 0.9}
    assert result["message"] == "fine"


def test_different_update_on_finished_job_conflicts(admin: API, student: API, iris: int) -> None:
    """A different update on a finished job is 409 and changes nothing."""
    job_id = running_job(admin, student, iris)
    admin.update_job_details(job_id, **result_fields(admin, iris, score=0.9))
    with pytest.raises(ConflictError):
        admin.update_job_details(job_id, **result_fields(admin, iris, score=0.8))
    assert admin.get_job_result(job_id)["score_test"] == 0.9


def test_update_on_pending_job_conflicts(admin: API, student: API, iris: int) -> None:
    """An update on a pending job is 409; the job stays pending."""
    job_id = student.submit_job("knn", iris)
    with pytest.raises(ConflictError):
        admin.update_job_details(job_id, **result_fields(admin, iris))
    assert admin.get_job_result(job_id)["status"] == "pending"


def test_failure_update_marks_job_failed(admin: API, student: API, iris: int) -> None:
    """success=false with a message fails the job without scores or labels."""
    job_id = running_job(admin, student, iris)
    answer = admin.update_job_details(
        job_id, None, None, None, None, None, success=False, message="n_neighbors too large"
    )
    assert answer == {"success": True}
    result = student.get_job_result(job_id)
    assert (result["status"], result["message"]) == ("failed", "n_neighbors too large")
    assert result["score_test"] is None


def test_unknown_job_ids_are_404(admin: API, student: API) -> None:
    """Result, details and update of an unknown job answer 404."""
    for call in (
        lambda: student.get_job_result(999_999),
        lambda: admin.get_job_details(999_999),
        lambda: admin.update_job_details(999_999, None, None, None, None, None, success=False),
    ):
        with pytest.raises(NotFoundError):
            call()


def test_results_are_for_their_owner_or_admins(
    demo_server: RunningServer, admin: API, student: API, iris: int
) -> None:
    """Another student's job result is 403."""
    demo_server.add_user("other", "other-password")
    other = demo_server.api("other", "other-password")
    job_id = student.submit_job("knn", iris)
    with pytest.raises(PermissionDeniedError):
        other.get_job_result(job_id)
    assert admin.get_job_result(job_id)["id"] == job_id


def test_validation_scores_hidden_until_round_closes(
    demo_server: RunningServer, admin: API, student: API, tmp_path: Path
) -> None:
    """The owner sees validation scores only after the round closes; admins always."""
    sizes = {"training": 4, "test": 3, "validation": 2}
    moons = demo_server.import_dataset(
        write_csv(tmp_path / "d.csv", sizes), "hiding", "classification"
    )
    round_id = demo_server.new_round(moons, "hiding")
    student.join_round(round_id)
    job_id = running_job(admin, student, moons, round_id=round_id)
    admin.update_job_details(job_id, **result_fields(admin, moons, score=0.8))
    shown = student.get_job_result(job_id)
    assert (shown["score_test"], shown["score_validation"]) == (0.8, None)
    assert shown["extra_scores_validation"] is None
    assert admin.get_job_result(job_id)["score_validation"] == 0.4
    demo_server.shell(
        f"from server.models import Round; Round.objects.filter(pk={round_id}).update(open=False)"
    )
    shown = student.get_job_result(job_id)
    assert shown["score_validation"] == 0.4
    assert shown["extra_scores_validation"] == {"f1_macro": 0.4}


def test_jobs_outside_rounds_show_validation_scores(admin: API, student: API, iris: int) -> None:
    """Without a round there is nothing to hide: the owner sees validation scores."""
    job_id = running_job(admin, student, iris)
    admin.update_job_details(job_id, **result_fields(admin, iris, score=0.6))
    assert student.get_job_result(job_id)["score_validation"] == 0.3


def test_round_submission_rules(demo_server: RunningServer, admin: API, student: API) -> None:
    """A round must be joined (403) and open (409); admins need not join."""
    moons = dataset_id(admin, "moons")
    unjoined = demo_server.new_round(moons, "unjoined")
    closed = demo_server.new_round(moons, "closed", open=False)
    with pytest.raises(PermissionDeniedError):
        student.submit_job("knn", moons, round_id=unjoined)
    assert admin.submit_job("knn", moons, round_id=unjoined) > 0
    with pytest.raises(ConflictError):
        admin.submit_job("knn", moons, round_id=closed)


def test_pictures_are_stored_once_and_served(
    demo_server: RunningServer, admin: API, student: API, iris: int, tmp_path: Path
) -> None:
    """Pictures upload while running, the same bytes once, and are served as /media/ URLs."""
    job_id = running_job(admin, student, iris)
    first, second = tmp_path / "regions.png", tmp_path / "confusion.png"
    first.write_bytes(png_bytes(1))
    second.write_bytes(png_bytes(2))
    assert admin.add_job_picture(job_id, first) == {"success": True}
    assert admin.add_job_picture(job_id, first) == {"success": True, "duplicate": True}
    fields = result_fields(admin, iris)
    admin.update_job_details(job_id, **fields, pictures=[second, first])
    pictures = student.get_job_result(job_id)["pictures"]
    assert pictures == [f"/media/jobs/{job_id}/1.png", f"/media/jobs/{job_id}/2.png"]
    served = student._transport.session.get(demo_server.url + pictures[0].lstrip("/"))
    assert served.content == png_bytes(1)
    stored = sorted((demo_server.data_dir / "media" / "jobs" / str(job_id)).iterdir())
    assert [path.read_bytes() for path in stored] == [png_bytes(1), png_bytes(2)]
    with pytest.raises(ConflictError):
        admin.add_job_picture(job_id, second)


def test_finish_takes_the_result_and_its_pictures_in_one_request(
    admin: API, student: API, iris: int
) -> None:
    """``finish/``: pictures stored with the result, a bad one named and left out; idempotent."""
    job_id = running_job(admin, student, iris)
    fields = encode_form({**result_fields(admin, iris), "success": True})
    pictures = [("regions.png", png_bytes(5)), ("confusion.png", b"GIF89a not a png")]
    files = [("picture", (name, data, "image/png")) for name, data in pictures]

    def finish() -> dict[str, object]:
        path = f"jobs/{job_id}/finish/"
        return json_body(admin._transport.request("POST", path, data=fields, files=files), dict)

    refused = [{"name": "confusion.png", "error": "invalid picture: the file is not a PNG image"}]
    assert finish() == {"success": True, "refused": refused}
    assert finish() == {"success": True, "duplicate": True}
    result = student.get_job_result(job_id)
    assert (result["status"], result["pictures"]) == ("done", [f"/media/jobs/{job_id}/1.png"])
    pending = student.submit_job("knn", iris)
    with pytest.raises(ConflictError, match="pending"):
        admin.update_job_details(pending, **result_fields(admin, iris), pictures=pictures[:1])
    assert student.get_job_result(pending)["pictures"] == []


def test_finish_refuses_more_pictures_than_allowed(admin: API, student: API, iris: int) -> None:
    """Seventeen pictures in one ``finish/`` is a 400 naming the field and the limit."""
    job_id = running_job(admin, student, iris)
    fields = encode_form({**result_fields(admin, iris), "success": True})
    many = [("picture", (f"{n}.png", png_bytes(n), "image/png")) for n in range(17)]
    path = f"jobs/{job_id}/finish/"
    with pytest.raises(InvalidInputError, match="at most 16") as refused:
        admin._transport.request("POST", path, data=fields, files=many)
    assert "picture" in refused.value.fields
    assert student.get_job_result(job_id)["status"] == "running"


def test_pictures_are_for_their_job_owner_or_admins(
    demo_server: RunningServer, admin: API, student: API, iris: int, tmp_path: Path
) -> None:
    """Like the result, a job's pictures are refused to other students (403), served to admins."""
    job_id = running_job(admin, admin, iris)  # an admin's own job: not the student's
    picture = tmp_path / "regions.png"
    picture.write_bytes(png_bytes(3))
    admin.update_job_details(job_id, **result_fields(admin, iris), pictures=[picture])
    (url,) = admin.get_job_result(job_id)["pictures"]
    address = demo_server.url + url.lstrip("/")
    refused = student._transport.session.get(address)
    assert refused.status_code == 403
    assert "owner" in refused.json()["error"]
    outside = student._transport.session.get(demo_server.url + "media/secret_key")
    assert outside.status_code == 403
    assert admin._transport.session.get(address).content == png_bytes(3)
