"""Run one job in a child process with a hard wall-clock limit and a memory limit.

An algorithm may raise, crash the interpreter, hang or eat all memory; none of
that may touch the worker. So jobs run in a child process
(`worker.jobproc.main`), which leads its own process group; the worker waits
for its report with a deadline and, on expiry or cancellation, kills the whole
group (`killpg` SIGKILL: grandchildren included, unless one made itself a new
session) and reaps it. A job process that ended a job cleanly puts the
process-wide state back (`worker.jobstate`) and serves the next one, up to
`jobs_per_process` jobs or until its memory grew past a bound; after any other
ending it is dropped the same way, so the next job starts clean in a fresh one.

Why a forkserver with preloaded modules: a fresh interpreter per job would pay
for importing numpy, scipy and scikit-learn every time (about a second), and a
plain `fork` of the worker would copy its threads' locks and its HTTP
connections into the job. `JobRunner.start` starts multiprocessing's
forkserver once (`worker.jobforkserver`; under a supervisor, its workers
share the supervisor's): a small, single-threaded process that imports
numpy, scipy, scikit-learn, matplotlib (fonts loaded) and our algorithm
modules up front, then forks one copy of itself per job, which shares
nothing with the worker but two pipes.
It also runs a tiny job per task once (`worker.jobwarm`), so that job
processes do not each pay scikit-learn's first-call costs. A fork of that
large process still takes milliseconds, and so does building the algorithm
registry, so the runner keeps one job process started ahead (the spare,
forked while the previous job runs): a job's start is one message.

Why the thread variables: OpenBLAS, MKL and OpenMP read `*_NUM_THREADS` when
they load, which happens in the forkserver, so the variables must be in the
forkserver's environment before it imports numpy. With one thread, a job does
not fight the other worker processes for cores, its results repeat, and under
an address-space limit OpenBLAS does not spin trying to allocate per-thread
buffers instead of raising `MemoryError`. The same environment leaves out
systemd's `NOTIFY_SOCKET`/`WATCHDOG_*` (a job must never speak for the worker)
and the worker's password.

How a failed job is classified (`JobOutcome.kind`):

- ``error``: the algorithm raised an `AlgorithmError`; its sentence is the message.
- ``exception``: anything else raised; the message is the traceback's last
  line (``ValueError: boom``).
- ``memory``: `MemoryError` (what the address-space limit normally produces);
  or the process died of SIGKILL that the worker did not send (on Linux, the
  kernel's OOM killer); or it died of another signal (SIGSEGV, SIGABRT from a
  C++ `bad_alloc`, ...) while its peak address space, sampled every tick, was
  within a tenth of the limit (or 64 MiB) of it. Sampling can miss a last
  quick burst, so such a crash may still be called ``crashed``.
- ``crashed``: died of any other signal, or exited without a report.
- ``timeout`` / ``cancelled``: the worker stopped it.
- ``invalid``: the job could not be handed to a job process at all (its
  params do not pickle, for one); the job process is not touched, so the
  spare stays ready for the next job.

Each runner has a forkserver of its own unless it is given one; a runner
started before a `fork` is not the child's to use. As with every start
method but `fork`, a job process imports the program's main module again
(unless it was run with `-m`), so that module must keep its work under
`if __name__ == "__main__":`, as console scripts do.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection, Pipe, wait
from multiprocessing.process import BaseProcess
from multiprocessing.reduction import ForkingPickler
from typing import Literal

from algorithms.jobresult import JobResult
from worker import jobproc
from worker.jobforkserver import DEFAULT_PRELOAD, JobForkServer
from worker.jobproc import Drawing, Finished, JobSpec, Ready, Started

__all__ = ["JobOutcome", "JobRunner", "JobSpec", "JobTimings", "OutcomeKind"]

#: How a claimed job ended: the kinds above, and two for a job refused before it runs:
#: ``invalid`` (details or params the worker cannot use) and ``dataset`` (points that
#: make no dataset); the loop counts every kind the same way.
OutcomeKind = Literal[
    "success",
    "error",
    "exception",
    "crashed",
    "timeout",
    "memory",
    "cancelled",
    "invalid",
    "dataset",
]

DEFAULT_JOBS_PER_PROCESS = 100  # a fork costs 50-70 ms of CPU; a small job, a few ms
DEFAULT_MEMORY_GROWTH = 256 * 1024 * 1024  # bytes of peak RSS + address space a process may gain
TICK = 0.2  # seconds between checks of the cancel flag and the memory peak
REAP_SECONDS = 5.0  # how long a killed job process gets to be reaped
MIB = 1024 * 1024


@dataclass(frozen=True)
class JobTimings:
    """Seconds per phase, for the logs; None where the job never got that far."""

    start: float | None  # from the hand-over to the job process having the job, dataset and all
    run: float | None  # the algorithm: fit, predict, scores, pictures
    total: float  # everything, reaping included


@dataclass(frozen=True)
class JobOutcome:
    """How a job ended: `result` on success, else `kind` and a student-readable `message`."""

    kind: OutcomeKind
    message: str
    result: JobResult | None
    timings: JobTimings
    exitcode: int | None  # negative for a signal; None when not waited for (after a report)

    @property
    def ok(self) -> bool:
        """True when the job succeeded and `result` holds its result."""
        return self.kind == "success"


@dataclass(frozen=True)
class _Ending:
    """What the parent saw while waiting: how the wait ended and what arrived."""

    how: Literal["finished", "died", "timeout", "cancelled"]
    started: Started | None
    finished: Finished | None
    peak: int  # largest address space seen, in bytes (0 when not sampled)


@dataclass
class _JobProcess:
    """A started job process, the parent's ends of its two pipes, and what it has served."""

    process: BaseProcess
    jobs: Connection  # parent -> child: (JobSpec, memory_limit), one per job
    reports: Connection  # child -> parent: Ready, then Started and Finished per job
    served: int = 0  # jobs handed to it
    memory_limit: int | None = None  # its address-space limit, once it has served a job


