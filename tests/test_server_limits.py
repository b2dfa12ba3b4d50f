"""Finding 11: what one student may send and queue is bounded, and logins are throttled.

Each refusal is a clear error naming the field or the limit, and nothing changes: no job is
created, no session is opened. The server here has small limits (3 unfinished jobs, 3 failed
logins, a 60 s cool-off) so that the tests reach them quickly.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from contextlib import closing

import pytest
from conftest import RunningServer
from hostile_client import Answer, login_from, post
from server_helpers import dataset_id

from worker.api import API

MAX_PENDING = 3
FAILURES = 3
COOLOFF = 60  # also how long failures count: long enough for a loaded machine
LIMITS = {
    "MLWORKER_SERVER_MAX_PENDING_JOBS": str(MAX_PENDING),
    "MLWORKER_SERVER_LOGIN_FAILURES": str(FAILURES),
    "MLWORKER_SERVER_LOGIN_COOLOFF": str(COOLOFF),
}
PARAMS_MAX_BYTES = 64 * 1024
PARAMS_MAX_DEPTH = 8

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(start_server: Callable[..., RunningServer]) -> RunningServer:
    """A demo server with small limits, and students with no jobs yet."""
    running = start_server(demo=True, env=LIMITS)
    running.add_students("eve", "fay", "gus", "hal", "ivy")
    return running


@pytest.fixture(scope="module")
def admin(server: RunningServer) -> API:
    """The worker account of this module's server."""
    return server.api("backend", "foobar")


@pytest.fixture(scope="module")
def eve(server: RunningServer) -> API:
    """A student with no jobs."""
    return server.api("eve", "eve-password")


def job_count(server: RunningServer) -> int:
    """How many jobs the server's SQLite database holds (read beside the server)."""
    with closing(sqlite3.connect(server.data_dir / "db.sqlite3")) as database:
        return int(database.execute("SELECT COUNT(*) FROM server_job").fetchone()[0])


def nested(depth: int) -> str:
    """Params whose value nests lists ``depth - 1`` deep (the object itself is depth 1)."""
    return '{"n_neighbors": ' + "[" * (depth - 1) + "1" + "]" * (depth - 1) + "}"


@pytest.mark.parametrize(
    ("params", "named"),
    [
        (nested(500), f"at most {PARAMS_MAX_DEPTH} deep"),  # the finding: ~900 was accepted
        (nested(PARAMS_MAX_DEPTH + 1), f"not {PARAMS_MAX_DEPTH + 1}"),
        (
            '{"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {}}}}}}}}}',
            f"not {PARAMS_MAX_DEPTH + 1}",
        ),
        ("[" * 5000 + "]" * 5000, f"at most {PARAMS_MAX_DEPTH} deep"),
        ('{"x": "' + "a" * 20_000_000 + '"}', f"at most {PARAMS_MAX_BYTES:,} bytes"),
        ('{"x": "' + "a" * (PARAMS_MAX_BYTES - 8) + '"}', f"at most {PARAMS_MAX_BYTES:,} bytes"),
        ('{"n": ' + "9" * 5000 + "}", "an object in JSON text"),
    ],
    ids=["500-deep", "limit+1", "objects", "5000-deep-list", "20MB", "limit+1-byte", "huge-int"],
)
def test_params_bounded_in_size_and_depth(
    server: RunningServer, eve: API, admin: API, params: str, named: str
) -> None:
    """Too deep, too large or unreadable params are a 400 naming params and the limit."""
    before = job_count(server)
    answer = post(server.url, eve, "jobs/submit/", algorithm="knn", dataset="1", params=params)
    assert answer.status_code == 400, answer.text[:300]
    body = answer.json()
    assert named in body["fields"]["params"]
    assert body["error"].startswith("invalid params:")
    assert job_count(server) == before


def test_params_at_the_limits_are_accepted(server: RunningServer, eve: API, admin: API) -> None:
    """Params exactly at the depth and size limits are queued as sent."""
    deep = json.loads(nested(PARAMS_MAX_DEPTH))
    big = {"x": "a" * (PARAMS_MAX_BYTES - 8)}
    assert len(json.dumps(big, separators=(",", ":"))) == PARAMS_MAX_BYTES
    for params in (deep, big):
        text = json.dumps(params, separators=(",", ":"))
        answer = post(server.url, eve, "jobs/submit/", algorithm="knn", dataset="1", params=text)
        assert answer.status_code == 201, answer.text[:300]
        assert admin.get_job_details(answer.json()["job"])["params"] == params
        fail_pending(admin)


def fail_pending(admin: API) -> None:
    """Claim and fail every pending job, so no test's quota depends on another's."""
    while (claimed := admin.request_job()) is not None:
        admin.update_job_details(claimed, None, None, None, None, None, success=False)


