"""Delivers spooled results in a thread of its own.

The main thread runs jobs and never waits on the server to hand a result
over: it writes the result to the outbox and wakes this thread. Here, a pass
sends everything in the spool (results of this process, of a process that
died, of the machine before a reboot); when the server is away, passes back
off exponentially up to the idle maximum, and an idle pass every
`idle_check` seconds picks up what other processes left behind. The thread
has its own session with the server, as `requests.Session` is not meant to
be shared between threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from worker.backoff import Backoff
from worker.errors import APIError
from worker.outbox import DeliveryReport, Outbox, ResultAPI, deliver_pending
from worker.reporting import NullReporter, Reporter, ServerError

_log = structlog.get_logger(__name__)


class Deliverer:
    """The background replay of the outbox (start, wake, wait_drained, stop)."""

    def __init__(
        self,
        outbox: Outbox,
        connect: Callable[[], ResultAPI],
        backoff: Backoff,
        *,
        idle_check: float,
        reporter: Reporter | None = None,
    ) -> None:
        self._outbox = outbox
        self._connect = connect
        self._backoff = backoff
        self._idle_check = idle_check
        self._reporter = reporter or NullReporter()
        self._api: ResultAPI | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._passed = threading.Condition()
        self._started = 0  # passes begun
        self._finished = 0  # the number of the last pass that ended
        self._waiting: int | None = None  # results left after that pass
        self._thread = threading.Thread(target=self._run, name="mlworker-delivery", daemon=True)

    def start(self) -> None:
        """Start replaying now: what an earlier run left in the spool goes first."""
        self._thread.start()

    def wake(self) -> None:
        """A new result is in the spool: deliver it without waiting for the backoff."""
        self._wake.set()

    def wait_drained(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a pass that leaves the spool empty.

        Only a pass that begins after this call counts: one under way may
        have listed the spool before the latest result was written.
        """
        with self._passed:
            after = self._started
        self.wake()
        with self._passed:
            return self._passed.wait_for(
                lambda: self._finished > after and self._waiting == 0, timeout
            )

    def stop(self, grace: float) -> None:
        """Make one last pass (bounded by `grace` seconds) and end the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(grace)
        if self._thread.is_alive():
            _log.warning("delivery still under way at exit; the spool keeps the results")

    def _run(self) -> None:
        while True:
            last = self._stop.is_set()  # the last pass begins after stop(): it sees every result
            with self._passed:
                self._started += 1
                number = self._started
            report = self._pass()
            with self._passed:
                self._finished = number
                self._waiting = report.waiting if report else self._outbox.count()
                self._passed.notify_all()
            if last:
                return
            if report is None or report.error is not None:
                wait = self._backoff.next()
            else:
                self._backoff.reset()
                wait = self._idle_check
            self._wake.wait(wait)
            self._wake.clear()

    def _pass(self) -> DeliveryReport | None:
        """Deliver what is spooled; None when the server could not be reached."""
        if self._outbox.count() == 0:
            return DeliveryReport()
        try:
            if self._api is None:
                self._api = self._connect()
            report = deliver_pending(self._outbox, self._api, _log)
        except APIError as exc:
            _log.warning("results wait in the spool: no session", error=str(exc))
            self._reporter.report(ServerError())
            return None
        except Exception:  # never let the thread die: results would wait for a restart
            _log.exception("delivery pass failed")
            return None
        if report.error is not None:
            self._reporter.report(ServerError())
        if report.delivered or report.dropped or report.quarantined:
            _log.info(
                "delivery pass",
                delivered=report.delivered,
                dropped=report.dropped,
                quarantined=report.quarantined,
                waiting=report.waiting,
            )
        return report
