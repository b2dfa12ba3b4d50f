"""The job forkserver: one per machine, shared by every worker process forked after it.

Why share it: a forkserver imports numpy, scipy, scikit-learn and our
algorithms (about 2 s of CPU), and its private memory is the pages its job
processes copy-on-write, so each worker's own forkserver cost 17 MB and a
start-up's worth of imports. The supervisor (`worker.supervisor`) starts one
before it forks its workers, and they all fork their job processes from it.

Why multiprocessing's forkserver and not a zygote of our own: its fd passing,
the status pipe on which it reports each child's pid and exit status, the
"alive" pipe and the job's parent sentinel are tested code, and they work from
any process that holds the forkserver's socket address and "alive" fd, which a
forked worker inherits. One check does not: `ForkServer.ensure_running` asks
`waitpid` whether the server still runs, and only its parent may
(`ChildProcessError` elsewhere). `JobForkServer` is that class with an owner,
the process that launched it: the owner checks as before, and launches a new
one if it died; a process that inherited it checks nothing up front and finds
out when it connects. `ServedProcess` is multiprocessing's forkserver process
with its `Popen` asking a given `JobForkServer` instead of the process-wide one.

When the shared forkserver dies (killed by hand, by the OOM killer): the
status pipes of its job processes close, so a running job ends as it did with
a worker's own forkserver (exit status 255, its group killed: ``crashed``).
The next connection of a worker is refused (or, while the dying server's
socket is still open, broken as the fds are sent); that worker then launches a
forkserver of its own, owns it from then on (it pays the imports and the
memory again, as before sharing) and stops it when it ends. The supervisor
makes sure its forkserver runs before it forks a worker, so a worker started
after the death shares a new one. Only the owner stops a forkserver (`stop`):
a worker never kills the one it shares.
"""

from __future__ import annotations

import importlib.util
import io
import os
import signal
from collections.abc import Callable, Sequence
from contextlib import suppress
from multiprocessing import popen_forkserver, reduction, spawn, util
from multiprocessing.context import set_spawning_popen
from multiprocessing.forkserver import ForkServer, read_signed
from multiprocessing.process import BaseProcess
from typing import Any

from worker.jobenv import job_environment

#: Modules the forkserver imports once (those not installed are skipped). The
#: job process re-runs a console script's `__main__` (multiprocessing does), so
#: `worker.cli` is preloaded to make that a lookup in `sys.modules`. Not
#: `matplotlib.pyplot`: our pictures draw without it (matplotlib's fonts, ticks
#: and colormaps come with `algorithms.run`), and it is a fifth of the
#: forkserver's start; a plugin that uses pyplot imports it once per job process.
DEFAULT_PRELOAD = (
    "numpy",
    "scipy",
    "sklearn",
    "algorithms.run",
    "algorithms.builtin",
    "algorithms.plugins",
    "worker.jobproc",
    "worker.cli",
    "worker.jobwarm",  # last: runs a tiny job per task, so job processes start warm
)


