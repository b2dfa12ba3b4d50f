"""The reference server's session, groups, rounds, datasets and points, through worker.api."""

from __future__ import annotations

import pytest
from conftest import RunningServer
from server_helpers import dataset_id

from worker.api import API
from worker.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)

pytestmark = pytest.mark.slow  # a real server process per module


def test_login_answers_success_and_a_session(demo_server: RunningServer) -> None:
    """A good login answers {"success": true} and the session cookie works for calls."""
    api = demo_server.api("student", "student")
    assert api.login("student", "student") is True
    assert "demo" in api.get_groups()


def test_failed_login_is_an_html_page(demo_server: RunningServer, student: API) -> None:
    """A wrong password answers the HTML login page, and API() refuses to start."""
    page = student.login("student", "wrong")
    assert isinstance(page, str)
    assert "<form" in page
    assert "enter a correct username and password" in page
    with pytest.raises(AuthenticationError):
        demo_server.api("student", "wrong")


def test_logout_ends_the_session_with_401(demo_server: RunningServer) -> None:
    """After logout a call needing a session is answered 401 (not a redirect)."""
    api = demo_server.api("student", "student")
    assert api.logout() == {"success": True}
    with pytest.raises(AuthenticationError) as raised:
        api.get_datasets()
    assert raised.value.status == 401


def test_post_without_csrf_token_is_refused(demo_server: RunningServer, admin: API) -> None:
    """A logged-in POST without X-CSRFToken is 403 JSON, and creates nothing."""
    session = admin._transport.session
    answer = session.post(demo_server.url + "groups/add/", data={"name": "no-csrf"})
    assert answer.status_code == 403
    assert "CSRF" in answer.json()["error"]
    assert "no-csrf" not in admin.get_groups()


def test_post_with_a_wrong_csrf_token_is_refused(demo_server: RunningServer) -> None:
    """A malformed CSRF token in cookie and header is refused with 403."""
    api = demo_server.api("backend", "foobar")
    cookies = api._transport.session.cookies
    cookies.set("csrftoken", "not-a-token", domain=cookies.list_domains()[0], path="/")
    with pytest.raises(PermissionDeniedError) as raised:
        api.add_group("wrong-csrf")
    assert raised.value.status == 403
    assert "wrong-csrf" not in demo_server.api("backend", "foobar").get_groups()


def test_groups_list_public_and_own_groups(admin: API, student: API) -> None:
    """Students see public groups and their own; admins see private groups too."""
    assert admin.add_group("hidden-club", public=False) == {"success": True, "name": "hidden-club"}
    assert student.get_groups()["demo"] == {"public": True, "members": 1, "member": True}
    assert "hidden-club" not in student.get_groups()
    assert admin.get_groups()["hidden-club"] == {"public": False, "members": 0, "member": False}


def test_add_group_twice_is_a_conflict(admin: API) -> None:
    """A taken group name answers 409."""
    admin.add_group("twice")
    with pytest.raises(ConflictError):
        admin.add_group("twice", public=False)
    assert admin.get_groups()["twice"]["public"] is True


def test_join_group_public_private_unknown(admin: API, student: API) -> None:
    """Joining: a public group works (twice too), a private one is 403, unknown 404."""
    admin.add_group("open-club")
    admin.add_group("closed-club", public=False)
    assert student.join_group("open-club") == {"success": True}
    assert student.join_group("open-club") == {"success": True}
    assert student.get_groups()["open-club"] == {"public": True, "members": 1, "member": True}
    with pytest.raises(PermissionDeniedError):
        student.join_group("closed-club")
    with pytest.raises(NotFoundError):
        student.join_group("no-such-club")
    assert admin.get_groups()["closed-club"]["members"] == 0


