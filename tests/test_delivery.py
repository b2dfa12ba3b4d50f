"""worker.delivery in-process: a result the spool refuses is held, sent from memory, never lost.

The spool is a real `Outbox` on disk whose writes fail while `full` is set
(as ENOSPC would make them); the server is `RecordingAPI` from test_outbox.
"""

from __future__ import annotations

import errno
from pathlib import Path

from structlog.testing import capture_logs
from test_outbox import RecordingAPI, made, result

from worker.backoff import Backoff
from worker.delivery import Deliverer
from worker.errors import TransientError
from worker.outbox import Entry, Outbox
from worker.result import Result


class FullOutbox(Outbox):
    """An outbox on a disk that is full while ``full`` is true."""

    full = True

    def put(self, result: Result) -> Entry:
        """Refuse like a full disk, or store."""
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().put(result)

    def probe(self, size: int) -> None:
        """Refuse like a full disk, or write."""
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        super().probe(size)


def deliverer(outbox: Outbox, api: RecordingAPI) -> Deliverer:
    """A delivery thread on ``outbox`` whose session is ``api``."""
    return Deliverer(outbox, lambda _interrupted: api, Backoff(0.01, 0.05), idle_check=0.05)


def test_a_result_the_spool_refuses_is_sent_from_memory(tmp_path: Path) -> None:
    """ENOSPC on put: the result goes out from memory and the spool must take it again first."""
    outbox, api = FullOutbox(tmp_path), RecordingAPI()
    thread = deliverer(outbox, api)
    thread.put(made(5, result(5), [("p.png", b"png")]))
    assert thread.waiting() == 1
    assert not thread.writable()
    thread.start()
    assert thread.wait_drained(timeout=10)
    thread.stop(grace=5)
    assert [(job, pictures) for job, _, pictures in api.calls] == [(5, [b"png"])]
    assert not thread.writable()  # delivered, but the spool still takes no write
    outbox.full = False
    assert thread.writable()
    assert outbox.count() == 0


def test_a_held_result_goes_to_the_spool_once_it_has_room(tmp_path: Path) -> None:
    """Server away and disk full: the result stays in memory, then lands in the spool."""
    outbox = FullOutbox(tmp_path)
    api = RecordingAPI({7: TransientError("connection refused")})
    thread = deliverer(outbox, api)
    thread.put(made(7, result(7)))
    thread.start()
    assert not thread.wait_drained(timeout=0.5)
    outbox.full = False
    api.answers.pop(7)
    assert thread.wait_drained(timeout=10)
    thread.stop(grace=5)
    assert [job for job, _, _ in api.calls][-1] == 7
    assert outbox.count() == 0


def test_a_result_still_held_at_the_stop_is_logged_as_lost(tmp_path: Path) -> None:
    """Neither disk nor server takes it before the stop: its job id is logged as lost."""
    outbox = FullOutbox(tmp_path)
    thread = deliverer(outbox, RecordingAPI({9: TransientError("connection refused")}))
    thread.put(made(9, result(9)))
    thread.start()
    with capture_logs() as logs:
        thread.stop(grace=1)
    (lost,) = [e for e in logs if e["event"].startswith("results lost")]
    assert lost["job_ids"] == [9]
