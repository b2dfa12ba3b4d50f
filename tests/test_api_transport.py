"""The client through its transport seam: a MockAdapter in place of the network, in-process.

Everything above the adapter runs for real (cookies, CSRF, re-login, error
translation); test_api_client proves the same against real servers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from worker.api import API
from worker.errors import AuthenticationError, NotFoundError, TransientError
from worker.http import Transport
from worker.testing import Answer, MockAdapter, json_answer

HOST = "http://jobs.test/ml/"


@dataclass
class LoginApp:
    """A job server's login and one endpoint, enough for the client's session rules."""

    password: str = "right"
    sessions: int = 0
    expire_next: bool = False
    calls: list[str] = field(default_factory=list)

    def __call__(self, request: requests.PreparedRequest) -> Answer:
        """Answer like the reference server: CSRF cookie, session cookie, 401 when expired."""
        path = urlsplit(request.url or "").path.removeprefix("/ml/")
        self.calls.append(f"{request.method} {path}")
        if path == "login/" and request.method == "GET":
            return Answer(200, b"<form>", {"Content-Type": "text/html"}, {"csrftoken": "t0k"})
        if request.headers.get("X-CSRFToken") not in (None, "t0k"):
            return json_answer({"error": "CSRF token wrong"}, 403)
        if path == "login/":
            form = parse_qs(str(request.body))
            if form.get("password") != [self.password]:
                return Answer(200, b"<p>wrong</p>", {"Content-Type": "text/html"})
            self.sessions += 1
            return json_answer({"success": True}, sessionid=f"s{self.sessions}")
        if self.expire_next or f"sessionid=s{self.sessions}" not in request.headers.get(
            "Cookie", ""
        ):
            self.expire_next = False
            return json_answer({"error": "login required"}, 401)
        if path == "datasets/":
            return json_answer({"1": {"name": "iris"}})
        if path == "busy/":
            return Answer(503, b"", {"Retry-After": "7"})
        return json_answer({"error": "no such job"}, 404)


def test_the_default_logs_in_at_construction() -> None:
    """API(...) logs in at once, as the seed's client does: CSRF cookie, then the POST."""
    app = LoginApp()
    API("backend", "right", HOST, adapter=MockAdapter(app), retry_for=0)
    assert app.calls == ["GET login/", "POST login/"]


def test_a_lazy_client_sends_nothing_until_its_first_call() -> None:
    """login_now=False: no request at construction; the first call logs in, then runs."""
    app = LoginApp()
    api = API("backend", "right", HOST, adapter=MockAdapter(app), retry_for=0, login_now=False)
    assert app.calls == []
    assert api.get_datasets() == {1: {"name": "iris"}}
    assert app.calls == ["GET login/", "POST login/", "GET datasets/"]


def test_a_lazy_client_with_a_wrong_password_fails_at_its_first_call() -> None:
    """The refusal comes with the first call, as the AuthenticationError it would have been."""
    api = API("backend", "wrong", HOST, adapter=MockAdapter(LoginApp()), login_now=False)
    with pytest.raises(AuthenticationError, match="could not log in"):
        api.get_datasets()


def test_an_expired_session_is_renewed_once_and_the_call_repeated() -> None:
    """A 401 after login: the client logs in again (a new session) and the call succeeds."""
    app = LoginApp()
    api = API("backend", "right", HOST, adapter=MockAdapter(app), retry_for=0)
    app.expire_next = True
    assert api.get_datasets() == {1: {"name": "iris"}}
    assert app.sessions == 2
    assert app.calls[-4:] == ["GET datasets/", "GET login/", "POST login/", "GET datasets/"]


def test_a_client_sharing_a_session_sends_its_cookie_and_logs_in_only_once_it_expired() -> None:
    """session_of: no login at construction; calls carry that session; a 401 logs in anew."""
    app = LoginApp()
    first = API("backend", "right", HOST, adapter=MockAdapter(app), retry_for=0)
    shared = API("backend", "right", HOST, adapter=MockAdapter(app), retry_for=0, session_of=first)
    assert app.calls == ["GET login/", "POST login/"]
    assert shared.get_datasets() == {1: {"name": "iris"}}
    assert (app.sessions, app.calls[-1]) == (1, "GET datasets/")
    app.expire_next = True
    assert shared.get_datasets() == {1: {"name": "iris"}}
    assert app.sessions == 2
    assert app.calls[-3:] == ["GET login/", "POST login/", "GET datasets/"]


def test_answers_become_the_typed_errors_with_the_servers_sentence() -> None:
    """404 is NotFoundError with the server's words; 503 is TransientError with Retry-After."""
    api = API("backend", "right", HOST, adapter=MockAdapter(LoginApp()), retry_for=0)
    with pytest.raises(NotFoundError, match="no such job"):
        api.get_job_details(17)
    with pytest.raises(TransientError) as busy:
        api.load("busy/")
    assert busy.value.retry_after == 7


def test_the_worker_id_travels_as_x_worker() -> None:
    """request_job sends the worker's name in X-Worker."""
    adapter = MockAdapter(LoginApp())
    api = API("backend", "right", HOST, adapter=adapter, retry_for=0, worker_id="host-a:1")
    with pytest.raises(NotFoundError):
        api.request_job()
    assert adapter.requests[-1].headers["X-Worker"] == "host-a:1"


def test_proxy_and_ca_settings_are_read_from_the_environment_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The proxy for the host and the CA bundle come from the environment as requests reads
    them; a host in NO_PROXY goes direct; later changes to the environment are not read."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/course-ca.pem")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    proxied = Transport("https://jobs.example/", timeout=1, retry_for=0).session
    assert proxied.proxies["https"] == "http://proxy.example:3128"
    assert proxied.verify == "/etc/ssl/course-ca.pem"
    monkeypatch.setenv("NO_PROXY", "jobs.example")
    direct = Transport("https://jobs.example/", timeout=1, retry_for=0).session
    assert "https" not in direct.proxies
    monkeypatch.setenv("HTTPS_PROXY", "http://elsewhere.example:3128")
    settings = direct.merge_environment_settings("https://jobs.example/", {}, None, None, None)
    assert "https" not in settings["proxies"]
