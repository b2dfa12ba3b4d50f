"""The client library (worker/api.py) against a real, fault-injecting HTTP peer.

The peer (tests/fault_server.py) runs on 127.0.0.1 and plays Django's session
and CSRF rules; faults are scripted per call. End-to-end tests against the
real reference server live elsewhere.
"""

from __future__ import annotations

import math
import os
import pickle
import socket
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from fault_server import DROP, LOGIN_PAGE, FaultServer, Reply

from worker.api import API, normalize_url
from worker.errors import (
    APIError,
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    MLWorkerError,
    NotFoundError,
    PermissionDeniedError,
    TransientError,
)
from worker.http import parse_retry_after, post_headers

PASSWORD = "foobar"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as peer:
        yield peer


MakeAPI = Callable[..., API]


@pytest.fixture
def make_api(server: FaultServer) -> Iterator[MakeAPI]:
    """Clients logged in to the peer (options as API takes them), closed after the test."""
    made: list[API] = []

    def make(**options: Any) -> API:
        settings: dict[str, Any] = {"timeout": (2.0, 5.0), "retry_for": 10.0} | options
        made.append(API("backend", PASSWORD, server.url, **settings))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture
def api(make_api: MakeAPI) -> API:
    return make_api()


@pytest.mark.parametrize(
    ("host", "path", "url"),
    [
        ("http://h:8000/", "/a", "http://h:8000/a"),
        ("http://h:8000//", "//a", "http://h:8000/a"),
        ("http://h:8000", "a/b/", "http://h:8000/a/b/"),
        ("http://h:8000/", "a/b/", "http://h:8000/a/b/"),
        ("https://example.org/ml/", "datasets/", "https://example.org/ml/datasets/"),
        ("https://example.org/ml", "/datasets/", "https://example.org/ml/datasets/"),
        ("http://h:8000/", "", "http://h:8000/"),
    ],
)
def test_normalize_url_joins_with_one_slash(host: str, path: str, url: str) -> None:
    """normalize_url puts exactly one / between host and path and keeps a host's prefix."""
    assert normalize_url(host, path) == url
    assert API.normalize_url(host, path) == url


def test_login_fetches_a_csrf_token_then_uses_the_rotated_one(
    server: FaultServer, api: API
) -> None:
    """The first POST is preceded by GET login/; after login the new token is read and used."""
    api.join_group("physics")
    assert server.sequence() == ["GET /login/", "POST /login/", "POST /groups/join/"]
    login, join = server.calls("POST")
    assert login.headers["x-csrftoken"] == login.cookies["csrftoken"]
    assert join.headers["x-csrftoken"] == join.cookies["csrftoken"]
    assert join.headers["x-csrftoken"] != login.headers["x-csrftoken"]


def test_every_post_carries_the_current_csrf_token(
    server: FaultServer, api: API, tmp_path: Path
) -> None:
    """Every POST the client sends has X-CSRFToken equal to its csrftoken cookie."""
    picture = tmp_path / "p.png"
    picture.write_bytes(PNG)
    server.answer("POST", "/jobs/request/", Reply(body={"job": 3}))
    server.answer("POST", "/jobs/submit/", Reply(201, {"job": 4}))
    api.add_group("g", public=False)
    api.join_round(2)
    api.submit_job("knn", 1)
    api.request_job()
    api.add_job_picture(3, picture)
    api.update_job_details(3, 0.5, 0.5, [1], [1], [1], pictures=[picture])  # finish/
    api.update_job_details(3, 0.5, 0.5, [1], [1], [1])  # update/
    api.logout()
    posts = server.calls("POST")
    assert len(posts) == 9
    for seen in posts:
        assert seen.headers["x-csrftoken"] == seen.cookies["csrftoken"], seen.path


def test_referer_header_is_sent_only_over_https() -> None:
    """The POST header builder adds Referer (the host's origin) for https hosts only."""
    assert post_headers("https://example.org/ml/", "tok") == {
        "X-CSRFToken": "tok",
        "Referer": "https://example.org/",
    }
    assert post_headers("http://example.org/ml/", "tok") == {"X-CSRFToken": "tok"}


