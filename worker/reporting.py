"""Where a worker process tells the world what it is doing.

The loop speaks to one `Reporter`; which one depends on how it runs. A lone
`mlworker run` talks to systemd itself (`NotifyReporter`); a worker forked by
the supervisor passes the same calls to its parent, which speaks for all of
them (systemd accepts notifications from the main process only).
"""

from __future__ import annotations

from typing import Protocol

from worker.sdnotify import Notifier


class Reporter(Protocol):
    """What the loop reports: readiness, a status line, liveness, finished jobs."""

    def ready(self) -> None:
        """Logged in and about to claim jobs."""

    def status(self, text: str) -> None:
        """What the process does now, in a few words ("idle", "job 17 knn on moons")."""

    def heartbeat(self) -> None:
        """The loop is alive; called at least every few seconds, also during a job."""

    def job_finished(self, algorithm: str, outcome: str, seconds: float) -> None:
        """A job ended with `outcome` ("success", "timeout", ...) after `seconds`."""

    def server_error(self) -> None:
        """A call to the server failed (after its retries)."""

    def stopping(self) -> None:
        """The process is shutting down."""


class NullReporter:
    """Reports nowhere (tests, `--burst` runs outside systemd)."""

    def ready(self) -> None:
        """Nothing to tell."""

    def status(self, text: str) -> None:
        """Nothing to tell."""

    def heartbeat(self) -> None:
        """Nothing to tell."""

    def job_finished(self, algorithm: str, outcome: str, seconds: float) -> None:
        """Nothing to tell."""

    def server_error(self) -> None:
        """Nothing to tell."""

    def stopping(self) -> None:
        """Nothing to tell."""


class NotifyReporter(NullReporter):
    """Reports to systemd through `NOTIFY_SOCKET` (a no-op outside systemd)."""

    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier
        self._last_status = ""

    def ready(self) -> None:
        """READY=1, once logged in."""
        self._notifier.ready()

    def status(self, text: str) -> None:
        """STATUS=, only when it changed."""
        if text != self._last_status:
            self._last_status = text
            self._notifier.status(text)

    def heartbeat(self) -> None:
        """WATCHDOG=1 (rate-limited by the notifier to half the watchdog period)."""
        self._notifier.watchdog()

    def stopping(self) -> None:
        """STOPPING=1."""
        self._notifier.stopping()


class Tee(NullReporter):
    """Tells every one of several reporters (systemd and metrics, say)."""

    def __init__(self, *reporters: Reporter) -> None:
        self._reporters = reporters

    def ready(self) -> None:
        """To each."""
        for reporter in self._reporters:
            reporter.ready()

    def status(self, text: str) -> None:
        """To each."""
        for reporter in self._reporters:
            reporter.status(text)

    def heartbeat(self) -> None:
        """To each."""
        for reporter in self._reporters:
            reporter.heartbeat()

    def job_finished(self, algorithm: str, outcome: str, seconds: float) -> None:
        """To each."""
        for reporter in self._reporters:
            reporter.job_finished(algorithm, outcome, seconds)

    def server_error(self) -> None:
        """To each."""
        for reporter in self._reporters:
            reporter.server_error()

    def stopping(self) -> None:
        """To each."""
        for reporter in self._reporters:
            reporter.stopping()


def dispatch(reporter: Reporter, kind: str, data: dict[str, object]) -> None:
    """Call `reporter`'s method named `kind` with `data` (a relayed report); ignore unknown ones."""
    method = getattr(reporter, kind, None) if kind in REPORT_KINDS else None
    if method is not None:
        try:
            method(**data)
        except TypeError:  # a malformed relay line: nothing to act on
            return


REPORT_KINDS = frozenset(
    {"ready", "status", "heartbeat", "job_finished", "server_error", "stopping"}
)
