"""One worker process, assembled: session, job runner, spool, delivery, loop.

`run_worker` is what `mlworker run` does in a single process, and what each
process forked by the supervisor does. Its exit status follows the BSD
convention systemd knows: 0 after a stop or a finished burst, 78
(EX_CONFIG) when the server refuses our login or the spool or cache
directory cannot be written, since restarting cannot fix either
(`RestartPreventExitStatus=78` in the units). Those directories are checked
first, by writing to them, so that a worker never claims a job whose result
it could not keep.

The main thread's session is cut short by the first stop signal (a claim,
a download, a retry's sleep: see `worker.cutoff`); the delivery thread's is
cut only when the last pass's grace has run out.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable

import structlog

from worker.api import API
from worker.backoff import Backoff
from worker.cache import DatasetCache
from worker.config import Settings
from worker.defaults import default_worker_id
from worker.delivery import Deliverer
from worker.errors import AuthenticationError, PermissionDeniedError, TransientError
from worker.execute import JobRunner
from worker.jobforkserver import JobForkServer
from worker.lifecycle import Shutdown
from worker.loop import JobLoop
from worker.outbox import Outbox
from worker.reporting import Heartbeat, Ready, Reporter, ServerError, Status, Stopping

_log = structlog.get_logger(__name__)

DELIVERY_RETRY_SECONDS = 10.0  # one delivery call's retries; the thread's backoff does the rest
FINAL_DELIVERY_SECONDS = 10.0  # at a stop, how long the last delivery pass may take


class BootError(Exception):
    """The worker cannot start as configured (exit 78, no restart)."""


def run_worker(
    settings: Settings,
    *,
    shutdown: Shutdown,
    reporter: Reporter,
    burst: bool = False,
    session_of: API | None = None,
    forkserver: JobForkServer | None = None,
) -> int:
    """Run one worker process until a stop signal (or, with `burst`, until no job is left).

    With `session_of` (the supervisor's login, inherited by the fork) the
    worker shares that session instead of logging in again; with `forkserver`
    (the supervisor's job forkserver, also inherited, or one the command
    launched first) its job processes.
    """
    worker_id = settings.worker_id or default_worker_id()
    log = _log.bind(worker_id=worker_id)
    if settings.startup_jitter > 0:
        shutdown.sleep(random.uniform(0, settings.startup_jitter))  # noqa: S311 - spreading a fleet
    runner = JobRunner(jobs_per_process=settings.jobs_per_process, forkserver=forkserver)
    try:
        outbox, cache = open_storage(settings)
        runner.launch()  # the job forkserver imports scikit-learn while we log in
        api = connect(settings, worker_id, shutdown, reporter, session_of=session_of)
    except BootError as exc:
        log.error("cannot start", reason=str(exc))
        return os.EX_CONFIG
    if api is None:  # stopped before the server ever answered
        return os.EX_OK
    deliverer = Deliverer(
        outbox,
        lambda interrupted: _session(  # a client of its own, on the same login
            settings,
            worker_id,
            retry_for=DELIVERY_RETRY_SECONDS,
            interrupted=interrupted,
            session_of=api,
        ),
        Backoff(settings.poll_min, settings.poll_max),
        idle_check=settings.poll_max,
        reporter=reporter,
    )
    with runner:
        deliverer.start()
        reporter.report(Ready())
        log.info("worker ready", host=settings.host, spool=str(settings.spool_dir))
        loop = JobLoop(
            settings=settings,
            worker_id=worker_id,
            api=api,
            runner=runner,
            results=deliverer,
            cache=cache,
            shutdown=shutdown,
            reporter=reporter,
        )
        try:
            loop.run(burst=burst)
        except PermissionDeniedError as exc:
            log.error("cannot start", reason=f"{settings.username!r} has no admin rights: {exc}")
            deliverer.stop(grace=0)
            return os.EX_CONFIG
        reporter.report(Stopping())
        _finish_delivery(deliverer, shutdown, burst=burst)
    api.close()
    log.info("worker stopped", results_waiting=deliverer.waiting())
    return os.EX_OK


def open_storage(settings: Settings) -> tuple[Outbox, DatasetCache]:
    """The spool and the dataset cache, each checked by a write; BootError saying which fails."""
    try:
        outbox = Outbox(settings.spool_dir)
        outbox.probe(1)
    except OSError as exc:
        raise BootError(
            f"the spool directory {settings.spool_dir} cannot be written ({_reason(exc)}): "
            "results could not be kept; make it a writable directory (spool_dir)"
        ) from None
    try:
        cache = DatasetCache(settings.cache_dir)
        cache.probe()
    except OSError as exc:
        raise BootError(
            f"the cache directory {settings.cache_dir} cannot be written ({_reason(exc)}): "
            "make it a writable directory (cache_dir)"
        ) from None
    return outbox, cache


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def connect(
    settings: Settings,
    worker_id: str,
    shutdown: Shutdown,
    reporter: Reporter,
    *,
    session_of: API | None = None,
) -> API | None:
    """Log in, probing at the idle maximum while the server is away.

    With `session_of`, share that client's session instead: nothing is sent.
    Returns None when a stop signal came first; raises BootError when the
    server refuses the account (wrong password, no admin rights).
    """
    while not shutdown.stopping:
        try:
            api = _session(
                settings,
                worker_id,
                retry_for=settings.poll_max,
                interrupted=lambda: shutdown.stopping,
                session_of=session_of,
            )
        except AuthenticationError as exc:
            raise BootError(
                f"the server refused the login of {settings.username!r}: {exc}"
            ) from exc
        except TransientError as exc:
            reporter.report(Status("server unreachable"))
            reporter.report(ServerError())
            _log.warning("server unreachable; probing again", error=str(exc))
            shutdown.sleep(settings.poll_max, lambda: reporter.report(Heartbeat()))
            continue
        return api
    return None


def _session(
    settings: Settings,
    worker_id: str,
    *,
    retry_for: float,
    interrupted: Callable[[], bool],
    session_of: API | None = None,
) -> API:
    return API(
        settings.username,
        settings.password.reveal(),
        settings.host,
        timeout=(3.05, settings.request_timeout),
        retry_for=retry_for,
        worker_id=worker_id,
        interrupted=interrupted,
        session_of=session_of,
    )


def _finish_delivery(deliverer: Deliverer, shutdown: Shutdown, *, burst: bool) -> None:
    """A burst delivers everything (until a stop signal); a stop tries once, briefly."""
    if burst:
        while not deliverer.wait_drained(timeout=1.0):
            if shutdown.stopping:
                break
    deliverer.stop(grace=FINAL_DELIVERY_SECONDS)