class JobRunner:
    """Runs jobs in child processes from a forkserver started once, each process many jobs.

    A job process serves up to `jobs_per_process` jobs, each from the same
    global state (`worker.jobstate`). It is replaced by a fresh one after any
    job that did not end cleanly (crash, time-out, cancel, memory, an
    exception, state it cannot put back), once its peak memory grew by more
    than `memory_growth` bytes, and for a job with another memory limit. A
    fresh process is always started ahead (the spare: it forks, builds the
    algorithm registry and waits), during a process's last job or right after
    one is dropped, so a job's start costs the worker one message on a pipe.
    Runs one job at a time; use it as a context manager, or call `start`
    first and `close` at the end.

    Its job processes come from `forkserver`, a worker's share of the
    supervisor's, or else from a forkserver of its own with `DEFAULT_PRELOAD`.
    """

    def __init__(
        self,
        *,
        forkserver: JobForkServer | None = None,
        start_timeout: float = 120,
        jobs_per_process: int = DEFAULT_JOBS_PER_PROCESS,
        memory_growth: int = DEFAULT_MEMORY_GROWTH,
    ):
        if jobs_per_process < 1:
            raise ValueError(f"jobs_per_process must be 1 or more, not {jobs_per_process}")
        self._server = forkserver if forkserver is not None else JobForkServer(DEFAULT_PRELOAD)
        self._start_timeout = start_timeout
        self._jobs_per_process = jobs_per_process
        self._memory_growth = memory_growth
        self._spare: _JobProcess | None = None

    def __enter__(self) -> JobRunner:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def launch(self) -> None:
        """Start the forkserver's imports now and return at once; `start` waits for them.

        The worker logs in meanwhile, so the login's round trips and the
        server's password check overlap the imports. A forkserver launched
        and never used ends when this process does (it watches a pipe that
        only this process holds). A shared forkserver is already running.
        """
        self._server.ensure_running()

    def start(self) -> None:
        """Start the forkserver and the first job process now, and wait until it is ready.

        Pays the imports once, at worker start, instead of on the first job.
        Raises RuntimeError when job processes cannot start.
        """
        self._spare = self._start_job_process()
        if not _wait_ready(self._spare.reports, self._start_timeout):
            self.close()
            raise RuntimeError("job processes do not start: see the errors above in the log")

    @property
    def forkserver_pid(self) -> int | None:
        """The pid of the forkserver its job processes come from; None before it is launched."""
        return self._server.pid

    def close(self) -> None:
        """Stop the spare job process, and the forkserver unless it is shared (no job running)."""
        if self._spare is not None:
            _stop(self._spare, ending="cancelled")
            self._spare = None
        self._server.stop()

    def run(
        self,
        job: JobSpec,
        *,
        time_limit: float,
        memory_limit: int | None = None,
        cancel: threading.Event | Callable[[], bool] | None = None,
        drawing: Callable[[], None] | None = None,
    ) -> JobOutcome:
        """Run `job` in a child process and say how it ended; never raises for the job's sake.

        `time_limit` is in wall-clock seconds from the hand-over; `memory_limit`
        in bytes of address space (it includes the ~0.5 GiB that numpy, scipy
        and scikit-learn map); `cancel` is checked every `TICK` seconds and
        stops the job when set (outcome "cancelled", message "worker shut down").
        `drawing` is called (in this thread: keep it short) when the job says
        that only its pictures are left to draw.
        """
        if not time_limit > 0:
            raise ValueError(f"time_limit must be a positive number of seconds, not {time_limit!r}")
        if memory_limit is not None and memory_limit <= 0:
            raise ValueError(f"memory_limit must be a positive number of bytes, not {memory_limit}")
        launched = time.monotonic()
        try:
            handed = _pickled((job, memory_limit))
        except Exception as exc:  # RecursionError, PicklingError...: the job's fault, not ours
            return JobOutcome(
                kind="invalid",
                message=f"the job cannot be handed to a job process: {jobproc.last_line(exc)}",
                result=None,
                timings=_timings(launched, _Ending("died", None, None, 0), time.monotonic()),
                exitcode=None,
            )
        current = self._hand_over(handed, memory_limit)
        ending = _Ending("died", None, None, 0)
        exitcode = None
        try:
            if current.served >= self._jobs_per_process:
                self._spare = self._start_job_process()  # warms up during this last job
            ending = _wait(
                current, launched + time_limit, _cancel_check(cancel), memory_limit, drawing
            )
        finally:
            if self._reusable(current, ending):
                self._spare = current
            else:
                exitcode = _stop(current, ending=ending.how)
                if self._spare is None:
                    self._spare = self._start_job_process()  # warms up before the next job
        kind, message = _classify(ending, exitcode, time_limit, memory_limit)
        return JobOutcome(
            kind=kind,
            message=message,
            result=ending.finished.result if ending.finished else None,
            timings=_timings(launched, ending, time.monotonic()),
            exitcode=exitcode,
        )

    def _hand_over(self, message: bytes, memory_limit: int | None) -> _JobProcess:
        """Send the pickled job to the spare; to a fresh job process if the spare cannot take it.

        A spare that has died while idle (OOM killer, by hand) cannot; nor can
        a used one whose address-space limit is not this job's.
        """
        spare, self._spare = self._spare, None
        if spare is not None:
            with suppress(OSError):
                if spare.process.is_alive() and (
                    spare.served == 0 or spare.memory_limit == memory_limit
                ):
                    spare.jobs.send_bytes(message)
                    return _served(spare, memory_limit)
            _stop(spare, ending="died")
        fresh = self._start_job_process()
        fresh.jobs.send_bytes(message)
        return _served(fresh, memory_limit)

    def _reusable(self, current: _JobProcess, ending: _Ending) -> bool:
        """Whether the process that ran a job may run the next one."""
        finished = ending.finished
        return (
            finished is not None
            and finished.reusable
            and finished.grown <= self._memory_growth
            and current.served < self._jobs_per_process
        )

    def _start_job_process(self) -> _JobProcess:
        """Start a job process; it warms up, says Ready and waits for its job."""
        jobs_reader, jobs = Pipe(duplex=False)
        reports, reports_writer = Pipe(duplex=False)
        process = self._server.process(jobproc.main, (jobs_reader, reports_writer))
        try:
            self.launch()
            process.start()
        finally:
            jobs_reader.close()
            reports_writer.close()
        return _JobProcess(process, jobs, reports)


