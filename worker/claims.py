"""Asking for the next job: a long poll where the server holds claims, back-off where not.

A server that holds claims (it answers ``X-Long-Poll: <seconds>``, see the protocol
document) keeps the request open until a job comes, so an idle worker learns of a new job
at once and asks about once per wait instead of once per back-off step. Each wait is drawn
from [3/4, 1] of ``long_poll`` so a fleet started together does not reconnect in step.

A server that answers without that header, or answers "no job" well before the wait it
granted (it is stopping, or a proxy cut the request), gets the jittered back-off of
before: detection is by the header, and the time taken guards against a server that
claims to hold but does not. A long poll cut by a connection error is retried by the
transport at once (one reconnect), so it costs no job and no extra wait.

The request runs in a helper thread while the loop's thread waits on it, checking for a
stop signal every :data:`STOP_CHECK` seconds: SIGTERM acts within a second, not at the end
of the wait. The abandoned request dies with the process; the server notices the closed
connection and gives back a job it claimed in that instant.

While a job draws its pictures, :class:`ClaimAhead` claims the next one in a thread, so
that a stream of small jobs does not pay a round trip between each two: see its docstring
for why no earlier.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from worker.api import Claim
from worker.backoff import Backoff
from worker.lifecycle import HEARTBEAT, Shutdown
from worker.seams import JobServer

_log = structlog.get_logger(__name__)

STOP_CHECK = 1.0  # seconds between looks at the stop signals while a long poll is open
JITTER = 0.25  # a wait is drawn from [(1 - JITTER) * long_poll, long_poll]
HELD_ENOUGH = 0.5  # an empty answer after less than this share of the wait was not held


@dataclass
class _Answer:
    """What one claim made ahead got, once its thread is done (None: it failed)."""

    claim: Claim | None = None


class ClaimAhead:
    """The next job, claimed in a thread while the current one draws its pictures.

    A claim is a round trip to the server (20 to 40 ms on a busy machine, as
    long as a small job's fit); made while the job process draws, it costs the
    loop nothing. It is made no earlier than that on purpose: a job claimed
    ahead is leased to this worker and waits for it, and a job's fit may last
    hours, where its pictures take milliseconds (Celery's prefetch problem,
    bounded). One claim at a time, never held open (no long poll); a failed or
    empty one is forgotten and the loop claims as it always does, so the
    errors are handled in one place.
    """

    def __init__(self, api: JobServer) -> None:
        self.api = api
        self._asking: tuple[threading.Thread, _Answer] | None = None

    def start(self) -> None:
        """Claim the next job in a thread, unless a claim made ahead is still to be taken."""
        if self._asking is not None:
            return
        answer = _Answer()
        thread = threading.Thread(target=self._claim, args=(answer,), name="claim-ahead")
        thread.daemon = True
        self._asking = thread, answer
        thread.start()

    def _claim(self, answer: _Answer) -> None:
        try:
            answer.claim = self.api.claim_job(details=True)
        except Exception as exc:  # the loop's own claim meets it again and deals with it
            _log.info("claiming ahead failed; claiming after the job", error=str(exc))

    def take(self, shutdown: Shutdown, heartbeat: Callable[[], None]) -> Claim | None:
        """The job claimed ahead, waiting for the answer; None if none was claimed.

        Gives up waiting only on a second stop signal (abort): a job the
        server handed out meanwhile then goes back to pending with its lease.
        """
        asking, self._asking = self._asking, None
        if asking is None:
            return None
        thread, answer = asking
        while thread.is_alive():
            thread.join(STOP_CHECK)
            heartbeat()
            if shutdown.aborting:
                _log.warning("aborting; leaving a job claimed ahead to its lease")
                return None
        claim = answer.claim
        return claim if claim is not None and claim.job is not None else None


class Claimer:
    """Claims jobs for one loop; says how long to pause after an empty answer."""

    def __init__(
        self, api: JobServer, shutdown: Shutdown, heartbeat: Callable[[], None], *,
        long_poll: float, idle: Backoff,
    ) -> None:  # fmt: skip
        self.api = api
        self.shutdown = shutdown
        self.heartbeat = heartbeat
        self.long_poll = long_poll
        self.idle = idle
        self._held = False  # the last empty answer came after a real wait
        self._idle = False  # "waiting for a job" is logged once per idle spell

    def claim(self, *, burst: bool = False) -> Claim:
        """A newly claimed job with its details if the server sent them, or no job.

        No job when none came or a stop signal came first. Raises the API's
        errors, as :meth:`API.claim_job` does.
        """
        if burst or self.long_poll <= 0:
            self._held = False
            return self.api.claim_job(details=True)
        wait = random.uniform((1 - JITTER) * self.long_poll, self.long_poll)  # noqa: S311
        if not self._idle:
            _log.info("waiting for a job", long_poll=round(wait, 1))
            self._idle = True
        started = time.monotonic()
        claim = self._interruptible(lambda: self.api.claim_job(wait, details=True))
        if claim is None:  # a stop signal: the request is left to die with the process
            self._held = False
            return Claim(None, None)
        took = time.monotonic() - started
        self._held = claim.held is not None and took >= HELD_ENOUGH * min(claim.held, wait)
        if claim.job is None and claim.held is not None and not self._held:
            _log.info("the server answered a long poll early", held=claim.held, took=round(took, 3))
        return claim

    def pause(self) -> float:
        """Seconds to wait before the next claim after an empty answer."""
        return 0.0 if self._held else self.idle.next()

    def reset(self) -> None:
        """A job came: the next empty answer starts the back-off from its shortest wait."""
        self.idle.reset()
        self._idle = False

    def _interruptible(self, call: Callable[[], Claim]) -> Claim | None:
        """``call()`` in a helper thread; None when a stop signal comes before its answer."""
        outcome: dict[str, Any] = {}
        done = threading.Event()

        def run() -> None:
            try:
                outcome["claim"] = call()
            except BaseException as exc:  # handed to the loop's thread, raised there
                outcome["error"] = exc
            finally:
                done.set()

        threading.Thread(target=run, name="long-poll", daemon=True).start()
        beat = time.monotonic()
        while not done.wait(STOP_CHECK):
            if self.shutdown.stopping:
                _log.info("stop signal during a long poll; leaving it")
                return None
            if time.monotonic() - beat >= HEARTBEAT:
                self.heartbeat()
                beat = time.monotonic()
        if "error" in outcome:
            raise outcome["error"]
        claim: Claim = outcome["claim"]
        return claim
