"""The two-stage stop a worker process obeys, driven by signals.

The first SIGTERM or SIGINT means "stop claiming, finish the running job,
deliver or spool its result, exit 0"; the second means "abort the running
job now". As gunicorn's arbiter does, the signal handler only records the
signal: it puts the number on a `queue.SimpleQueue`, whose `put` is safe to
call from a handler, and the main loop acts on it. The same queue doubles as
the loop's sleep, so an idle worker wakes the moment a signal arrives.
"""

from __future__ import annotations

import queue
import signal
import time
from collections.abc import Callable
from types import FrameType

import structlog

_log = structlog.get_logger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
HEARTBEAT = 5.0  # seconds between heartbeats during a long wait


class Shutdown:
    """Counts stop signals; read only from the thread that installed it."""

    def __init__(self) -> None:
        self._signals: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._received = 0

    def install(self) -> None:
        """Route SIGTERM and SIGINT to this object (main thread only)."""
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._record)

    def _record(self, signum: int, _frame: FrameType | None) -> None:
        self._signals.put_nowait(signum)

    def request(self) -> None:
        """Ask for the next stage, as a signal would (for callers in-process)."""
        self._signals.put_nowait(signal.SIGTERM)

    def _drain(self) -> int:
        while True:
            try:
                signum = self._signals.get_nowait()
            except queue.Empty:
                return self._received
            self._count(signum)

    def _count(self, signum: int) -> None:
        """Take one stop signal into account, and say in the log what it means now.

        The log line also tells whoever sent it that the signal has been seen:
        two signals sent at once may reach the process as one.
        """
        self._received += 1
        action = (
            "finish the running job (if any), then stop"
            if self._received == 1
            else "abort and stop"
        )
        _log.warning("stop signal received", signal=signal.Signals(signum).name, action=action)

    @property
    def stopping(self) -> bool:
        """True after the first stop signal: claim nothing more."""
        return self._drain() >= 1

    @property
    def aborting(self) -> bool:
        """True after the second stop signal: abort the running job."""
        return self._drain() >= 2

    def sleep(self, seconds: float, heartbeat: Callable[[], None] | None = None) -> None:
        """Wait up to `seconds`, returning early when a stop signal arrives.

        `heartbeat` is called every `HEARTBEAT` seconds of the wait, so a
        long idle wait still tells systemd's watchdog the loop is alive.
        """
        deadline = time.monotonic() + seconds
        while not self.stopping and (left := deadline - time.monotonic()) > 0:
            try:
                signum = self._signals.get(timeout=min(left, HEARTBEAT))
            except queue.Empty:
                pass
            else:
                self._count(signum)
            if heartbeat is not None:
                heartbeat()