CALLS: list[tuple[Callable[[API], Any], Reply, str, dict[str, str], Any]] = [
    (lambda a: a.get_groups(), Reply(body={"g": {"public": True}}), "GET /groups/", {}, None),
    (
        lambda a: a.add_group("g", public=False),
        Reply(201, {"success": True, "name": "g"}),
        "POST /groups/add/",
        {"name": "g", "public": "false"},
        {"success": True, "name": "g"},
    ),
    (
        lambda a: a.join_group("g"),
        Reply(),
        "POST /groups/join/",
        {"group_name": "g"},
        {"success": True},
    ),
    (lambda a: a.join_round(4), Reply(), "POST /rounds/4/join/", {}, {"success": True}),
    (
        lambda a: a.get_points(3),
        Reply(body=[{"id": 1, "x": 0.5, "label": 1, "set": "training"}]),
        "GET /datasets/3/points/",
        {},
        [{"id": 1, "x": 0.5, "label": 1, "set": "training"}],
    ),
    (
        lambda a: a.submit_job("knn", 3, params={"n_neighbors": 5}, round_id=2, time_limit=60),
        Reply(201, {"job": 9}),
        "POST /jobs/submit/",
        {
            "algorithm": "knn",
            "dataset": "3",
            "params": '{"n_neighbors": 5}',
            "round": "2",
            "time_limit": "60",
        },
        9,
    ),
    (
        lambda a: a.submit_job("kmeans", 3),
        Reply(201, {"job": 10}),
        "POST /jobs/submit/",
        {"algorithm": "kmeans", "dataset": "3", "params": "{}"},
        10,
    ),
    (
        lambda a: a.get_job_result(9),
        Reply(body={"id": 9, "status": "done"}),
        "GET /jobs/9/result/",
        {},
        {"id": 9, "status": "done"},
    ),
    (
        lambda a: a.get_job_details(9),
        Reply(body={"id": 9, "algorithm": "knn", "params": {}}),
        "GET /jobs/9/",
        {},
        {"id": 9, "algorithm": "knn", "params": {}},
    ),
    (lambda a: a.logout(), Reply(), "POST /logout/", {}, {"success": True}),
    (
        lambda a: a.load("custom/", flag=True, items=[1, "a"], info={"k": None}, skip=None),
        Reply(body={"ok": 1}),
        "POST /custom/",
        {"flag": "true", "items": '[1, "a"]', "info": '{"k": null}'},
        {"ok": 1},
    ),
    (lambda a: a.load("custom/"), Reply(body=[1, 2]), "GET /custom/", {}, [1, 2]),
    (lambda a: a.load("page/", raw=True), Reply(body="<p>hi</p>"), "GET /page/", {}, "<p>hi</p>"),
]


@pytest.mark.parametrize(("call", "reply", "request_line", "form", "result"), CALLS)
def test_each_call_sends_its_request_and_returns_its_answer(
    server: FaultServer,
    api: API,
    call: Callable[[API], Any],
    reply: Reply,
    request_line: str,
    form: dict[str, str],
    result: Any,
) -> None:
    """Each call uses its method and path, encodes fields (JSON text, true/false), decodes."""
    method, path = request_line.split()
    server.answer(method, path, reply)
    answer = call(api)
    (seen,) = server.calls(method, path)
    assert seen.form == form
    assert answer == (reply.body if result is None else result)


def test_rounds_and_datasets_have_int_keys(server: FaultServer, api: API) -> None:
    """get_rounds and get_datasets turn the protocol's string ids into int keys."""
    server.answer("GET", "/rounds/", Reply(body={"2": {"name": "r", "open": True}}))
    server.answer("GET", "/datasets/", Reply(body={"3": {"name": "moons"}, "11": {"name": "x"}}))
    assert api.get_rounds() == {2: {"name": "r", "open": True}}
    assert api.get_datasets() == {3: {"name": "moons"}, 11: {"name": "x"}}


