"""The login backend (``server.backends``): Django's checks, each request's user by prepared SQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from pages_django import django_in_process, rolled_back

PASSWORD = "backends-Pw-1"
OURS = "server.backends.ModelBackend"
DJANGOS = "django.contrib.auth.backends.ModelBackend"


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """An active staff account and an inactive one."""
    with django_in_process(tmp_path_factory.mktemp("backends-django")):
        from django.contrib.auth.models import User

        staff = User.objects.create_user(
            "staff", "staff@example.org", PASSWORD, is_staff=True, first_name="Ada"
        )
        gone = User.objects.create_user("gone", password=PASSWORD, is_active=False)
        yield {"staff": staff, "gone": gone}


@pytest.fixture(autouse=True)
def _each_test_rolled_back(users: dict[str, Any]) -> Iterator[None]:
    with rolled_back():
        yield


def _login_request() -> Any:
    from django.test import RequestFactory

    return RequestFactory().post("/login/", REMOTE_ADDR="127.0.0.1")


def test_the_user_of_a_session_is_the_one_djangos_backend_reads(users: dict[str, Any]) -> None:
    """Every field alike; an inactive or unknown account is nobody, as with Django's."""
    from django.contrib.auth.backends import ModelBackend as Djangos
    from django.contrib.auth.models import User

    from server.backends import ModelBackend

    staff = users["staff"]
    ours, theirs = ModelBackend().get_user(staff.pk), Djangos().get_user(staff.pk)
    assert isinstance(ours, User)
    assert isinstance(theirs, User)
    for field in User._meta.concrete_fields:
        assert getattr(ours, field.attname) == getattr(theirs, field.attname), field.name
    assert ours.get_session_auth_hash() == theirs.get_session_auth_hash()
    assert ModelBackend().get_user(users["gone"].pk) is None
    assert ModelBackend().get_user(10**9) is None


def test_a_login_is_checked_once_and_sessions_name_this_backend(users: dict[str, Any]) -> None:
    """A wrong password is hashed once (not again by Django's backend) and reported failed."""
    from django.contrib.auth import authenticate
    from django.contrib.auth.models import User
    from django.contrib.auth.signals import user_login_failed

    failed: list[Any] = []

    def receiver(**report: Any) -> None:
        failed.append(report)

    user_login_failed.connect(receiver)
    try:
        check = User.check_password
        with mock.patch.object(User, "check_password", autospec=True, side_effect=check) as spy:
            assert authenticate(_login_request(), username="staff", password="wrong") is None
            assert spy.call_count == 1
            user = authenticate(_login_request(), username="staff", password=PASSWORD)
    finally:
        user_login_failed.disconnect(receiver)
    assert len(failed) == 1
    assert user is not None
    assert user.pk == users["staff"].pk
    assert user.backend == OURS  # type: ignore[attr-defined]


@pytest.mark.parametrize("backend", [OURS, DJANGOS])
def test_a_session_of_either_backend_is_logged_in(users: dict[str, Any], backend: str) -> None:
    """Sessions made before this backend was listed (naming Django's) still log their user in."""
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1")
    assert client.get("/datasets/").status_code == 401
    client.force_login(users["staff"], backend=backend)
    assert client.get("/datasets/").status_code == 200
