"""Several worker processes on one machine, under one supervisor.

Neither the supervisor nor the workers it forks import scikit-learn or
matplotlib: only the job forkserver does (`worker.jobforkserver`), so the
supervisor forks its workers within a fraction of a second. It starts
multiprocessing's resource tracker and the job forkserver before the fork,
and the workers share that one tracker (each would otherwise start its own,
6.6 MB apiece) and that one forkserver (17 MB and 2 s of imports apiece), as
they share its login (the server checks the password once). It owns the
forkserver: it launches a new one before it forks a worker if the old one
died, and stops it at the end.
Like gunicorn's arbiter, it restarts a worker that dies (waiting longer after
each quick death, so a crash loop does not spin), passes stop signals on with
the same two-stage meaning (the first lets running jobs finish, the second
aborts them), and stops for good on a boot failure: a worker exiting 78 (its
login refused) ends the supervisor with 78 instead of being respawned forever.
Like gunicorn's worker timeout, it kills the one worker that stopped reporting
for longer than `worker_timeout` (a deadlock, a stopped process); it is
restarted like a dead one, its job comes back through the server's lease, and
the others go on. It alone speaks to systemd: READY=1 once logged in, STATUS=
with what each worker does, WATCHDOG=1 while its own loop turns (and no worker
it killed lingers), STOPPING=1 on the way out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import select
import signal
import time
from dataclasses import dataclass, field
from multiprocessing import resource_tracker

import structlog

from worker.api import API
from worker.config import Settings
from worker.daemon import BootError, connect, run_worker
from worker.defaults import default_worker_id
from worker.errors import ConfigError
from worker.jobforkserver import JobForkServer
from worker.lifecycle import Shutdown
from worker.metrics import start_metrics
from worker.relay import PipeReporter, Report, ReportReader
from worker.reporting import JobFinished, NotifyReporter, Ready, ServerError, Status
from worker.sdnotify import NOTIFY_ENV_VARS, Notifier

_log = structlog.get_logger(__name__)

RESTART_MIN = 1.0  # seconds before restarting a worker that died
RESTART_MAX = 60.0  # the longest wait between restarts of a crash-looping worker
STABLE_AFTER = 60.0  # a worker that ran this long starts the backoff afresh
# The signal that passes on each stop stage. Two different signals, because the kernel
# merges a signal into one already pending, and Python runs a handler once for several
# deliveries: two quick SIGTERMs could reach a worker as one, and it would never abort.
STAGE_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass
class Slot:
    """One worker position: its process (if running), status and restart backoff."""

    number: int
    pid: int | None = None
    started: float = 0.0
    restart_at: float = 0.0
    failures: int = 0
    status: str = "starting"
    last_seen: float = field(default_factory=time.monotonic)
    killed_at: float = 0.0  # when it was killed for hanging; 0 if it was not

    def schedule_restart(self, now: float) -> float:
        """After its worker died at `now`: when to start it again; the delay in seconds.

        Each quick death doubles the wait, from RESTART_MIN up to RESTART_MAX,
        so a crash loop does not spin; a worker that ran STABLE_AFTER seconds
        starts the count afresh.
        """
        self.failures = 0 if now - self.started >= STABLE_AFTER else self.failures + 1
        delay = min(RESTART_MAX, RESTART_MIN * 2 ** max(self.failures - 1, 0))
        self.restart_at = now + delay
        return delay


def supervise(settings: Settings, forkserver: JobForkServer, *, burst: bool = False) -> int:
    """Run `settings.processes` workers until stopped; the exit status of the whole.

    `forkserver` is launched by the caller, as early as it can: the job
    processes of every worker come from it, and it stops with the supervisor.
    """
    resource_tracker.ensure_running()  # one for the machine: the forked workers reuse it
    try:
        return _supervise(settings, forkserver, burst=burst)
    finally:
        forkserver.stop()


def _supervise(settings: Settings, forkserver: JobForkServer, *, burst: bool) -> int:
    shutdown = Shutdown()
    shutdown.install()
    notifier = Notifier.from_environ()
    try:
        api = connect(settings, default_worker_id(), shutdown, NotifyReporter(notifier))
    except BootError as exc:
        _log.error("cannot start", reason=str(exc))
        return os.EX_CONFIG
    if api is None:
        return os.EX_OK
    api.close()  # its connections; the workers share its session
    try:
        supervisor = Supervisor(
            settings, shutdown, notifier, burst=burst, session_of=api, forkserver=forkserver
        )
    except ConfigError as exc:
        _log.error("cannot start", reason=str(exc))
        return os.EX_CONFIG
    return supervisor.run()


class Supervisor:
    """The main loop: spawn, reap, restart, relay signals and reports."""

    def __init__(
        self,
        settings: Settings,
        shutdown: Shutdown,
        notifier: Notifier,
        *,
        burst: bool,
        session_of: API | None = None,
        forkserver: JobForkServer | None = None,
    ) -> None:
        self.settings = settings
        self.session_of = session_of  # the supervisor's login, shared by the workers it forks
        self.forkserver = forkserver  # the job forkserver, shared by them too
        self.shutdown = shutdown
        self.notifier = notifier
        self.burst = burst
        slowest = settings.request_timeout + settings.poll_max
        if settings.worker_timeout <= slowest:
            raise ConfigError(
                f"worker_timeout ({settings.worker_timeout:g} s, from "
                f"{settings.sources.get('worker_timeout', 'default')}) must exceed "
                f"request_timeout plus poll_max ({slowest:g} s): a healthy worker waiting "
                "on a slow server is silent that long"
            )
        self.slots = [Slot(n) for n in range(settings.processes)]
        self._signals_passed = 0
        self._last_status = ""
        self._exit = os.EX_OK
        read_fd, self._write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        self._reader = ReportReader(read_fd)
        self._metrics = start_metrics(settings)

    def run(self) -> int:
        """Until every worker has stopped (after a stop signal, a burst or a boot failure)."""
        for slot in self.slots:
            self._spawn(slot)
        self.notifier.ready(f"{len(self.slots)} worker processes started")
        _log.info("supervisor ready", processes=len(self.slots))
        while any(slot.pid is not None for slot in self.slots) or self._restarts_due():
            self._pass_on_signals()
            self._reap()
            self._restart_due_workers()
            self._read_reports(timeout=0.5)
            self._kill_hung_workers()
            self._tell_systemd()
        self.notifier.stopping()
        _log.info("supervisor stopped", exit_status=self._exit)
        return self._exit

    def _spawn(self, slot: Slot) -> None:
        """Fork a worker; only a slot's first shares the supervisor's login.

        A restarted worker logs in by itself: the shared session may have
        expired since, and a password changed meanwhile must end it with 78.
        """
        session = self.session_of if slot.started == 0.0 else None
        if self.forkserver is not None:
            self.forkserver.ensure_running()  # a new one if it died
        pid = os.fork()
        if pid == 0:  # the worker: never returns
            os._exit(self._worker_main(slot.number, session))
        with contextlib.suppress(OSError):  # also here, against a race; the child may be gone
            os.setpgid(pid, pid)
        slot.pid, slot.started, slot.last_seen, slot.status = pid, time.monotonic(), 0, "starting"
        slot.killed_at = 0.0
        _log.info("worker started", slot=slot.number, pid=pid)

    def _worker_main(self, number: int, session: API | None) -> int:
        code = 1
        try:
            # A process group of its own: a terminal's Ctrl-C goes to the foreground group,
            # and a worker in it would count that signal on top of the one passed on, and
            # abort its running job at the first Ctrl-C. Only the supervisor signals workers.
            os.setpgid(0, 0)
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, signal.SIG_DFL)
            for name in NOTIFY_ENV_VARS:
                os.environ.pop(name, None)
            os.close(self._reader.fd)
            shutdown = Shutdown()
            shutdown.install()
            reporter = PipeReporter(number, self._write_fd)
            settings = self.settings
            if settings.worker_id:  # one name per process, so the server tells them apart
                settings = dataclasses.replace(settings, worker_id=f"{settings.worker_id}-{number}")
            code = run_worker(
                settings,
                shutdown=shutdown,
                reporter=reporter,
                burst=self.burst,
                session_of=session,
                forkserver=self.forkserver,
            )
        except BaseException:
            _log.exception("worker process failed")
        return code

    def _pass_on_signals(self) -> None:
        """Each stop signal the supervisor got goes to every worker, once."""
        received = 2 if self.shutdown.aborting else 1 if self.shutdown.stopping else 0
        while self._signals_passed < received:
            self._signals_passed += 1
            stage = "finish running jobs" if self._signals_passed == 1 else "abort running jobs"
            _log.info("stop signal passed on", stage=stage)
            self.notifier.stopping(f"stopping: {stage}")
            for slot in self.slots:
                slot.restart_at = 0.0
                if slot.pid is not None:
                    _kill(slot.pid, STAGE_SIGNALS[self._signals_passed - 1])

    def _reap(self) -> None:
        for slot in self.slots:
            if slot.pid is None:
                continue
            pid, status = os.waitpid(slot.pid, os.WNOHANG)
            if pid == 0:
                continue
            code = os.waitstatus_to_exitcode(status)
            slot.pid = None
            _log.info("worker exited", slot=slot.number, pid=pid, exit_status=code)
            self._after_exit(slot, code)

    def _after_exit(self, slot: Slot, code: int) -> None:
        if code == os.EX_CONFIG and self._exit == os.EX_OK:
            _log.error("a worker cannot start as configured; stopping all", slot=slot.number)
            self._exit = os.EX_CONFIG
            self.shutdown.request()
        if self.shutdown.stopping or (self.burst and code == os.EX_OK):
            slot.status = "stopped"
            return
        delay = slot.schedule_restart(time.monotonic())
        slot.status = f"restarting in {delay:.0f} s"
        _log.warning("worker died; restarting", slot=slot.number, exit_status=code, delay=delay)

    def _restarts_due(self) -> bool:
        return not self.shutdown.stopping and any(s.restart_at for s in self.slots)

    def _restart_due_workers(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if slot.pid is None and slot.restart_at and slot.restart_at <= now:
                slot.restart_at = 0.0
                if not self.shutdown.stopping:
                    self._spawn(slot)

    def _read_reports(self, timeout: float) -> None:
        try:
            readable, _, _ = select.select([self._reader.fd], [], [], timeout)
        except InterruptedError:  # a signal: handled on the next turn
            return
        if readable:
            for report in self._reader.read():
                self._apply(report)

    def _apply(self, report: Report) -> None:
        if not 0 <= report.slot < len(self.slots):
            return
        slot = self.slots[report.slot]
        slot.last_seen = time.monotonic()
        match report.event:
            case Status(text):
                slot.status = text
            case Ready():
                slot.status = "ready"
            case JobFinished() | ServerError():
                self._metrics.report(report.event)

    def _kill_hung_workers(self) -> None:
        """SIGKILL each worker silent for longer than the bound; reaping then restarts it."""
        now = time.monotonic()
        for slot in silent(self.slots, now, self.settings.worker_timeout):
            if slot.pid is not None and not slot.killed_at:
                _log.error(
                    "worker hung; killing it",
                    slot=slot.number,
                    pid=slot.pid,
                    silent_seconds=round(now - slot.last_seen, 1),
                )
                slot.killed_at, slot.status = now, "hung; killed"
                _kill(slot.pid, signal.SIGKILL)  # its job process follows (worker/jobproc.py)

    def _tell_systemd(self) -> None:
        text = "; ".join(f"#{s.number} {s.status}" for s in self.slots)
        if text != self._last_status:  # reports arrive every second; news far less often
            self._last_status = text
            self.notifier.status(text)
        now = time.monotonic()
        bound = self.settings.worker_timeout
        if not any(
            s.pid is not None and s.killed_at and now - s.killed_at > bound for s in self.slots
        ):
            self.notifier.watchdog()  # else a killed worker outlived its kill: systemd's turn


def silent(slots: list[Slot], now: float, bound: float) -> list[Slot]:
    """The running workers that reported once, then nothing for longer than `bound` seconds.

    A worker not heard from yet is still starting (startup jitter, imports) and not counted.
    """
    return [s for s in slots if s.pid is not None and s.last_seen and now - s.last_seen > bound]


def _kill(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


__all__ = ["Supervisor", "silent", "supervise"]