def test_request_job_sends_x_worker_and_returns_id_or_none(
    server: FaultServer, make_api: MakeAPI
) -> None:
    """request_job returns the job id or None and names the worker in X-Worker."""
    server.fault("POST", "/jobs/request/", Reply(body={"job": 7}), Reply(body={"job": None}))
    with_default = make_api()
    assert with_default.request_job() == 7
    assert with_default.request_job() is None
    named = make_api(worker_id="box:1")
    server.answer("POST", "/jobs/request/", Reply(body={"job": None}))
    assert named.request_job() is None
    workers = [s.headers["x-worker"] for s in server.calls("POST", "/jobs/request/")]
    assert workers == [f"{socket.gethostname()}:{os.getpid()}"] * 2 + ["box:1"]


@pytest.mark.parametrize("status", [200, 401, 403])
def test_failed_login_raises_authentication_error_without_the_password(
    server: FaultServer, status: int
) -> None:
    """A refused login raises AuthenticationError with status and user, never the password."""
    server.login_failure_status = status
    secret = "s3cret-pa55"
    with pytest.raises(AuthenticationError) as caught:
        API("backend", secret, server.url)
    error = caught.value
    assert error.status == status
    assert "'backend'" in str(error)
    assert server.url in str(error)
    for text in (str(error), repr(error), repr(error.args), error.message):
        assert secret not in text


def test_login_returns_true_or_the_html_text(server: FaultServer, api: API) -> None:
    """login() answers True on success and the failed answer's HTML text otherwise."""
    assert api.login("backend", "wrong") == LOGIN_PAGE
    assert api.login("backend", PASSWORD) is True


def test_repr_hides_the_password(api: API) -> None:
    """The client's repr names user and host but not the password."""
    assert PASSWORD not in repr(api)
    assert "backend" in repr(api)


@pytest.mark.parametrize("expired_answer", [401, 302])
def test_expired_session_logs_in_again_once(
    server: FaultServer, api: API, expired_answer: int
) -> None:
    """A 401 or a 302 to login/ makes the client log in again and repeat the call."""
    server.expired_answer = expired_answer
    server.answer("GET", "/datasets/", Reply(body={"1": {"name": "moons"}}))
    server.expire_sessions()
    start = len(server.calls())
    assert api.get_datasets() == {1: {"name": "moons"}}
    assert server.sequence()[start:] == [
        "GET /datasets/",
        "GET /login/",
        "POST /login/",
        "GET /datasets/",
    ]


def test_prefixed_host_is_kept_and_its_login_redirect_recognised() -> None:
    """A host with a path prefix is used as is, including the 302 to <prefix>login/."""
    with FaultServer(prefix="/ml/") as server, closing(API(host=server.url)) as api:
        server.expired_answer = 302
        server.expire_sessions()
        assert api.get_groups() == {"success": True}
        assert server.sequence()[-1] == "GET /groups/"
        assert server.url.endswith("/ml/")


def test_refused_again_after_logging_in_again_raises(server: FaultServer, api: API) -> None:
    """When the session is refused right after a new login, the call fails: one re-login only."""
    server.fault("GET", "/groups/", Reply(401, {"error": "nope"}), Reply(401, {"error": "nope"}))
    with pytest.raises(AuthenticationError) as caught:
        api.get_groups()
    assert caught.value.status == 401
    assert len(server.calls("GET", "/groups/")) == 2
    assert len(server.calls("POST", "/login/")) == 2  # the first login and one more


def test_after_logout_the_client_does_not_log_in_silently(server: FaultServer, api: API) -> None:
    """Once logged out, a call needing a session raises instead of logging in again."""
    api.logout()
    with pytest.raises(AuthenticationError):
        api.get_groups()
    assert len(server.calls("POST", "/login/")) == 1


@pytest.mark.parametrize(
    "fault",
    [
        Reply(500, {"error": "boom"}),
        Reply(502, "<html>bad gateway</html>"),
        Reply(408, {"error": "slow"}),
        DROP,
    ],
    ids=["500", "502-html", "408", "dropped-connection"],
)
def test_transient_failure_then_success_is_retried(
    server: FaultServer, api: API, fault: Reply | str
) -> None:
    """A 5xx, a 408 or a dropped connection is retried, and the call then succeeds."""
    server.fault("GET", "/groups/", fault)
    server.answer("GET", "/groups/", Reply(body={"g": {}}))
    assert api.get_groups() == {"g": {}}
    assert len(server.calls("GET", "/groups/")) == 2