def _served(current: _JobProcess, memory_limit: int | None) -> _JobProcess:
    """`current`, counting the job just handed to it and the limit it now has."""
    current.served += 1
    current.memory_limit = memory_limit
    return current


def _pickled(message: object) -> bytes:
    """``message`` as `Connection.send` would send it: pickled before any process is touched."""
    return bytes(ForkingPickler.dumps(message))


def _wait_ready(reports: Connection, timeout: float) -> bool:
    """Whether the job process said `Ready` within `timeout` seconds."""
    try:
        message = reports.recv() if reports.poll(timeout) else None
    except (EOFError, OSError):
        return False
    return isinstance(message, Ready)


def _wait(
    current: _JobProcess,
    deadline: float,
    cancelled: Callable[[], bool],
    memory_limit: int | None,
    drawing: Callable[[], None] | None = None,
) -> _Ending:
    """Read the child's messages until it reports, dies, runs out of time or is cancelled."""
    process, reports = current.process, current.reports
    waitables: list[Connection | int] = [reports, process.sentinel]
    started: Started | None = None
    peak = 0
    while True:
        if cancelled():
            return _Ending("cancelled", started, None, peak)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return _Ending("timeout", started, None, peak)
        ready = wait(waitables, timeout=min(TICK, remaining))
        if memory_limit is not None and process.pid is not None:
            peak = max(peak, _address_space_peak(process.pid))
        if reports in ready:
            try:
                message = reports.recv()
            except EOFError:  # the child is gone or going: wait for its sentinel alone
                waitables.remove(reports)
                continue
            if isinstance(message, Finished):
                return _Ending("finished", started, message, peak)
            if isinstance(message, Started):
                started = message
            elif isinstance(message, Drawing) and drawing is not None:
                drawing()
        elif process.sentinel in ready:
            return _Ending("died", started, None, peak)


