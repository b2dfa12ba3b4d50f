"""Who may open which page, and what each page shows: Django's test client, no browser.

The data: students alice and bob in an open round, a teacher, a worker that claimed their
jobs. Validation scores use distinctive values, so a page that shows a hidden one is
caught by searching its HTML for the number.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from typing import Any

import pytest
from pages_django import django_in_process, rolled_back
from server_helpers import png_bytes

PASSWORD = "pages-Secret-42"
HIDDEN = {"alice": 0.4321, "bob": 0.8764}  # validation scores while the round is open
TEST = {"alice": 0.9012, "bob": 0.7012}
OUTSIDE_VALIDATION = 0.1234  # alice's job on the round's dataset, outside the round
APP_PAGES = ["/app/", "/app/jobs/new/", "/app/datasets/", "/app/groups/", "/app/fleet/"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Users, a dataset, an open round, finished and failed jobs; in a fresh database."""
    with django_in_process(tmp_path_factory.mktemp("pages-django")):
        yield _make_data()


def _make_data() -> dict[str, Any]:
    from django.contrib.auth.models import User
    from django.core.files.base import ContentFile
    from django.utils import timezone

    from server.models import Dataset, Job, Picture, Point, Round

    users = {name: User.objects.create_user(name, password=PASSWORD) for name in ("alice", "bob")}
    users["teacher"] = User.objects.create_user("teacher", password=PASSWORD, is_staff=True)
    dataset = Dataset.objects.create(name="toy", task="classification", features=["x"])
    for number, set_name in enumerate(["training"] * 4 + ["test"] * 2 + ["validation"] * 2):
        Point.objects.create(dataset=dataset, set=set_name, values={"x": number}, label=number % 2)
    dataset.refresh_version()
    round_ = Round.objects.create(name="Week 1", dataset=dataset)
    round_.participants.add(users["alice"], users["bob"])
    now = timezone.now()
    jobs = {}
    for name in ("alice", "bob"):
        jobs[name] = Job.objects.create(
            owner=users[name], algorithm="knn", dataset=dataset, params={"n_neighbors": 3},
            round=round_, status="done", attempt=1, worker="host-a:101", claimed=now,
            finished=now, score_test=TEST[name], score_validation=HIDDEN[name],
            extra_scores_test={"accuracy": TEST[name]},
            extra_scores_validation={"accuracy": HIDDEN[name]},
        )  # fmt: skip
    jobs["failed"] = Job.objects.create(
        owner=users["bob"], algorithm="svm", dataset=dataset, status="failed", attempt=2,
        worker="host-b:202", claimed=now, finished=now, message="Unknown parameter 'gamma2'",
    )  # fmt: skip
    jobs["running"] = Job.objects.create(
        owner=users["alice"], algorithm="kmeans", dataset=dataset, status="running", attempt=1,
        worker="host-b:202", claimed=now, lease_expires=now + datetime.timedelta(seconds=90),
    )  # fmt: skip
    jobs["outside"] = Job.objects.create(
        owner=users["alice"], algorithm="knn", dataset=dataset, status="done", attempt=1,
        worker="host-a:101", claimed=now, finished=now, score_test=0.5555,
        score_validation=OUTSIDE_VALIDATION, labels_test=[0, 1], labels_validation=[1, 0],
    )  # fmt: skip
    picture = Picture(job=jobs["alice"], sha256="0" * 64)
    picture.file.save("1.png", ContentFile(png_bytes()), save=True)
    return {"users": users, "jobs": jobs, "round": round_, "dataset": dataset}


@pytest.fixture(autouse=True)
def _each_test_rolled_back(data: dict[str, Any]) -> Iterator[None]:
    with rolled_back():
        yield


def client(name: str | None = None) -> Any:
    """A test client, logged in as ``name`` unless None (the login form has its own tests)."""
    from django.contrib.auth.models import User
    from django.test import Client

    browser = Client()
    if name is not None:
        browser.force_login(User.objects.get(username=name))
    return browser


