"""Sessions are read from a cache the server's processes share, and a logout ends them all.

Each request reads its session; Django's ``cached_db`` sessions keep them in files in the
data directory (and write through to the database), so any server process that served the
session before forgets it when another process serves the logout.
"""

from __future__ import annotations

import http.client

import pytest
from conftest import RunningServer

pytestmark = pytest.mark.slow  # a real server, with its two processes


def _status(server: RunningServer, session: str) -> int:
    """``GET datasets/`` with the session cookie, on a new connection (either process)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("GET", "/datasets/", headers={"Cookie": f"sessionid={session}"})
        answer = connection.getresponse()
        answer.read()
        return answer.status
    finally:
        connection.close()


def test_a_logout_ends_the_session_in_every_server_process(demo_server: RunningServer) -> None:
    """A copy of the cookie is refused after the logout, whichever process serves it."""
    api = demo_server.api("student", "student")
    session = api._transport.session.cookies.get("sessionid")
    assert session
    assert {_status(demo_server, session) for _ in range(12)} == {200}
    assert api.logout() == {"success": True}
    assert {_status(demo_server, session) for _ in range(12)} == {401}
