"""Tell systemd how the worker is doing: the sd_notify protocol in a few lines.

The protocol is one datagram of ``KEY=value`` lines sent to the AF_UNIX socket named by
``$NOTIFY_SOCKET`` (a filesystem path, or ``@name`` for the abstract namespace). systemd sets
the variable for ``Type=notify`` units; outside systemd it is unset and every method here is a
silent no-op, so callers never test for it. A failed send never raises: a status line is not
worth stopping the worker for, so the first failure is logged and later ones are dropped.

``WATCHDOG_USEC`` (and ``WATCHDOG_PID``, when systemd names the process it expects pings
from) enable the watchdog; ``watchdog()`` may be called from every turn of the main loop and
sends at most once per half period, as systemd's documentation recommends.

Job processes must not inherit these variables (a job could otherwise speak for the unit):
``worker.jobenv.job_environment`` leaves ``NOTIFY_ENV_VARS`` out of theirs.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

import structlog

from worker.jobenv import NOTIFY_ENV_VARS

__all__ = ["NOTIFY_ENV_VARS", "Notifier"]

_SEND_TIMEOUT = 2.0  # seconds; systemd reads promptly, but a stuck socket must not hang us

_log = structlog.get_logger(__name__)


def _socket_address(value: str) -> str | None:
    """Turn ``$NOTIFY_SOCKET`` into an address for ``sendto``, or None if unsupported."""
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]  # Linux abstract namespace
    return None


def _watchdog_period(environ: Mapping[str, str], pid: int) -> float | None:
    """The watchdog period in seconds if it applies to process ``pid``, else None.

    Mirrors sd_watchdog_enabled(): ``WATCHDOG_USEC`` must be a positive integer and
    ``WATCHDOG_PID``, when set, must name this process (a forked child is not pinged for).
    """
    usec = environ.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    watchdog_pid = environ.get("WATCHDOG_PID")
    if watchdog_pid is not None and (not watchdog_pid.isdigit() or int(watchdog_pid) != pid):
        return None
    return int(usec) / 1_000_000


class Notifier:
    """Sends sd_notify messages to systemd; every method is a no-op outside systemd."""

    def __init__(
        self,
        address: str | None,
        watchdog_period: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Send to ``address`` (an AF_UNIX address, abstract ones starting with NUL).

        ``address`` None disables everything; ``watchdog_period`` (seconds) None disables
        ``watchdog()``. ``clock`` is the monotonic clock the watchdog rate limit reads.
        """
        self._address = address
        self._watchdog_period = watchdog_period if address is not None else None
        self._clock = clock
        self._last_ping: float | None = None
        self._socket: socket.socket | None = None
        self._failed = False

    @classmethod
    def from_environ(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        pid: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> Notifier:
        """Build a notifier from systemd's variables (default: ``os.environ``, ``os.getpid()``).

        An unsupported ``NOTIFY_SOCKET`` (neither a path nor ``@name``) is logged and ignored.
        """
        env = os.environ if environ is None else environ
        value = env.get("NOTIFY_SOCKET", "")
        address = _socket_address(value) if value else None
        if value and address is None:
            _log.warning(
                "sd_notify disabled: NOTIFY_SOCKET is neither a path nor @name",
                notify_socket=value,
            )
            return cls(None, clock=clock)
        period = _watchdog_period(env, os.getpid() if pid is None else pid)
        return cls(address, period, clock=clock)

    @property
    def enabled(self) -> bool:
        """Whether messages go anywhere (the process runs under a notify-type unit)."""
        return self._address is not None

    @property
    def watchdog_period(self) -> float | None:
        """The watchdog period in seconds, or None when systemd expects no pings."""
        return self._watchdog_period

    def notify(self, **fields: str | int) -> None:
        """Send one message with ``fields`` as ``KEY=value`` lines, in order.

        Keys are systemd's (READY, STATUS, MAINPID, EXTEND_TIMEOUT_USEC, ...). A newline in a
        value would start a new field, so it becomes a space.
        """
        if self._address is None or not fields:
            return
        lines = (f"{key}={str(value).replace(chr(10), ' ')}" for key, value in fields.items())
        self._send(self._address, "\n".join(lines).encode("utf-8", "replace"))

    def ready(self, status: str | None = None) -> None:
        """Tell systemd start-up is complete (READY=1), with an optional status line."""
        self.notify(READY=1, **({"STATUS": status} if status is not None else {}))

    def status(self, text: str) -> None:
        """Set the one-line status ``systemctl status`` shows."""
        self.notify(STATUS=text)

    def stopping(self, status: str | None = None) -> None:
        """Tell systemd the worker is shutting down (STOPPING=1)."""
        self.notify(STOPPING=1, **({"STATUS": status} if status is not None else {}))

    def watchdog(self) -> None:
        """Ping the watchdog (WATCHDOG=1), at most once per half period; no-op without one."""
        if self._watchdog_period is None:
            return
        now = self._clock()
        if self._last_ping is not None and now - self._last_ping < self._watchdog_period / 2:
            return
        self._last_ping = now
        self.notify(WATCHDOG=1)

    def close(self) -> None:
        """Close the socket (a later message opens it again)."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _send(self, address: str, message: bytes) -> None:
        """Send one datagram; log the first failure, never raise."""
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.settimeout(_SEND_TIMEOUT)
            self._socket.sendto(message, address)
        except OSError as error:
            if not self._failed:
                self._failed = True
                _log.warning("sd_notify message not delivered", error=str(error))
