"""Slow clients (slowloris) and held long polls do not take the reference server away.

Fifty connections trickle a request a few bytes at a time, as a slowloris attack does,
while ordinary clients ask for pages: under the old thread-per-connection server 16 such
clients answered nobody; under uvicorn workers each is a coroutine waiting for bytes.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
import requests
from conftest import RunningServer

pytestmark = pytest.mark.slow

TRICKLERS = 50
ANSWER_DEADLINE = 10.0  # seconds an ordinary request may take; slowloris held them for ever


@pytest.fixture
def server(start_server: Callable[..., RunningServer]) -> RunningServer:
    """A plain reference server (no demo data needed)."""
    return start_server()


@pytest.fixture
def tricklers(server: RunningServer) -> Iterator[list[socket.socket]]:
    """Fifty connections, each sending a request's head one byte per 0.2 s, never ending it.

    Yields once every connection has sent its first five bytes.
    """
    stop = threading.Event()
    sent = threading.Semaphore(0)
    with ExitStack() as stack:
        sockets = [
            stack.enter_context(socket.create_connection(("127.0.0.1", server.port), timeout=5))
            for _ in range(TRICKLERS)
        ]
        head = f"POST /login/ HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nX-Slow: ".encode()

        def trickle() -> None:
            for byte in head + b"a" * 10_000:
                if stop.wait(0.2):
                    return
                for sock in sockets:
                    sock.sendall(bytes([byte]))
                sent.release()

        sender = threading.Thread(target=trickle, daemon=True)
        sender.start()
        for _ in range(5):
            assert sent.acquire(timeout=10), "the slow clients could not send"
        yield sockets
        stop.set()
        sender.join(5)


def test_fifty_trickling_clients_do_not_starve_others(
    server: RunningServer, tricklers: list[socket.socket]
) -> None:
    """With 50 slow clients connected and trickling, ten ordinary requests are all answered."""
    for _ in range(10):
        answer = requests.get(server.url + "login/", timeout=ANSWER_DEADLINE)
        assert answer.status_code == 200
    for sock in tricklers:  # they were served too, as the slow clients they are: still open
        sock.sendall(b"a")
