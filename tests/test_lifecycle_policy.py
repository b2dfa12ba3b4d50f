"""Small policies of the daemon, in-process: two-stage stop, backoff, restart of a dead worker.

The end-to-end tests (test_daemon_signals, test_supervisor) send real
signals to real processes; these prove the rules in milliseconds.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from worker.backoff import Backoff
from worker.lifecycle import STOP_SIGNALS, Shutdown
from worker.supervisor import RESTART_MAX, RESTART_MIN, STABLE_AFTER, Slot


def test_the_first_stop_stops_claiming_and_the_second_aborts() -> None:
    """Stage one sets `stopping` only; stage two sets `aborting` too."""
    shutdown = Shutdown()
    assert not shutdown.stopping
    shutdown.request()
    assert shutdown.stopping
    assert not shutdown.aborting
    shutdown.request()
    assert shutdown.aborting


@pytest.fixture
def own_handlers() -> Iterator[None]:
    """Restore SIGTERM's and SIGINT's handlers after a test installs its own."""
    saved = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.mark.usefixtures("own_handlers")
def test_real_signals_are_counted_as_stop_stages() -> None:
    """SIGTERM then SIGINT to this very process: recorded by the handler, read as two stages."""
    shutdown = Shutdown()
    shutdown.install()
    os.kill(os.getpid(), signal.SIGTERM)
    assert shutdown.stopping
    assert not shutdown.aborting
    os.kill(os.getpid(), signal.SIGINT)
    assert shutdown.aborting


def test_a_stop_ends_a_long_sleep_at_once() -> None:
    """A stop from another thread wakes a 30 s sleep within a fraction of a second."""
    shutdown = Shutdown()
    timer = threading.Timer(0.05, shutdown.request)
    timer.start()
    started = time.monotonic()
    try:
        shutdown.sleep(30)
    finally:
        timer.cancel()
    assert time.monotonic() - started < 10
    assert shutdown.stopping


def test_a_sleep_beats_the_heartbeat_and_lasts_its_time() -> None:
    """A short sleep with no signal lasts its seconds and calls the heartbeat."""
    beats: list[float] = []
    started = time.monotonic()
    Shutdown().sleep(0.05, lambda: beats.append(time.monotonic()))
    assert time.monotonic() - started >= 0.05
    assert beats


def test_backoff_draws_grow_to_the_ceiling_with_full_jitter_and_reset() -> None:
    """Draw n lies in [low, min(high, low * 2**n)]; reset() brings back the shortest window."""
    backoff = Backoff(1.0, 8.0)
    for ceiling in (1, 2, 4, 8, 8, 8):
        assert 1.0 <= backoff.next() <= ceiling
    backoff.reset()
    assert backoff.next() == 1.0


def test_backoff_spreads_a_fleet() -> None:
    """Many draws of one window are not all the same (full jitter, not lock-step)."""
    backoff = Backoff(1.0, 64.0)
    for _ in range(5):
        backoff.next()
    assert len({round(backoff.next(), 6) for _ in range(20)}) > 10


@pytest.mark.parametrize(("low", "high"), [(0, 1), (2, 1), (-1, 5)])
def test_backoff_refuses_a_window_that_makes_no_sense(low: float, high: float) -> None:
    """0 < low <= high, else ValueError naming both."""
    with pytest.raises(ValueError, match=f"low={low}, high={high}"):
        Backoff(low, high)


def test_a_crash_looping_worker_waits_twice_as_long_each_time_up_to_the_maximum() -> None:
    """Quick deaths: restart after 1, 2, 4 ... seconds, never more than RESTART_MAX."""
    slot = Slot(0, started=100.0)
    delays = [slot.schedule_restart(now=100.5) for _ in range(9)]
    assert delays[:4] == [RESTART_MIN, 2 * RESTART_MIN, 4 * RESTART_MIN, 8 * RESTART_MIN]
    assert max(delays) == RESTART_MAX == delays[-1]
    assert slot.restart_at == 100.5 + RESTART_MAX


def test_a_worker_that_ran_long_enough_restarts_at_once_again() -> None:
    """After a stable run (STABLE_AFTER seconds), the next death waits the minimum again."""
    slot = Slot(0, started=0.0, failures=6)
    assert slot.schedule_restart(now=STABLE_AFTER) == RESTART_MIN
    assert slot.failures == 0
