"""What runs inside a job process: the child side of `worker.execute`.

`worker.execute.JobRunner` starts `main` in a child of its forkserver *before*
there is a job for it (a spare), so everything that does not depend on the job
is done while the worker is busy elsewhere:

1. `os.setsid()`: the child leads a new session and process group, so the
   parent can kill it *and everything it starts* with one `killpg`, and a
   Ctrl-C or a signal to the worker's own group does not reach the job.
2. A watcher thread kills that group if the worker dies, so a killed worker
   never leaves a hanging job behind (the forkserver cannot do it: every job
   process holds the forkserver's "alive" pipe open, so it outlives the worker).
3. The algorithm registry is built (entry points scanned, plugins imported),
   the process's global state is recorded (`worker.jobstate.take`), then the
   child says `Ready` and waits for a job.

With each job come the limits: `RLIMIT_AS` caps the address space (the memory
limit) and `RLIMIT_CORE` 0 stops a crashing algorithm from writing a core file.
The child sends `Started` (for phase timings), runs the algorithm on the
dataset the job brings, built (saying `Drawing` when only the pictures are
left), puts the global state back, and sends `Finished` (the result, or why
it failed, and whether the process is fit for another job). Then it waits
for the next job, or exits at once when it is not fit, or when the runner
closes its end of the pipe: the runner decides.
Exception objects never cross the pipe, only strings: an algorithm's
exception may not pickle.

Timestamps are `time.monotonic()`, which on Linux is one clock for all
processes, so the parent can subtract them from its own.
"""

from __future__ import annotations

import ctypes
import functools
import os
import resource
import signal
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field, replace
from multiprocessing import parent_process
from multiprocessing.connection import Connection, wait
from typing import Any, Literal, NoReturn

from algorithms.dataset import Dataset
from algorithms.errors import AlgorithmError
from algorithms.jobresult import JobResult

ReportKind = Literal["success", "error", "exception", "memory"]

#: Exit status of a job process that ran out of memory even for sending its report.
EXIT_NO_MEMORY = 86

#: An exception's text is cut to this many characters (it goes into a job's message).
MAX_MESSAGE = 2000


@dataclass(frozen=True)
class JobSpec:
    """Everything a job process needs; pickled to the child, so keep it small.

    The dataset comes built: the worker makes its arrays once per dataset
    version (`worker.cache.DatasetCache.dataset`), and numpy arrays pickle
    as raw bytes, where a thousand point dicts would be pickled one by one
    and parsed again in every job process.
    """

    job_id: int
    algorithm: str
    params: Mapping[str, Any]
    dataset: Dataset = field(repr=False)
    seed: int | None = None
    pictures: bool = True


@dataclass(frozen=True)
class Ready:
    """First message: the process is warmed up and waits for its job."""


@dataclass(frozen=True)
class Started:
    """A job's first message: the job (its dataset unpickled) arrived at `at`; the run begins."""

    at: float


@dataclass(frozen=True)
class Drawing:
    """Sent during a job: its labels and scores are known, its pictures are being drawn.

    The worker claims its next job meanwhile: a job claimed this early waits
    only for the pictures, never for a long fit.
    """


@dataclass(frozen=True)
class Finished:
    """A job's last message: how it ended, a student-readable message, and the result."""

    kind: ReportKind
    message: str
    result: JobResult | None
    finished: float
    reusable: bool = False  # the job ended cleanly and the global state is as it was
    grown: int = 0  # bytes the process's peak memory (RSS or address space) grew since Ready


