"""The process-wide state a job may change, taken once and put back after every job.

A job process serves many jobs (`worker.execute.JobRunner`), so what one job
sets for the whole process must not reach the next: scikit-learn's config,
numpy's error handling and global random state, Python's `random`, warning
filters, matplotlib's rcParams and open figures, the working directory, the
environment, `sys.path`, the umask, signal handlers and timers, the garbage
collector, the recursion limit. `take` records it when the process is ready;
`restore` puts it back after a job, cheaply (no module is imported, rcParams
are copied back without re-validation, as matplotlib's own `rc_context` does).

What cannot be put back is reported instead, and the process is then not
reused: threads or child processes the job left running, resource limits it
changed (a lowered hard limit cannot be raised again), a working directory
that is gone. Module attributes a plugin patches are not covered: built-ins
and plugins are imported before `take`, so a job that patches them does so on
purpose; the process is still replaced every `jobs_per_process` jobs.
"""

from __future__ import annotations

import gc
import os
import random
import resource
import signal
import sys
import warnings
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import sklearn

#: Resource limits a job could change for itself; RLIMIT_AS and RLIMIT_CORE are set per job.
_LIMITS = (
    resource.RLIMIT_CPU,
    resource.RLIMIT_DATA,
    resource.RLIMIT_FSIZE,
    resource.RLIMIT_NOFILE,
    resource.RLIMIT_NPROC,
    resource.RLIMIT_STACK,
)
_TIMERS = (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF)


@dataclass(frozen=True)
class ProcessState:
    """What `take` saw; `restore` makes the process match it again."""

    sklearn_config: dict[str, Any]
    numpy_errors: Any  # numpy's own TypedDict of np.geterr()
    numpy_error_call: Any
    numpy_random: Any
    python_random: Any
    warning_filters: tuple[Any, ...]
    show_warning: Any
    rc_params: dict[str, Any] | None  # None when matplotlib is not loaded
    cwd: str
    environ: dict[str, str]
    path: tuple[str, ...]
    umask: int
    handlers: dict[signal.Signals, Any]
    gc_enabled: bool
    recursion_limit: int
    threads: int
    limits: dict[int, tuple[int, int]]


def take() -> ProcessState:
    """The process's state now: call it once, before the first job."""
    umask = os.umask(0o077)
    os.umask(umask)
    mpl = sys.modules.get("matplotlib")
    return ProcessState(
        sklearn_config=sklearn.get_config(),
        numpy_errors=np.geterr(),
        numpy_error_call=np.geterrcall(),
        numpy_random=np.random.get_state(),
        python_random=random.getstate(),
        warning_filters=tuple(warnings.filters),
        show_warning=warnings.showwarning,
        rc_params=None if mpl is None else dict(mpl.rcParams),
        cwd=os.getcwd(),
        environ=dict(os.environ),
        path=tuple(sys.path),
        umask=umask,
        handlers={sig: signal.getsignal(sig) for sig in _catchable()},
        gc_enabled=gc.isenabled(),
        recursion_limit=sys.getrecursionlimit(),
        threads=_thread_count(),
        limits={limit: resource.getrlimit(limit) for limit in _LIMITS},
    )


def restore(state: ProcessState) -> bool:
    """Put `state` back; False when the process cannot be made like it (do not reuse it then)."""
    try:
        _restore_libraries(state)
        _restore_process(state)
    except Exception:  # a job broke something in a way we cannot mend: replace the process
        return False
    return _thread_count() == state.threads and not _children() and _limits_kept(state)


def _restore_libraries(state: ProcessState) -> None:
    sklearn.set_config(**state.sklearn_config)
    np.seterr(**state.numpy_errors)
    np.seterrcall(state.numpy_error_call)
    np.random.set_state(state.numpy_random)
    random.setstate(state.python_random)
    warnings.resetwarnings()  # also tells every module's warning registry that filters changed
    cast(list[Any], warnings.filters)[:] = state.warning_filters  # the list the C module reads
    warnings.showwarning = state.show_warning
    mpl = sys.modules.get("matplotlib")
    if state.rc_params is not None and mpl is not None:
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:
            pyplot.close("all")
        dict.update(mpl.rcParams, state.rc_params)


def _restore_process(state: ProcessState) -> None:
    os.chdir(state.cwd)
    if os.environ != state.environ:
        os.environ.clear()
        os.environ.update(state.environ)
    sys.path[:] = state.path
    os.umask(state.umask)
    for timer in _TIMERS:
        signal.setitimer(timer, 0)
    for sig, handler in state.handlers.items():
        if signal.getsignal(sig) is not handler and handler is not None:
            signal.signal(sig, handler)
    if gc.isenabled() != state.gc_enabled:
        (gc.enable if state.gc_enabled else gc.disable)()
    sys.setrecursionlimit(state.recursion_limit)


def _catchable() -> list[signal.Signals]:
    return [sig for sig in signal.valid_signals() if sig not in (signal.SIGKILL, signal.SIGSTOP)]


def _thread_count() -> int:
    """Threads of this process, native ones included (OpenMP, a C library's)."""
    return len(os.listdir("/proc/self/task"))


def _children() -> list[str]:
    """Pids of this process's children still alive, after reaping the ended ones."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
    children: list[str] = []
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as listed:
            children.extend(listed.read().split())
    return children


def _limits_kept(state: ProcessState) -> bool:
    return all(resource.getrlimit(limit) == value for limit, value in state.limits.items())