def html(response: Any) -> str:
    return str(response.content.decode())


def shows_number(page: str, number: str) -> bool:
    """Whether ``page`` holds a number that begins with ``number``: not the tail of another
    (a timestamp's seconds, ``2026-12-01T03:40:10.8812``, hold ``0.88``)."""
    return re.search(rf"(?<![\d.]){re.escape(number)}", page) is not None


@pytest.mark.parametrize("address", APP_PAGES)
def test_anonymous_visitors_are_sent_to_the_login_form_and_back(address: str) -> None:
    """Every page under app/ redirects a visitor to the landing page, remembering where."""
    response = client().get(address)
    assert response.status_code == 302
    assert response["Location"].startswith("/?next=" + address.replace("/", "%2F"))


def test_the_landing_form_logs_in_and_leads_to_the_users_own_jobs(data: dict[str, Any]) -> None:
    """Logging in through the landing form ends on the user's own jobs, not the JSON answer."""
    browser = client()
    page = browser.get("/")
    assert page.status_code == 200
    assert 'name="username"' in html(page)
    assert "<label" in html(page)
    response = browser.post("/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/app/"
    mine = html(browser.get("/app/"))
    links = {name: f'href="/app/jobs/{_job(data, name)}/"' for name in data["jobs"]}
    assert links["alice"] in mine
    assert links["running"] in mine
    assert links["bob"] not in mine
    assert links["failed"] not in mine


def test_a_wrong_password_shows_the_form_again_with_a_sentence() -> None:
    """A failed login stays on the landing page and says why."""
    response = client().post("/", {"username": "alice", "password": "wrong"})
    assert response.status_code == 200
    assert "enter a correct username and password" in html(response)


def test_login_follows_next_only_within_the_site() -> None:
    """``next`` leads back to the page that asked; another site's address is ignored."""
    form = {"username": "bob", "password": PASSWORD}
    inside = client().post("/", {**form, "next": "/app/datasets/"})
    outside = client().post("/", {**form, "next": "https://evil.example/"})
    assert inside["Location"] == "/app/datasets/"
    assert outside["Location"] == "/app/"


def test_the_protocols_login_still_answers_json() -> None:
    """``login/`` keeps its contract for API clients: ``{"success": true}``."""
    response = client().post("/login/", {"username": "alice", "password": PASSWORD})
    assert response.json() == {"success": True}


def _job(data: dict[str, Any], name: str) -> int:
    return int(data["jobs"][name].pk)


def test_a_student_sees_their_job_but_not_its_hidden_validation_score(data: dict[str, Any]) -> None:
    """The job page shows test and extra test scores and the picture; validation stays hidden."""
    page = html(client("alice").get(f"/app/jobs/{_job(data, 'alice')}/"))
    assert f"{TEST['alice']:.3f}" in page
    assert not shows_number(page, f"{HIDDEN['alice']:.3f}")
    assert "hidden until the round closes" in page
    assert "<img" in page
    assert 'alt="Picture 1 of job' in page


def test_no_student_page_shows_a_hidden_score(data: dict[str, Any]) -> None:
    """Jobs list, job page and leaderboard: no open round's validation score, anyone's."""
    browser = client("alice")
    addresses = ["/app/", f"/app/jobs/{_job(data, 'alice')}/", f"/app/rounds/{data['round'].pk}/"]
    for address in addresses:
        page = html(browser.get(address))
        for hidden in HIDDEN.values():
            written = {f"{hidden:.3f}", f"{hidden:.2f}", str(hidden)}
            assert not [text for text in written if shows_number(page, text)], address


@pytest.mark.parametrize("name", ["alice", "teacher"])
def test_pages_show_a_validation_score_exactly_when_the_api_does(
    data: dict[str, Any], name: str
) -> None:
    """For each job a user may open, job page and jobs list agree with ``jobs/<id>/result/``."""
    browser = client(name)
    listing = html(browser.get("/app/"))
    for key in ("alice", "outside"):
        job_id = _job(data, key)
        answer = browser.get(f"/jobs/{job_id}/result/").json()
        page = html(browser.get(f"/app/jobs/{job_id}/"))
        validation = f"{data['jobs'][key].score_validation:.3f}"
        shown = answer["score_validation"] is not None
        assert shows_number(page, validation) == shown, (name, key)
        assert shows_number(listing, validation) == shown, (name, key)


def test_teachers_see_validation_scores_and_the_worker(data: dict[str, Any]) -> None:
    """Staff see everything of a job: validation score, worker, attempts."""
    page = html(client("teacher").get(f"/app/jobs/{_job(data, 'bob')}/"))
    assert f"{HIDDEN['bob']:.3f}" in page
    assert "host-a:101" in page
    assert "Attempts" in page


def test_a_failed_jobs_page_gives_its_sentence(data: dict[str, Any]) -> None:
    """A failed job's page says it failed and shows the worker's sentence."""
    page = html(client("bob").get(f"/app/jobs/{_job(data, 'failed')}/"))
    assert "This job failed" in page
    assert "Unknown parameter &#x27;gamma2&#x27;" in page


def test_no_page_carries_a_script(data: dict[str, Any]) -> None:
    """Every page works without JavaScript: none has a script element or an inline handler."""
    teacher = client("teacher")
    addresses = [
        *APP_PAGES,
        f"/app/jobs/{_job(data, 'alice')}/",
        f"/app/rounds/{data['round'].pk}/",
    ]
    pages = [html(client().get("/")), *(html(teacher.get(address)) for address in addresses)]
    for page in pages:
        assert "<script" not in page.lower()
        assert " onclick=" not in page.lower()
        assert " onload=" not in page.lower()


def test_another_students_job_page_is_refused(data: dict[str, Any]) -> None:
    """Bob's job is a 403 page for alice; a missing job a 404 page; both HTML."""
    browser = client("alice")
    refused = browser.get(f"/app/jobs/{_job(data, 'bob')}/")
    missing = browser.get("/app/jobs/999999/")
    assert refused.status_code == 403
    assert "is not yours" in html(refused)
    assert f"{TEST['bob']:.3f}" not in html(refused)
    assert missing.status_code == 404
    assert missing["Content-Type"].startswith("text/html")


def test_the_fleet_page_is_for_teachers_only(data: dict[str, Any]) -> None:
    """Students get 403; teachers see workers, a lease about to end, a failure's message."""
    assert client("alice").get("/app/fleet/").status_code == 403
    page = html(client("teacher").get("/app/fleet/"))
    assert "host-a:101" in page
    assert "host-b:202" in page
    assert f"/app/jobs/{_job(data, 'running')}/" in page  # its lease ends in 90 s
    assert "Unknown parameter &#x27;gamma2&#x27;" in page


def test_teachers_filter_every_job_students_only_their_own(data: dict[str, Any]) -> None:
    """Staff filter by user and status; a student's ``user`` filter shows nobody else's jobs."""
    by_user = html(client("teacher").get("/app/", {"user": "bob", "status": "failed"}))
    assert f"/app/jobs/{_job(data, 'failed')}/" in by_user
    assert f"/app/jobs/{_job(data, 'bob')}/" not in by_user
    snooping = html(client("alice").get("/app/", {"user": "bob"}))
    assert f"/app/jobs/{_job(data, 'bob')}/" not in snooping
    unknown_round = html(client("teacher").get("/app/", {"round": "999999"}))
    assert "Select a valid choice" in unknown_round
    assert '<table class="jobs">' not in unknown_round


def _leaderboard(response: Any) -> str:
    page = html(response)
    return page[page.index('<table class="leaderboard">') :]


def test_an_open_rounds_leaderboard_ranks_by_test_score(data: dict[str, Any]) -> None:
    """Open: alice (test 0.901) above bob (0.701), whatever their hidden validation scores."""
    board = _leaderboard(client("bob").get(f"/app/rounds/{data['round'].pk}/"))
    assert board.index(">alice") < board.index(">bob")


def test_a_closed_rounds_leaderboard_ranks_by_validation_score(data: dict[str, Any]) -> None:
    """Closed: validation scores show and rank, so bob (0.877) goes above alice (0.432)."""
    from server.models import Round

    Round.objects.filter(pk=data["round"].pk).update(open=False)
    board = _leaderboard(client("alice").get(f"/app/rounds/{data['round'].pk}/"))
    assert board.index(">bob") < board.index(">alice")
    assert f"{HIDDEN['bob']:.3f}" in board


def test_the_submit_form_queues_a_job_through_the_protocol(data: dict[str, Any]) -> None:
    """A valid form creates the job and leads to its page; params are stored as JSON."""
    from server.models import Job

    form = {"algorithm": "knn", "params": '{"n_neighbors": 1}', "dataset": data["dataset"].pk}
    response = client("alice").post("/app/jobs/new/", {**form, "round": data["round"].pk})
    job = Job.objects.latest("id")
    assert response.status_code == 302
    assert response["Location"] == f"/app/jobs/{job.pk}/"
    assert (job.owner.username, job.params, job.round) == (
        "alice",
        {"n_neighbors": 1},
        data["round"],
    )


def test_a_rounds_submit_link_chooses_its_dataset_and_round(data: dict[str, Any]) -> None:
    """The round page's link opens the form with the round and its dataset selected."""
    round_id, dataset_id = data["round"].pk, data["dataset"].pk
    page = html(client("alice").get(f"/app/rounds/{round_id}/"))
    link = f"/app/jobs/new/?dataset={dataset_id}&amp;round={round_id}"
    assert link in page
    form = html(client("alice").get(link.replace("&amp;", "&")))
    assert f'<option value="{dataset_id}" selected>' in form
    assert f'<option value="{round_id}" selected>' in form


def test_the_submit_form_shows_the_protocols_refusal(data: dict[str, Any]) -> None:
    """Bad params JSON comes back as a 400 page naming the field; nothing is queued."""
    from server.models import Job

    before = Job.objects.count()
    form = {"algorithm": "knn", "params": "{not json", "dataset": data["dataset"].pk}
    response = client("alice").post("/app/jobs/new/", form)
    assert response.status_code == 400
    assert "The job was not submitted: invalid params" in html(response)
    assert Job.objects.count() == before


def test_join_buttons_join_through_the_protocol(data: dict[str, Any]) -> None:
    """The round's join button adds the teacher; a closed round refuses with a message."""
    from server.models import Round

    browser = client("teacher")
    round_id = data["round"].pk
    response = browser.post(f"/app/rounds/{round_id}/join/", follow=True)
    assert "You joined round" in html(response)
    assert data["round"].participants.filter(username="teacher").exists()
    closed = Round.objects.create(name="Old", dataset=data["dataset"], open=False)
    refused = browser.post(f"/app/rounds/{closed.pk}/join/", follow=True)
    assert "Could not join round" in html(refused)
    assert "is closed" in html(refused)


def test_the_datasets_page_lists_points_per_set(data: dict[str, Any]) -> None:
    """Each dataset with its task, features and the size of each set."""
    page = html(client("bob").get("/app/datasets/"))
    assert "toy" in page
    assert "classification" in page
    assert '<td class="num">4</td>' in page
    assert '<td class="num">2</td>' in page


def test_results_are_read_only_in_the_admin(data: dict[str, Any]) -> None:
    """The admin's job page shows scores and labels but has no input to change them."""
    from django.contrib.auth.models import User

    User.objects.filter(username="teacher").update(is_superuser=True)
    page = html(client("teacher").get(f"/admin/server/job/{_job(data, 'alice')}/change/"))
    assert f"{HIDDEN['alice']}" in page
    assert 'name="score_validation"' not in page
    assert 'name="labels_test"' not in page