def test_read_timeout_is_retried(server: FaultServer, make_api: MakeAPI) -> None:
    """An answer slower than the read timeout counts as transient and is retried."""
    api = make_api(timeout=(2.0, 0.3))
    server.fault("GET", "/groups/", Reply(delay=1.0))
    server.answer("GET", "/groups/", Reply(body={"g": {}}))
    assert api.get_groups() == {"g": {}}
    assert len(server.calls("GET", "/groups/")) == 2


def test_retry_after_is_honoured(server: FaultServer, api: API) -> None:
    """After a 429 with Retry-After: 1 the client waits at least that long before retrying."""
    server.fault("POST", "/jobs/request/", Reply(429, {"error": "slow down"}, {"Retry-After": "1"}))
    server.answer("POST", "/jobs/request/", Reply(body={"job": 5}))
    assert api.request_job() == 5
    first, second = server.calls("POST", "/jobs/request/")
    assert second.at - first.at >= 1.0 - 0.05  # tolerance for clock granularity


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("3", 3.0), ("0.5", 0.5), ("-2", 0.0), ("inf", None), ("soon", None), (None, None)],
)
def test_retry_after_in_seconds_is_parsed(value: str | None, seconds: float | None) -> None:
    """Retry-After in seconds becomes a wait >= 0; nonsense is ignored (None)."""
    assert parse_retry_after(value) == seconds


def test_retry_after_as_an_http_date_is_parsed() -> None:
    """Retry-After as an HTTP date becomes the seconds until that date."""
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    wait = parse_retry_after(in_a_minute)
    assert wait is not None
    assert 50 <= wait <= 61


def test_retry_for_zero_raises_transient_error_at_once(
    server: FaultServer, make_api: MakeAPI
) -> None:
    """With retry_for=0 a 503 raises TransientError carrying Retry-After, after one request."""
    api = make_api(retry_for=0)
    server.fault("GET", "/datasets/", Reply(503, {"error": "busy"}, {"Retry-After": "7"}))
    with pytest.raises(TransientError) as caught:
        api.get_datasets()
    assert (caught.value.status, caught.value.retry_after) == (503, 7.0)
    assert "busy" in str(caught.value)
    assert len(server.calls("GET", "/datasets/")) == 1


def test_retry_after_beyond_retry_for_gives_up_without_waiting(
    server: FaultServer, api: API
) -> None:
    """A Retry-After longer than the retry budget ends the call instead of sleeping past it."""
    server.fault("GET", "/datasets/", Reply(429, {"error": "later"}, {"Retry-After": "3600"}))
    with pytest.raises(TransientError) as caught:
        api.get_datasets()
    assert caught.value.retry_after == 3600.0
    assert len(server.calls("GET", "/datasets/")) == 1


