"""The environment a job process starts with: one thread for BLAS/OpenMP, no secrets.

Its own module, light on imports, so that ``mlworker run`` can launch the job
forkserver (`worker.jobforkserver`) before it imports anything heavy: the
forkserver's own imports are the longest part of a worker's start.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from worker.threads import THREAD_VARIABLES

__all__ = ["NOTIFY_ENV_VARS", "PRIVATE_VARIABLES", "job_environment"]

#: The variables systemd sets for the notify protocol (`worker.sdnotify`), which job
#: processes must not see. Here, not there: sdnotify loads structlog.
NOTIFY_ENV_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")

#: Left out of the environment of job processes: systemd's notify protocol, the password
#: and every variable that says where a file holding it is.
PRIVATE_VARIABLES = (
    *NOTIFY_ENV_VARS,
    "MLWORKER_PASSWORD",
    "MLWORKER_PASSWORD_FILE",
    "CREDENTIALS_DIRECTORY",
)


@contextmanager
def job_environment() -> Iterator[None]:
    """Give processes started inside this block the environment of job processes.

    Job processes are forked from the forkserver, which inherits `os.environ`
    as it is when it starts; so the block changes it for that moment and then
    restores the worker's own values (other threads may glimpse the change).
    """
    changes: dict[str, str | None] = dict.fromkeys(THREAD_VARIABLES, "1")
    changes["MPLBACKEND"] = "Agg"  # pictures are files: never a window, even with a display
    changes.update(dict.fromkeys(PRIVATE_VARIABLES))
    saved = {name: os.environ.get(name) for name in changes}
    _set_environment(changes)
    try:
        yield
    finally:
        _set_environment(saved)


def _set_environment(values: Mapping[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