def test_deep_json_in_a_result_is_refused(server: RunningServer, admin: API, eve: API) -> None:
    """A worker's deeply nested labels are a 400 naming the field; the job stays running."""
    fail_pending(admin)
    job_id = eve.submit_job("knn", dataset_id(admin, "iris"))
    assert admin.request_job() == job_id
    deep = "[" * 100_000 + "]" * 100_000
    for field in ("labels_test", "extra_scores_test"):
        answer = post(server.url, admin, f"jobs/{job_id}/update/", success="false", **{field: deep})
        assert answer.status_code == 400
        assert "nested at most" in answer.json()["fields"][field]
    assert admin.get_job_result(job_id)["status"] == "running"
    admin.update_job_details(job_id, None, None, None, None, None, success=False)


def test_pending_jobs_per_student_are_limited(server: RunningServer, admin: API) -> None:
    """The student's 4th unfinished job is a 429 with Retry-After; a finished one frees a place."""
    fail_pending(admin)
    fay = server.api("fay", "fay-password")
    iris = dataset_id(admin, "iris")
    queued = [fay.submit_job("knn", iris) for _ in range(MAX_PENDING)]
    assert admin.request_job() == queued[0]  # running counts as unfinished too
    before = job_count(server)
    refused = post(server.url, fay, "jobs/submit/", algorithm="knn", dataset=str(iris))
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert f"the most allowed is {MAX_PENDING}" in refused.json()["error"]
    assert "jobs" in refused.json()["fields"]
    assert job_count(server) == before
    admin.update_job_details(queued[0], None, None, None, None, None, success=False)
    assert fay.submit_job("knn", iris) > queued[-1]
    staff_jobs = [admin.submit_job("knn", iris) for _ in range(MAX_PENDING + 1)]  # no quota
    assert len(set(staff_jobs)) == MAX_PENDING + 1
    fail_pending(admin)


def assert_throttled(answer: Answer) -> None:
    """A throttled login: 429, Retry-After of the cool-off, an error naming the field."""
    assert answer.status == 429, answer.body[:300]
    assert answer.headers["Retry-After"] == str(COOLOFF)
    body = answer.json()
    assert "too many failed logins" in body["error"]
    assert "username" in body["fields"]
    assert "sessionid" not in answer.headers.get("Set-Cookie", "")


def test_login_throttled_per_address(server: RunningServer) -> None:
    """The 3rd failure from one address is a 429; then even a right password from it is."""
    for attempt in range(FAILURES - 1):
        failed = login_from(server.port, "127.0.0.3", f"nobody{attempt}", "guess")
        assert failed.status == 200
        assert b'"success"' not in failed.body
    assert_throttled(login_from(server.port, "127.0.0.3", "nobody", "guess"))
    assert_throttled(login_from(server.port, "127.0.0.3", "gus", "gus-password"))
    elsewhere = login_from(server.port, "127.0.0.4", "gus", "gus-password")
    assert (elsewhere.status, elsewhere.json()) == (200, {"success": True})


def test_login_throttled_per_account(server: RunningServer) -> None:
    """3 failures on one account from three addresses lock it, wherever the next login is from."""
    for source in ("127.0.0.5", "127.0.0.6"):
        assert login_from(server.port, source, "hal", "wrong").status == 200
    assert_throttled(login_from(server.port, "127.0.0.7", "hal", "wrong"))
    assert_throttled(login_from(server.port, "127.0.0.8", "hal", "hal-password"))
    other = login_from(server.port, "127.0.0.8", "ivy", "ivy-password")
    assert (other.status, other.json()) == (200, {"success": True})


def test_forwarded_for_is_ignored_without_the_proxy_setting(server: RunningServer) -> None:
    """A client cannot dodge its address's count by sending X-Forwarded-For of its own."""
    for attempt in range(FAILURES):
        spoofed = {"X-Forwarded-For": f"10.0.0.{attempt}"}
        login_from(server.port, "127.0.0.9", f"nobody{attempt}", "guess", spoofed)
    answer = login_from(
        server.port, "127.0.0.9", "ivy", "ivy-password", {"X-Forwarded-For": "10.9.9.9"}
    )
    assert_throttled(answer)


def test_login_contract_kept_below_the_limit_and_after_a_reset(server: RunningServer) -> None:
    """Below the limit a right password logs in as before; so it does once an operator resets."""
    source = "127.0.0.10"
    assert login_from(server.port, source, "eve", "wrong").status == 200
    right = login_from(server.port, source, "eve", "eve-password")
    assert (right.status, right.json()) == (200, {"success": True})
    for _ in range(FAILURES - 1):
        login_from(server.port, source, "eve", "wrong")
    assert_throttled(login_from(server.port, source, "eve", "eve-password"))
    server.cli("manage", "axes_reset_username", "eve")
    again = login_from(server.port, source, "eve", "eve-password")
    assert (again.status, again.json()) == (200, {"success": True})