def test_students_see_private_groups_they_belong_to(
    demo_server: RunningServer, admin: API, student: API
) -> None:
    """A private group shows to its members, counting every member, not just the caller."""
    admin.add_group("teachers-pick", public=False)
    admin.join_group("teachers-pick")
    assert "teachers-pick" not in student.get_groups()
    demo_server.shell(
        "from server.models import Group; from django.contrib.auth.models import User; "
        "Group.objects.get(name='teachers-pick').members.add(User.objects.get(username='student'))"
    )
    shown = student.get_groups()["teachers-pick"]
    assert shown == {"public": False, "members": 2, "member": True}


def test_admin_only_endpoints_refuse_students(student: API) -> None:
    """Every admin endpoint answers a student 403 "admin rights required"."""
    calls = [
        lambda: student.add_group("students-club"),
        student.request_job,
        lambda: student.get_job_details(1),
        lambda: student.update_job_details(1, None, None, None, None, None, success=False),
        lambda: student.load("jobs/1/pictures/", note="x"),
    ]
    for call in calls:
        with pytest.raises(PermissionDeniedError) as raised:
            call()
        assert raised.value.message.endswith("admin rights required")
    assert "students-club" not in student.get_groups()


def test_rounds_list_and_join(demo_server: RunningServer, admin: API, student: API) -> None:
    """Rounds list their dataset and state; joining works while open and is 409 once closed."""
    moons = dataset_id(admin, "moons")
    closed = demo_server.new_round(moons, "closed one", open=False)
    rounds = admin.get_rounds()
    assert rounds[closed] == {
        "name": "closed one",
        "dataset": moons,
        "open": False,
        "joined": False,
    }
    open_round = next(key for key, info in rounds.items() if info["name"] == "Moons challenge")
    assert admin.join_round(open_round) == {"success": True}
    assert admin.get_rounds()[open_round]["joined"] is True
    with pytest.raises(ConflictError):
        student.join_round(closed)
    with pytest.raises(NotFoundError):
        student.join_round(999_999)
    assert student.get_rounds()[closed]["joined"] is False


def test_datasets_describe_every_demo_dataset(student: API) -> None:
    """Dataset info has name, task, features, target, version and the set sizes."""
    datasets = {info["name"]: info for info in student.get_datasets().values()}
    assert {"iris", "moons", "diabetes", "blobs"} <= set(datasets)
    moons = datasets["moons"]
    assert moons["task"] == "classification"
    assert moons["features"] == ["x", "y"]
    assert moons["target"] == "label"
    assert moons["points"] == {"training": 300, "test": 100, "validation": 100}
    assert len(moons["version"]) == 16
    assert {info["task"] for info in datasets.values()} == {
        "classification",
        "regression",
        "clustering",
    }


def test_points_are_sorted_and_hide_labels_from_students(admin: API, student: API) -> None:
    """Students get null test/validation labels; admins get every label; points by id."""
    iris = dataset_id(admin, "iris")
    as_admin, as_student = admin.get_points(iris), student.get_points(iris)
    ids = [point["id"] for point in as_admin]
    assert ids == sorted(ids)
    assert [point["id"] for point in as_student] == ids
    for full, shown in zip(as_admin, as_student, strict=True):
        assert set(full) == {"id", "set", "label", *admin.get_datasets()[iris]["features"]}
        assert full["label"] in {"setosa", "versicolor", "virginica"}
        hidden = full["set"] in {"test", "validation"}
        assert shown == ({**full, "label": None} if hidden else full)
    assert {point["set"] for point in as_student} == {"training", "test", "validation"}


def test_unknown_dataset_points_are_404(student: API) -> None:
    """Points of an unknown dataset answer 404."""
    with pytest.raises(NotFoundError):
        student.get_points(999_999)


def test_group_add_refuses_bad_fields(admin: API) -> None:
    """A missing or too long group name and a non-boolean public are 400 naming the field."""
    before = admin.get_groups()
    cases = [({"public": "true"}, "name"), ({"name": "x" * 65}, "name")]
    cases.append(({"name": "fine", "public": "maybe"}, "public"))
    for fields, field in cases:
        with pytest.raises(InvalidInputError) as raised:
            admin.load("groups/add/", **fields)
        assert raised.value.status == 400
        assert field in raised.value.fields
    assert admin.get_groups() == before