def _stop(current: _JobProcess, *, ending: str) -> int | None:
    """Kill the job process's whole group and return its exit status (None if unknown).

    After a report the child is already exiting: it is not waited for, and
    multiprocessing collects its status when the next process starts.
    """
    current.jobs.close()
    process = current.process
    process.join(0)  # notes the exit status of a process that has ended: no kill by pid then
    if process.pid is not None:  # always, once started
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # the group outlives its leader
    exitcode = None
    if ending != "finished":
        process.kill()  # in case it had not made its own group yet
        process.join(REAP_SECONDS)
        exitcode = process.exitcode
        if exitcode is not None:
            process.close()
    current.reports.close()
    return exitcode


def _classify(
    ending: _Ending, exitcode: int | None, time_limit: float, memory_limit: int | None
) -> tuple[OutcomeKind, str]:
    """The outcome's kind and message, as the module docstring describes."""
    if ending.how == "cancelled":
        return "cancelled", "worker shut down"
    if ending.how == "timeout":
        return "timeout", (
            f"the job took longer than its time limit of {_seconds(time_limit)} seconds "
            "and was stopped"
        )
    if ending.finished is not None:
        if ending.finished.kind == "memory":
            return "memory", _memory_message(memory_limit)
        return ending.finished.kind, ending.finished.message
    if exitcode == jobproc.EXIT_NO_MEMORY:
        return "memory", _memory_message(memory_limit)
    if exitcode is None or exitcode >= 0:
        return "crashed", f"the algorithm's process ended unexpectedly (exit status {exitcode})"
    if exitcode == -signal.SIGKILL:
        return "memory", (
            "the algorithm was killed by the system (signal SIGKILL), "
            "most likely because it used more memory than the machine has"
        )
    if memory_limit is not None and ending.peak >= memory_limit - max(memory_limit // 10, 64 * MIB):
        return "memory", _memory_message(memory_limit)
    return "crashed", f"the algorithm crashed (signal {_signal_name(-exitcode)})"


def _seconds(seconds: float) -> str:
    """`300` for 300.0, `2.5` for 2.5: how a person writes a number of seconds."""
    return str(int(seconds)) if seconds == int(seconds) else f"{seconds:.3f}".rstrip("0")


def _memory_message(memory_limit: int | None) -> str:
    if memory_limit is None:
        return "the algorithm ran out of memory and was stopped"
    return f"the algorithm exceeded the memory limit of {memory_limit // MIB} MiB and was stopped"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _timings(launched: float, ending: _Ending, ended: float) -> JobTimings:
    started, finished = ending.started, ending.finished
    if started is None:
        return JobTimings(start=None, run=None, total=ended - launched)
    return JobTimings(
        start=started.at - launched,
        run=(finished.finished if finished else ended) - started.at,
        total=ended - launched,
    )


def _address_space_peak(pid: int) -> int:
    """The process's peak address space in bytes (`VmPeak`), 0 when unknown."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmPeak:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _cancel_check(cancel: threading.Event | Callable[[], bool] | None) -> Callable[[], bool]:
    if cancel is None:
        return lambda: False
    if isinstance(cancel, threading.Event):
        return cancel.is_set
    return cancel
