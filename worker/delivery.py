"""Delivery: what becomes of a result once the job is done, and the thread that sends it.

The policy, per answer to a result (`deliver_pending`): accepted (a
duplicate too): removed. 404 or 409: the server will never take it, so it
is removed and the drop logged. Transient failure, or the login/rights
refused: kept, and the pass stops there, since the next result would fail
the same way. Any other refusal (400): the result is wrong, so it is set
aside (quarantined) with the server's sentence.

The main thread runs jobs and never waits on the server to hand a result
over: it writes the result to the outbox and wakes this thread. Here, a pass
sends everything in the spool (results of this process, of a process that
died, of the machine before a reboot); when the server is away, passes back
off exponentially up to the idle maximum, and an idle pass every
`idle_check` seconds picks up what other processes left behind. The thread
has its own session with the server, as `requests.Session` is not meant to
be shared between threads.

A result that ran is never lost to the disk: when the spool cannot take it
(a full or read-only disk), `put` holds it in memory and every pass tries,
first, to spool it again and else to send it straight from memory. While a
result is held, `writable` says whether a result that large fits in the
spool now (it writes and removes that many bytes), and the loop claims no
new job until it does. A result still held when the process stops is
logged as lost, with its job id: the job then waits for its lease.

The thread's session is cut short only when a stop's grace has run out
(`stop`), never by the stop signal itself: the last pass may still deliver.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from worker.backoff import Backoff
from worker.errors import (
    APIError,
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    TransientError,
)
from worker.outbox import Claim, Outbox
from worker.reporting import NullReporter, Reporter, ServerError
from worker.result import Result

__all__ = ["Deliverer", "DeliveryReport", "ResultAPI", "deliver_pending", "send"]

_log = structlog.get_logger(__name__)

CUT_AFTER_GRACE = 2.0  # seconds the cut last call gets to end once the grace has run out


class ResultAPI(Protocol):
    """What delivery needs of :class:`worker.api.API`."""

    def update_job_details(self, job_id: int, *args: Any, **kwargs: Any) -> Any:
        """Post one job's result and pictures; answer ``{"success": true, ...}``."""


@dataclass
class DeliveryReport:
    """What one delivery pass did; ``waiting`` counts what is still in the spool."""

    delivered: int = 0
    dropped: int = 0
    quarantined: int = 0
    busy: int = 0
    waiting: int = 0
    error: APIError | None = field(default=None)


def _size(result: Result) -> int:
    """Roughly the bytes a result takes in the spool."""
    return 4096 + len(repr(result.fields())) + sum(len(p.png) for p in result.pictures)


