"""Waking workers that hold a long poll open (``POST jobs/request/`` with ``wait``).

One :class:`Hub` per server process, living on that process's event loop. A waiting
request costs an ``asyncio`` future in a queue: no thread, no database connection. Three
things wake waiters, oldest first, one per claimable job:

- a job becoming pending in this process (a submit, a lease swept back to pending):
  :func:`job_ready` hands the news to the loop once the transaction commits;
- on PostgreSQL, the same news from any process: :func:`job_ready` also sends
  ``NOTIFY mlworker_jobs`` in the transaction, and each process LISTENs on one connection;
- a fallback check, one for all of a process's waiters and only while some wait: is a job
  pending, or a lease expired? It also times a wake-up for the next lease to end. It is what
  carries a submit from one process to another on SQLite, so it runs often there
  (:data:`FALLBACK_SQLITE`) and rarely where NOTIFY does the work (:data:`FALLBACK_NOTIFY`).

A woken waiter claims in a thread (the ORM is sync); if another process got the job first it
goes back to the head of the queue, and after a successful claim it wakes the next waiter,
which claims the next job or finds none: a burst of submits drains without a wake per job.
So each submit ends exactly one long poll with that job; the others go on waiting.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models.signals import post_save
from django.utils import timezone

from server.models import Job

log = logging.getLogger(__name__)
T = TypeVar("T")

CHANNEL = "mlworker_jobs"
FALLBACK_SQLITE = 0.5  # seconds between checks while someone waits (cross-process wake-ups)
FALLBACK_NOTIFY = 5.0  # seconds between checks where NOTIFY carries the wake-ups
RELISTEN = 2.0  # seconds before a lost LISTEN connection is opened again


class Hub:
    """The waiters of one process and what wakes them."""

    def __init__(self) -> None:
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._poked = asyncio.Event()
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wakeup-db")
        self.closed = False

    @property
    def waiting(self) -> int:
        """How many requests wait here now."""
        return sum(not waiter.done() for waiter in self._waiters)

    async def wait(self, timeout: float, *, first: bool = False) -> bool:
        """Wait up to ``timeout`` s to be woken; True when woken (a job may be claimable).

        ``first`` puts the waiter at the head of the queue (it was woken, found nothing,
        and keeps its turn).
        """
        self._start()
        if self.closed:
            return False
        waiter = asyncio.get_running_loop().create_future()
        (self._waiters.appendleft if first else self._waiters.append)(waiter)
        self._poked.set()  # the checker sleeps while nobody waits
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            return False
        except asyncio.CancelledError:  # the client went away
            if waiter.done() and not waiter.cancelled():
                self.wake()  # it was woken for a job: pass the turn on
            raise
        finally:
            if not waiter.done():
                waiter.cancel()  # dropped from the queue lazily
        return not self.closed

    def wake(self, count: int = 1) -> None:
        """Wake up to ``count`` waiters, oldest first (call on the hub's loop)."""
        while count > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                count -= 1

    def wake_soon(self, count: int = 1) -> None:
        """:meth:`wake` from any thread (a sync view's commit); nothing before any wait."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.wake, count)

    def close(self) -> None:
        """The server is stopping: end every long poll now and hold no new one."""
        self.closed = True
        self.wake(len(self._waiters))
        for task in self._tasks:
            task.cancel()

    def close_soon(self) -> None:
        """:meth:`close` from a signal handler or another thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.close)

    async def in_db_thread(self, call: Callable[[], T]) -> T:
        """Run ``call`` (ORM work) in the hub's own thread, which keeps one connection.

        Claims and checks of all the process's long polls go through it, one at a time:
        SQLite runs them one at a time anyway, and no waiter holds a connection.
        """
        return await asyncio.get_running_loop().run_in_executor(self._db, _guarded(call))

    def _start(self) -> None:
        """Start the checker (and the listener on PostgreSQL) on the first wait."""
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._tasks.append(self._loop.create_task(self._check_forever()))
        if connection.vendor == "postgresql":
            self._tasks.append(self._loop.create_task(self._listen_forever()))

    async def _check_forever(self) -> None:
        interval = settings.LONG_POLL_CHECK or (
            FALLBACK_NOTIFY if connection.vendor == "postgresql" else FALLBACK_SQLITE
        )
        while True:
            if not self.waiting:
                self._poked.clear()
                await self._poked.wait()
            try:
                claimable, next_end = await self.in_db_thread(_claimable)
            except Exception:
                log.exception("the wake-up check failed; trying again")
                claimable, next_end = False, None
            if claimable:
                self.wake()
            await asyncio.sleep(_until(next_end, interval))

    async def _listen_forever(self) -> None:
        while True:
            try:
                await self._listen()
            except Exception as error:  # the database restarted, the network hiccuped
                log.warning("LISTEN %s lost (%s); again in %s s", CHANNEL, error, RELISTEN)
            await asyncio.sleep(RELISTEN)

    async def _listen(self) -> None:
        """One LISTEN connection for the whole process; each NOTIFY wakes one waiter."""
        import psycopg  # only on PostgreSQL, where Django needs it anyway

        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        async with await psycopg.AsyncConnection.connect(**params, autocommit=True) as listener:
            await listener.execute(f"LISTEN {CHANNEL}")
            self.wake()  # whatever was submitted while we were not listening
            async for notify in listener.notifies():
                self.wake(int(notify.payload) if notify.payload.isdigit() else 1)


def _guarded(call: Callable[[], T]) -> Callable[[], T]:
    """``call``, dropping the thread's connection when the database failed under it."""

    def run() -> T:
        try:
            return call()
        except DatabaseError:
            connection.close()
            raise

    return run


def _claimable() -> tuple[bool, datetime.datetime | None]:
    """Whether a claim would find a job now, and when the next lease ends."""
    if Job.objects.filter(status="pending").exists():
        return True, None
    running = Job.objects.filter(status="running", lease_expires__isnull=False)
    next_end = running.order_by("lease_expires").values_list("lease_expires", flat=True).first()
    return next_end is not None and next_end <= timezone.now(), next_end


def _until(next_end: datetime.datetime | None, interval: float) -> float:
    """Seconds to the next check: the interval, or sooner when a lease ends first."""
    if next_end is None:
        return interval
    left = (next_end - timezone.now()).total_seconds()
    return min(interval, max(left, 0.0) + 0.05)


_hub: Hub | None = None
_hub_lock = threading.Lock()


def hub() -> Hub:
    """This process's hub."""
    global _hub  # one per process, made on first use
    with _hub_lock:
        if _hub is None:
            _hub = Hub()
        return _hub


def close_soon() -> None:
    """End this process's long polls: safe in a signal handler (takes no lock)."""
    if _hub is not None:
        _hub.close_soon()


def job_ready(count: int = 1) -> None:
    """``count`` jobs became claimable: wake as many waiters once the transaction commits."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # delivered at commit, to every process
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, str(count)])
    else:
        transaction.on_commit(lambda: hub().wake_soon(count))


def _job_saved(sender: type[Job], instance: Job, **_: Any) -> None:
    if instance.status == "pending":
        job_ready()


def connect_signals() -> None:
    """Wake waiters whenever a job is saved as pending (submit, admin, demo data)."""
    post_save.connect(_job_saved, sender=Job, dispatch_uid="mlworker-wakeup")