class JobForkServer(ForkServer):
    """multiprocessing's forkserver in the job environment, stopped only by its owner.

    `ensure_running` launches it (with the thread variables and without the
    worker's secrets: `worker.jobenv.job_environment`) in the owner; in a process
    that inherited it by `fork` it trusts it, and when asked for a child there
    (`_ServedPopen`) no longer answers, launches an own one.
    """

    # The base class's state, set in its __init__ and ensure_running.
    _forkserver_address: str | None
    _forkserver_alive_fd: int | None
    _forkserver_pid: int | None

    def __init__(self, preload: Sequence[str] = DEFAULT_PRELOAD) -> None:
        super().__init__()
        self.set_forkserver_preload([module for module in preload if _findable(module)])
        self._owner = os.getpid()

    @property
    def pid(self) -> int | None:
        """The forkserver's pid (launched here or inherited); None before it is launched."""
        return self._forkserver_pid

    @property
    def inherited(self) -> bool:
        """Whether this process uses a forkserver that another one launched."""
        return self._forkserver_pid is not None and self._owner != os.getpid()

    def ensure_running(self) -> None:
        """Launch the forkserver unless it runs; start its imports and return at once."""
        if self.inherited:
            return
        self._owner = os.getpid()
        if self._forkserver_pid is not None and _ended(self._forkserver_pid):
            _warn("the job forkserver died; starting a new one", pid=self._forkserver_pid)
        with job_environment():
            super().ensure_running()  # reaps a dead one first

    def replace_inherited(self) -> None:
        """Drop the inherited forkserver, which is gone: the next child comes from our own."""
        _warn("the shared job forkserver is gone; starting one of our own")
        self._forget()

    def stop(self) -> None:
        """Kill and reap the forkserver if this process launched it; elsewhere do nothing.

        Killed, not asked: job processes hold its "alive" pipe open too, so
        closing ours would not end it. Call when this process's job processes
        are stopped.
        """
        if self._forkserver_pid is None or self._owner != os.getpid():
            return
        with suppress(ProcessLookupError):
            os.kill(self._forkserver_pid, signal.SIGKILL)
        # multiprocessing's own: closes the "alive" fd, reaps, removes the socket file
        self._stop()  # type: ignore[attr-defined]

    def process(self, target: Callable[..., object], args: tuple[Any, ...]) -> ServedProcess:
        """A daemonic job process (not started) that this forkserver will fork."""
        return ServedProcess(self, target=target, args=args, name="mlworker-job", daemon=True)

    def _forget(self) -> None:
        """Drop the inherited forkserver's state; its socket file is its owner's to remove."""
        with self._lock:  # type: ignore[attr-defined]  # the base class's
            if self._forkserver_alive_fd is not None:
                os.close(self._forkserver_alive_fd)
            self._forkserver_address = None
            self._forkserver_alive_fd = None
            self._forkserver_pid = None


class ServedProcess(BaseProcess):
    """A process forked by a given `JobForkServer` (multiprocessing's forkserver process)."""

    _start_method = "forkserver"

    def __init__(self, server: JobForkServer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._server = server

    def _Popen(self, process_obj: BaseProcess) -> _ServedPopen:
        return _ServedPopen(process_obj, self._server)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled for the child without the server: it holds a lock and is the parent's."""
        state = dict(self.__dict__)
        del state["_server"]
        return state


class _ServedPopen(popen_forkserver.Popen):
    """multiprocessing's forkserver `Popen`, asking `server` for the child."""

    _fds: list[int]  # the base class's: fds to pass to the child

    def __init__(self, process_obj: BaseProcess, server: JobForkServer) -> None:
        self._server = server
        super().__init__(process_obj)

    def _launch(self, process_obj: BaseProcess) -> None:
        # popen_forkserver.Popen._launch of Python 3.11, with `self._server` for its module's.
        prep_data = spawn.get_preparation_data(process_obj._name)  # type: ignore[attr-defined]
        buf = io.BytesIO()
        set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            set_spawning_popen(None)
        while True:
            try:
                self._ask_for_child(buf)
                return
            except (EOFError, OSError):
                # An inherited forkserver that is gone refuses the connection; a dying one
                # (SIGKILL frees its memory before its socket closes) breaks the sending of
                # the fds or the data, or never sends the pid. Once, ask one of our own.
                if not self._server.inherited:
                    raise
                self._server.replace_inherited()

    def _ask_for_child(self, buf: io.BytesIO) -> None:
        """Send the pickled process to the forkserver; the child's pid, sentinel and pipes."""
        self.sentinel, w = self._server.connect_to_new_process(self._fds)
        # A duplicate of the data pipe's write end: the child's sentinel of its parent.
        _parent_w = os.dup(w)
        close_fds = util.close_fds  # type: ignore[attr-defined]
        self.finalizer = util.Finalize(self, close_fds, (_parent_w, self.sentinel))
        try:
            with open(w, "wb", closefd=True) as f:
                f.write(buf.getbuffer())
            self.pid = read_signed(self.sentinel)
        except BaseException:
            self.finalizer()  # no child: its pipes close now
            raise


def _ended(pid: int) -> bool:
    """Whether our child ``pid`` has ended, leaving it to be reaped (`WNOWAIT`)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _warn(event: str, **fields: Any) -> None:
    """Log a warning. structlog is imported here, not at the top: `mlworker run` launches
    the forkserver before it loads structlog, whose import takes 0.15 s."""
    import structlog

    structlog.get_logger(__name__).warning(event, **fields)


def _findable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


__all__ = ["DEFAULT_PRELOAD", "JobForkServer", "ServedProcess"]