def test_unreachable_server_is_a_transient_error() -> None:
    """Connection refused raises TransientError without a status."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TransientError) as caught:
        API(host=f"http://127.0.0.1:{port}/", retry_for=0)
    assert caught.value.status is None


def test_invalid_input_names_fields_and_is_not_retried(server: FaultServer, api: API) -> None:
    """A 400 with fields raises InvalidInputError.fields, after exactly one request."""
    refusal = {"error": "bad params", "fields": {"params": "n_neighbors must be >= 1"}}
    server.fault("POST", "/jobs/submit/", Reply(400, refusal))
    with pytest.raises(InvalidInputError) as caught:
        api.submit_job("knn", 1, params={"n_neighbors": 0})
    assert caught.value.status == 400
    assert caught.value.fields == {"params": "n_neighbors must be >= 1"}
    assert "bad params" in str(caught.value)
    assert len(server.calls("POST", "/jobs/submit/")) == 1


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (413, InvalidInputError),
        (418, APIError),
    ],
)
def test_permanent_errors_are_typed_and_not_retried(
    server: FaultServer, api: API, status: int, error_type: type[APIError]
) -> None:
    """403/404/409/413 (and unknown 4xx) raise their own type after exactly one request."""
    server.fault("GET", "/jobs/8/", Reply(status, {"error": "the sentence"}))
    with pytest.raises(error_type) as caught:
        api.get_job_details(8)
    assert type(caught.value) is error_type
    assert caught.value.status == status
    assert "the sentence" in caught.value.message
    assert len(server.calls("GET", "/jobs/8/")) == 1


def test_answer_that_is_not_json_is_an_api_error(server: FaultServer, api: API) -> None:
    """A 200 whose body is not JSON raises APIError instead of returning garbage."""
    server.answer("GET", "/groups/", Reply(body="<html>proxy page</html>"))
    with pytest.raises(APIError, match="not JSON"):
        api.get_groups()


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"score_test": math.nan}, "score_test"),
        ({"score_validation": math.inf}, "score_validation"),
        ({"extra_scores_test": {"r2": -math.inf}}, "extra_scores_test"),
    ],
)
def test_nan_is_refused_before_anything_is_sent(
    server: FaultServer, api: API, tmp_path: Path, fields: dict[str, Any], name: str
) -> None:
    """NaN or infinity in a field raises ValueError naming it; no picture nor update is sent."""
    picture = tmp_path / "p.png"
    picture.write_bytes(PNG)
    result = {"score_test": 0.5, "score_validation": 0.5} | fields
    before = len(server.calls())
    with pytest.raises(ValueError, match=name):
        api.update_job_details(
            1,
            labels_training=[],
            labels_test=[],
            labels_validation=[],
            pictures=[picture],
            **result,
        )
    assert len(server.calls()) == before


UPDATE_FORM = {
    "score_test": "0.9",
    "score_validation": "0.8",
    "labels_training": "[0, 1]",
    "labels_test": '["a"]',
    "labels_validation": "[2.5]",
    "extra_scores_test": '{"f1": 0.7}',
    "message": "ok",
    "success": "true",
}
NO_SUCH_ADDRESS = Reply(404, {"error": "no such address: /jobs/5/finish/"})


def _two_pictures(tmp_path: Path) -> list[Path]:
    pictures = [tmp_path / "a.png", tmp_path / "b.png"]
    for index, path in enumerate(pictures):
        path.write_bytes(PNG + bytes([index]))
    return pictures


def _update_with(api: API, pictures: list[Any]) -> dict[str, Any]:
    return api.update_job_details(
        5, 0.9, 0.8, [0, 1], ["a"], [2.5], {"f1": 0.7}, message="ok", pictures=pictures
    )


def test_pictures_travel_with_the_result_in_one_request(
    server: FaultServer, api: API, tmp_path: Path
) -> None:
    """A server offering ``finish/`` gets the fields and every picture in one multipart POST."""
    before = len(server.calls())
    assert _update_with(api, [*_two_pictures(tmp_path), ("c.png", PNG)]) == {"success": True}
    assert server.sequence()[before:] == ["POST /jobs/5/finish/"]
    (finish,) = server.calls("POST", "/jobs/5/finish/")
    assert finish.form == UPDATE_FORM
    assert finish.uploads == [
        ("picture", "a.png", PNG + b"\x00"),
        ("picture", "b.png", PNG + b"\x01"),
        ("picture", "c.png", PNG),
    ]


def test_a_server_without_finish_gets_the_v1_calls_and_is_asked_again_an_hour_later(
    server: FaultServer, api: API, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """404 on ``finish/``: pictures one by one, then the update; then v1 straight away."""
    pictures = _two_pictures(tmp_path)
    server.answer("POST", "/jobs/5/finish/", NO_SUCH_ADDRESS)
    server.answer("POST", "/jobs/5/pictures/", Reply(201, {"success": True}))
    before = len(server.calls())
    assert _update_with(api, pictures) == {"success": True}
    v1 = ["POST /jobs/5/pictures/"] * 2 + ["POST /jobs/5/update/"]
    assert server.sequence()[before:] == ["POST /jobs/5/finish/", *v1]
    uploads = server.calls("POST", "/jobs/5/pictures/")
    assert [seen.files["picture"] for seen in uploads] == [
        ("a.png", PNG + b"\x00"),
        ("b.png", PNG + b"\x01"),
    ]
    assert all(s.headers["content-type"].startswith("multipart/form-data") for s in uploads)
    assert server.calls("POST", "/jobs/5/update/")[0].form == UPDATE_FORM
    before = len(server.calls())
    _update_with(api, pictures)
    assert server.sequence()[before:] == v1
    monkeypatch.setattr("worker.api.FINISH_ASK_AGAIN", 0.0)  # the hour has passed
    before = len(server.calls())
    _update_with(api, pictures)
    assert server.sequence()[before:] == ["POST /jobs/5/finish/", *v1]


def test_a_finish_for_an_unknown_job_is_not_taken_for_an_old_server(
    server: FaultServer, api: API
) -> None:
    """404 on ``finish/`` and on the v1 calls: NotFoundError, and ``finish/`` is still used."""
    server.answer("POST", "/jobs/5/finish/", Reply(404, {"error": "no job with id 5"}))
    server.answer("POST", "/jobs/5/pictures/", Reply(404, {"error": "no job with id 5"}))
    with pytest.raises(NotFoundError):
        _update_with(api, [("a.png", PNG)])
    before = len(server.calls())
    with pytest.raises(NotFoundError):
        _update_with(api, [("a.png", PNG)])
    assert server.sequence()[before] == "POST /jobs/5/finish/"


def test_a_refused_picture_in_a_finish_still_counts_the_result(
    server: FaultServer, api: API
) -> None:
    """``finish/`` names a picture it refused: the result was taken, and the answer says so."""
    refused = [{"name": "a.png", "error": "invalid picture: the file is not a PNG image"}]
    server.answer("POST", "/jobs/5/finish/", Reply(body={"success": True, "refused": refused}))
    assert _update_with(api, [("a.png", b"GIF89a")]) == {"success": True}


def test_failure_update_sends_only_given_fields(server: FaultServer, api: API) -> None:
    """A failed job's update sends success=false and its message, nothing that is None."""
    api.update_job_details(6, None, None, None, None, None, message="bad params", success=False)
    (update,) = server.calls("POST", "/jobs/6/update/")
    assert update.form == {"message": "bad params", "success": "false"}


