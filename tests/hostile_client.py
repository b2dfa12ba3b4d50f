"""Raw HTTP for the server's hostile-input tests: what a student's own script can send.

``worker.api`` shapes and retries its calls; an attacker's requests are not shaped, so these
helpers send them as given and return the raw answer for the test to inspect.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

import requests

from worker.api import API


def post(server_url: str, api: API, path: str, **fields: str) -> requests.Response:
    """POST form fields as ``api``'s logged-in session, with its CSRF token; no retries."""
    session = api._transport.session
    token = session.cookies.get("csrftoken", "")
    return session.post(server_url + path, data=fields, headers={"X-CSRFToken": token})


@dataclass(frozen=True)
class Answer:
    """One raw HTTP answer."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


def login_from(
    port: int,
    source: str,
    username: str,
    password: str,
    headers: dict[str, str] | None = None,
) -> Answer:
    """``POST login/`` from loopback address ``source`` (e.g. ``127.0.0.7``) on a new session.

    Linux routes all of 127.0.0.0/8 to loopback, so each test address is a distinct client
    to the server's per-address throttling.
    """
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=30, source_address=(source, 0)
    )
    try:
        connection.request("GET", "/login/", headers=headers or {})
        page = connection.getresponse()
        page.read()
        cookie = page.getheader("Set-Cookie", "")
        token = cookie.partition("csrftoken=")[2].partition(";")[0]
        body = urllib.parse.urlencode({"username": username, "password": password})
        sent = {
            **(headers or {}),
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={token}",
            "X-CSRFToken": token,
        }
        connection.request("POST", "/login/", body=body, headers=sent)
        response = connection.getresponse()
        return Answer(response.status, dict(response.getheaders()), response.read())
    finally:
        connection.close()
