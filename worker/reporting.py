"""Where a worker process tells the world what it is doing: typed events, one method.

The loop, the delivery thread and the start-up speak to one `Reporter`
through `report(event)`, with one of the frozen event types below; which
reporter listens depends on how the process runs. A lone `mlworker run`
talks to systemd itself (`NotifyReporter`, beside `Metrics`); a worker forked
by the supervisor passes the same events to its parent (`worker.relay`),
which speaks for all of them (systemd accepts notifications from the main
process only). A reporter acts on the events it cares about and ignores the
others, so a new event needs no change in the reporters that do not use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from worker.sdnotify import Notifier


@dataclass(frozen=True)
class Ready:
    """Logged in and about to claim jobs."""


@dataclass(frozen=True)
class Status:
    """What the process does now, in a few words ("idle", "job 17 knn on moons")."""

    text: str


@dataclass(frozen=True)
class Heartbeat:
    """The loop is alive; sent at least every few seconds, also during a job."""


@dataclass(frozen=True)
class JobFinished:
    """A job ended with `outcome` ("success", "timeout", ...) after `seconds`."""

    algorithm: str
    outcome: str
    seconds: float


@dataclass(frozen=True)
class ServerError:
    """A call to the server failed (after its retries)."""


@dataclass(frozen=True)
class Stopping:
    """The process is shutting down."""


Event = Ready | Status | Heartbeat | JobFinished | ServerError | Stopping
EVENT_TYPES: tuple[type[Event], ...] = (
    Ready,
    Status,
    Heartbeat,
    JobFinished,
    ServerError,
    Stopping,
)


class Reporter(Protocol):
    """Whoever listens to a worker process's events."""

    def report(self, event: Event) -> None:
        """Take one event into account; never raise for it."""


class NullReporter:
    """Reports nowhere (tests, `--burst` runs outside systemd)."""

    def report(self, event: Event) -> None:
        """Nothing to tell."""


class NotifyReporter:
    """Reports to systemd through `NOTIFY_SOCKET` (a no-op outside systemd)."""

    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier
        self._last_status = ""

    def report(self, event: Event) -> None:
        """READY=1, STATUS= (only when it changed), WATCHDOG=1 (rate-limited), STOPPING=1."""
        match event:
            case Ready():
                self._notifier.ready()
            case Status(text) if text != self._last_status:
                self._last_status = text
                self._notifier.status(text)
            case Heartbeat():
                self._notifier.watchdog()
            case Stopping():
                self._notifier.stopping()


class Tee:
    """Tells every one of several reporters (systemd and metrics, say)."""

    def __init__(self, *reporters: Reporter) -> None:
        self._reporters = reporters

    def report(self, event: Event) -> None:
        """To each, in order."""
        for reporter in self._reporters:
            reporter.report(event)