def test_conflict_on_a_picture_still_sends_the_update(
    server: FaultServer, api: API, tmp_path: Path
) -> None:
    """A 409 on a v1 picture upload is skipped; the update is sent and its answer returned."""
    picture = tmp_path / "p.png"
    picture.write_bytes(PNG)
    server.answer("POST", "/jobs/5/finish/", NO_SUCH_ADDRESS)
    server.fault("POST", "/jobs/5/pictures/", Reply(409, {"error": "job 5 is not running"}))
    server.answer("POST", "/jobs/5/update/", Reply(body={"success": True, "duplicate": True}))
    answer = api.update_job_details(5, 0.9, 0.8, [0], [1], [1], pictures=[picture])
    assert answer == {"success": True, "duplicate": True}
    assert len(server.calls("POST", "/jobs/5/pictures/")) == 1
    assert len(server.calls("POST", "/jobs/5/update/")) == 1


def test_bad_host_is_refused_with_a_clear_error() -> None:
    """A host that is not an http(s) URL raises ValueError naming it and what is allowed."""
    with pytest.raises(ValueError, match=r"'localhost:8000'.*http://"):
        API(host="localhost:8000")


def test_errors_survive_pickling_and_share_one_base() -> None:
    """Every API error is an MLWorkerError and keeps status, fields and retry_after when pickled."""
    invalid = pickle.loads(pickle.dumps(InvalidInputError("bad", 400, {"a": "b"})))  # noqa: S301
    transient = pickle.loads(pickle.dumps(TransientError("busy", 503, 2.0)))  # noqa: S301
    assert (invalid.message, invalid.status, invalid.fields) == ("bad", 400, {"a": "b"})
    assert (transient.status, transient.retry_after) == (503, 2.0)
    assert isinstance(invalid, MLWorkerError)
