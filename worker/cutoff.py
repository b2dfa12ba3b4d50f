"""HTTP calls the worker can cut short: a deadline for the whole call, and interruption.

``requests`` bounds each read from a socket, not a request: a server that
answers one byte every few seconds holds a call for as long as it likes, and
a thread blocked in ``recv`` does not see a stop signal. So each exchange
runs in a short-lived thread of its own (:func:`call_within`), while the
calling thread waits for it in slices of `SLICE` seconds (`HELD_SLICE` once
the call has run for a second: a long poll held for half a minute would
otherwise wake the worker ten times a second, its only CPU when idle) and
checks two things: the call's deadline, and ``interrupted()`` (for the daemon's main
thread, "a stop signal arrived"). On either it cuts the call: it shuts down
the sockets of the session's connections (:class:`Sockets`), which makes the
blocked ``recv`` return at once, and raises. The sockets are known because
the session's transport adapter (:class:`CuttableAdapter`) makes connections
that record their socket when they connect.

Any wait can be cut the same way: :func:`sleep_within` is the retry sleep,
which checks ``interrupted()`` every slice too.
"""

from __future__ import annotations

import socket
import threading
import time
import weakref
from collections.abc import Callable
from contextlib import suppress
from typing import Any, TypeVar

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

__all__ = ["SLICE", "Cut", "CuttableAdapter", "Sockets", "call_within", "sleep_within"]

SLICE = 0.1  # seconds between checks of the deadline and of interrupted()
HELD_SLICE = 0.5  # the same, once a call has run for `HELD_AFTER` seconds (a held long poll)
HELD_AFTER = 1.0
CUT_GRACE = 2.0  # seconds a cut call's thread gets to notice its socket is gone
T = TypeVar("T")


class Cut(Exception):
    """The call was cut: ``interrupted`` says whether by interruption (else, the deadline)."""

    def __init__(self, *, interrupted: bool) -> None:
        super().__init__("interrupted" if interrupted else "deadline passed")
        self.interrupted = interrupted


class Sockets:
    """The sockets of one session's connections, so that a waiting thread can cut them."""

    def __init__(self) -> None:
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._lock = threading.Lock()

    def add(self, sock: socket.socket) -> None:
        """Record a newly connected socket."""
        with self._lock:
            self._sockets.add(sock)

    def cut(self) -> None:
        """Shut every recorded socket down: reads blocked on them return at once."""
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class CuttableAdapter(HTTPAdapter):
    """A ``requests`` adapter whose connections record their sockets in ``sockets``."""

    def __init__(self, sockets: Sockets) -> None:
        self.sockets = sockets
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """Make the pool manager build pools of recording connections."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pools(self.sockets)


def _pools(sockets: Sockets) -> dict[str, type[HTTPConnectionPool]]:
    class Recording(HTTPConnection):
        def connect(self) -> None:
            super().connect()
            sockets.add(self.sock)

    class RecordingTLS(HTTPSConnection):
        def connect(self) -> None:
            super().connect()
            sockets.add(self.sock)

    class Pool(HTTPConnectionPool):
        ConnectionCls = Recording

    class PoolTLS(HTTPSConnectionPool):
        ConnectionCls = RecordingTLS

    return {"http": Pool, "https": PoolTLS}


def call_within(
    call: Callable[[], T],
    *,
    seconds: float,
    interrupted: Callable[[], bool],
    cut: Callable[[], None],
) -> T:
    """``call()`` in a thread of its own; raise Cut once ``seconds`` pass or ``interrupted()``.

    Before raising, ``cut()`` is called (it should make ``call`` return soon)
    and the thread gets `CUT_GRACE` seconds to end; a thread that does not is
    left behind (it is a daemon). What ``call`` raises is raised here.
    """
    outcome: list[Any] = []
    done = threading.Event()

    def run() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as exc:  # re-raised in the calling thread
            outcome.append((False, exc))
        finally:
            done.set()

    thread = threading.Thread(target=run, name="mlworker-http", daemon=True)
    start = time.monotonic()
    end = start + seconds
    thread.start()
    while not done.wait(max(0.0, min(_slice(start), end - time.monotonic()))):
        stop = interrupted()
        if stop or time.monotonic() >= end:
            cut()
            done.wait(CUT_GRACE)
            raise Cut(interrupted=stop)
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def _slice(start: float) -> float:
    """How long to wait before the next check of a call that began at ``start``."""
    return SLICE if time.monotonic() - start < HELD_AFTER else HELD_SLICE


def sleep_within(seconds: float, interrupted: Callable[[], bool]) -> None:
    """Sleep ``seconds``; raise Cut(interrupted=True) as soon as ``interrupted()``."""
    end = time.monotonic() + seconds
    while True:
        if interrupted():
            raise Cut(interrupted=True)
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(SLICE, left))