class Deliverer:
    """The background replay of the outbox (put, writable, start, wake, wait_drained, stop).

    ``connect(interrupted)`` makes the thread's session; ``interrupted`` is
    the callable that cuts its calls short.
    """

    def __init__(
        self,
        outbox: Outbox,
        connect: Callable[[Callable[[], bool]], ResultAPI],
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
        self._held: deque[Result] = deque()
        self._held_lock = threading.Lock()
        self._room_needed = 0  # bytes the spool must take again before the loop claims
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._cut = threading.Event()
        self._passed = threading.Condition()
        self._started = 0  # passes begun
        self._finished = 0  # the number of the last pass that ended
        self._waiting: int | None = None  # results left after that pass
        self._thread = threading.Thread(target=self._run, name="mlworker-delivery", daemon=True)

    def put(self, result: Result) -> None:
        """Spool a finished job's result and wake the thread; if the disk fails, hold it."""
        try:
            self._outbox.put(result)
        except OSError as exc:
            _log.error(
                "the spool cannot take the result: delivering it from memory, "
                "and claiming no job until the spool takes writes again",
                job_id=result.job_id,
                spool=str(self._outbox.root),
                error=str(exc),
            )
            with self._held_lock:
                self._held.append(result)
                self._room_needed = max(self._room_needed, _size(result))
        self.wake()

    def writable(self) -> bool:
        """Whether the spool takes writes: after it failed, only once a result as large fits."""
        with self._held_lock:
            size = self._room_needed
        if size == 0:
            return True
        try:
            self._outbox.probe(size)
        except OSError:
            return False
        with self._held_lock:
            self._room_needed = 0
        _log.info("the spool takes writes again", spool=str(self._outbox.root))
        self.wake()  # the held results go to the spool first
        return True

    def waiting(self) -> int:
        """Results not yet delivered: in the spool and held in memory."""
        with self._held_lock:
            held = len(self._held)
        return self._outbox.count() + held

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
        """Make one last pass (bounded by `grace` seconds, then cut) and end the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(grace)
        if self._thread.is_alive():
            self._cut.set()
            self._thread.join(CUT_AFTER_GRACE)
            _log.warning("delivery still under way at exit; the spool keeps the results")
        with self._held_lock:
            lost = [result.job_id for result in self._held]
        if lost:
            _log.error(
                "results lost: the spool could not take them and the server did not answer "
                "in time; their jobs wait for their leases",
                job_ids=lost,
            )

    def _run(self) -> None:
        while True:
            last = self._stop.is_set()  # the last pass begins after stop(): it sees every result
            with self._passed:
                self._started += 1
                number = self._started
            report = self._pass()
            with self._passed:
                self._finished = number
                self._waiting = self._left(report)
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

    def _left(self, report: DeliveryReport | None) -> int:
        """What a later pass could still deliver: 0 means drained.

        A pass that met no server error and no busy entry has settled every
        spooled entry (delivered, dropped or set aside, even when the disk
        would not let it be moved); only held results are left then.
        """
        if report is None or report.error is not None or report.busy:
            return self.waiting() or 1
        with self._held_lock:
            return len(self._held)

    def _pass(self) -> DeliveryReport | None:
        """Deliver what is held and spooled; None when the server could not be reached."""
        if self.waiting() == 0:
            return DeliveryReport()
        try:
            if self._api is None:
                self._api = self._connect(self._cut.is_set)
            error = self._deliver_held(self._api)
            if error is not None:
                self._reporter.report(ServerError())
                return DeliveryReport(error=error, waiting=self.waiting())
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

    def _deliver_held(self, api: ResultAPI) -> APIError | None:
        """Spool each held result if the disk takes it now, else send it; the error that ends
        the pass, if any."""
        while True:
            with self._held_lock:
                if not self._held:
                    return None
                result = self._held[0]
            try:
                self._outbox.put(result)
            except OSError:
                outcome = send(result, api, _log.bind(job_id=result.job_id, held=True))
                if isinstance(outcome, APIError):
                    return outcome
                if outcome not in ("delivered", "dropped"):
                    _log.error(
                        "result refused, and the spool cannot keep it aside",
                        job_id=result.job_id,
                        reason=outcome,
                    )
            with self._held_lock:
                self._held.popleft()


def deliver_pending(outbox: Outbox, api: ResultAPI, log: Any = _log) -> DeliveryReport:
    """Send every spooled result, oldest first, until the server stops answering.

    Each answer is dealt with as the module docstring says; entries another
    process is delivering are skipped (``report.busy``).
    """
    report = DeliveryReport()
    for entry in outbox.pending():
        with outbox.claim(entry) as claim:
            outcome = "busy" if claim is None else _deliver(claim, api, log)
        if isinstance(outcome, APIError):
            report.error = outcome
            break
        setattr(report, outcome, getattr(report, outcome) + 1)
    report.waiting = outbox.count()
    return report


def _deliver(claim: Claim, api: ResultAPI, log: Any) -> APIError | str:
    """Send one claimed entry; the report counter it adds to, or the error ending the pass."""
    outcome = send(claim.result, api, log.bind(job_id=claim.job_id))
    if isinstance(outcome, APIError):
        return outcome
    if outcome in ("delivered", "dropped"):
        claim.done()
        return outcome
    claim.quarantine(outcome)
    return "quarantined"


def send(result: Result, api: ResultAPI, log: Any) -> APIError | str:
    """Post ``result``: "delivered", "dropped", the error to retry later, or why it is refused.

    The same for a result read from the spool and one held in memory.
    """
    try:
        answer = api.update_job_details(
            result.job_id,
            result.score_test,
            result.score_validation,
            result.labels_training,
            result.labels_test,
            result.labels_validation,
            extra_scores_test=result.extra_scores_test,
            extra_scores_validation=result.extra_scores_validation,
            message=result.message,
            success=result.success,
            pictures=[(picture.name, picture.png) for picture in result.pictures],
        )
    except (TransientError, AuthenticationError, PermissionDeniedError) as exc:
        log.warning("result kept: server unavailable", error=str(exc), status=exc.status)
        return exc
    except (NotFoundError, ConflictError) as exc:
        log.warning(
            "result dropped: the server will not take it", error=str(exc), status=exc.status
        )
        return "dropped"
    except APIError as exc:
        return f"server refused the result ({exc.status}): {exc}"
    except ValueError as exc:  # a field the client refuses to send
        return f"the result cannot be sent: {exc}"
    if isinstance(answer, dict) and answer.get("success") is True:
        log.info(
            "result delivered",
            duplicate=bool(answer.get("duplicate")),
            pictures=len(result.pictures),
        )
        return "delivered"
    return f"unexpected answer to the update: {answer!r}"