def main(jobs: Connection, reports: Connection) -> NoReturn:
    """Warm up, then run each `(JobSpec, memory_limit)` from `jobs` until told to stop."""
    # Imported here: the worker's own process imports this module for its messages and must
    # not load scikit-learn for them. The forkserver has preloaded these modules, so in a
    # job process each import is a look-up in `sys.modules`.
    from algorithms.catalog import default_registry
    from worker import jobstate

    os.setsid()
    _die_with_parent()
    with suppress(Exception):  # a broken registry fails the job instead, with its message
        default_registry()
    state = jobstate.take()
    ready_peak = _memory_peak()
    reports.send(Ready())
    while True:
        try:
            job, memory_limit = jobs.recv()
        except EOFError:  # the runner closed: no (more) jobs for this process
            os._exit(0)
        except Exception as exc:  # a job that pickled but does not unpickle here: fail it, say why
            message = f"the job process could not read the job: {last_line(exc)}"
            _report(reports, Finished("exception", message, None, time.monotonic()))
        started = time.monotonic()
        _limit_resources(memory_limit)
        address_space = resource.getrlimit(resource.RLIMIT_AS)
        finished = _run(job, reports, started)
        reusable = (
            finished.kind in ("success", "error")
            and jobstate.restore(state)
            and resource.getrlimit(resource.RLIMIT_AS) == address_space
        )
        finished = replace(finished, reusable=reusable, grown=_memory_peak() - ready_peak)
        if not reusable:
            _report(reports, finished)
        _send(reports, finished)
        del job, finished  # an idle process holds no dataset or result
        _give_back_free_memory()


def _run(job: JobSpec, reports: Connection, started: float) -> Finished:
    """Run the algorithm; turn every failure into a report."""
    from algorithms.run import run_algorithm  # preloaded: see `main`

    kind: ReportKind = "success"
    message = ""
    result: JobResult | None = None
    try:
        reports.send(Started(at=started))
        result = run_algorithm(
            job.algorithm,
            job.params,
            job.dataset,
            seed=job.seed,
            pictures=job.pictures,
            drawing=lambda: reports.send(Drawing()),
        )
    except MemoryError:
        # Nothing is built here: the traceback still holds the algorithm's frames
        # and with them the memory it took; they are freed when this block ends.
        kind = "memory"
    except AlgorithmError as exc:
        kind, message = "error", str(exc)
    except BaseException as exc:  # a plugin may raise anything, even SystemExit
        kind, message = "exception", last_line(exc)
    return Finished(kind=kind, message=message, result=result, finished=time.monotonic())


def last_line(exc: BaseException) -> str:
    """The last line of the traceback Python would print: `ValueError: boom`."""
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def _report(reports: Connection, finished: Finished) -> NoReturn:
    """Send the final report and leave at once, whatever threads the algorithm left.

    Output is flushed first: the parent kills the process group once it has the report.
    """
    _send(reports, finished)
    os._exit(0)


def _send(reports: Connection, finished: Finished) -> None:
    """Send a job's report; leave at once if it cannot be sent (the parent sees the exit status)."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        reports.send(finished)
    except MemoryError:
        os._exit(EXIT_NO_MEMORY)
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)


def _give_back_free_memory() -> None:
    """Return the heap's free pages to the system, so an idle warm process stays small.

    A job's pictures and arrays come and go in blocks of megabytes; glibc keeps
    freed heap for reuse (and raises its mmap threshold after the first such
    free), so a warm process would hold its largest job's peak, 10 MB more
    than it needs, while it waits. `malloc_trim` costs a fraction of a
    millisecond; it does not touch Python's objects (unlike `gc.collect`,
    whose walk would copy every page shared with the forkserver). Not glibc:
    nothing to do.
    """
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is not None:
        trim(0)


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None)


def _memory_peak() -> int:
    """This process's peak RSS plus its peak address space (`VmHWM` + `VmPeak`), in bytes.

    Both only grow, so the sum's growth since `Ready` is at least what either grew.
    """
    peaks = 0
    with suppress(OSError, ValueError, IndexError), open("/proc/self/status", "rb") as status:
        for line in status:
            if line.startswith((b"VmPeak:", b"VmHWM:")):
                peaks += int(line.split()[1]) * 1024
    return peaks


def _limit_resources(memory_limit: int | None) -> None:
    """No core files; an address space of at most `memory_limit` bytes."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory_limit is not None:
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = memory_limit if hard == resource.RLIM_INFINITY else min(memory_limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _die_with_parent() -> None:
    """Kill this process group when the worker that started it goes away."""
    parent = parent_process()
    if parent is None:
        return
    sentinel = parent.sentinel

    def watch() -> None:
        wait([sentinel])
        os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, name="mlworker-parent-watch", daemon=True).start()
