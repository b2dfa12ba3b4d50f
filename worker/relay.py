"""How worker processes forked by the supervisor report to it: lines on a pipe.

systemd takes notifications from the unit's main process only, so each
worker writes what it would have told systemd as one short line (well under
PIPE_BUF, hence atomic even with several writers) and the supervisor, which
reads them all, speaks for the machine.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

HEARTBEAT_EVERY = 1.0  # seconds: a worker's heartbeats are thinned to this rate


@dataclass(frozen=True)
class Report:
    """One line from a worker: its slot, what kind of news, and the details."""

    slot: int
    kind: str  # ready, status, heartbeat, job_finished, server_error, stopping
    data: dict[str, Any]


class PipeReporter:
    """The `Reporter` of a forked worker: writes its news to the supervisor's pipe."""

    def __init__(self, slot: int, fd: int) -> None:
        self._slot = slot
        self._fd = fd
        self._last_beat = 0.0
        self._orphaned = False

    def _send(self, kind: str, **data: Any) -> None:
        # Cut before the newline: a cut line is dropped by the reader, not merged with the next.
        line = json.dumps({"slot": self._slot, "kind": kind, "data": data}).encode()[:4000]
        try:
            os.write(self._fd, line + b"\n")
        except BrokenPipeError:
            self._orphan()
        except OSError:
            return

    def _orphan(self) -> None:
        """The supervisor died (killed outright): stop as if it had passed on a stop signal.

        Heartbeats come at least every few seconds, so an orphaned worker notices soon,
        finishes its running job, delivers, and exits, instead of claiming jobs unwatched.
        """
        if not self._orphaned:
            self._orphaned = True
            os.kill(os.getpid(), signal.SIGTERM)

    def ready(self) -> None:
        """Logged in."""
        self._send("ready")

    def status(self, text: str) -> None:
        """What this worker does now."""
        self._send("status", text=text[:300])

    def heartbeat(self) -> None:
        """Alive (at most once a second)."""
        now = time.monotonic()
        if now - self._last_beat >= HEARTBEAT_EVERY:
            self._last_beat = now
            self._send("heartbeat")

    def job_finished(self, algorithm: str, outcome: str, seconds: float) -> None:
        """A job ended."""
        self._send("job_finished", algorithm=algorithm, outcome=outcome, seconds=seconds)

    def server_error(self) -> None:
        """A server call failed."""
        self._send("server_error")

    def stopping(self) -> None:
        """Shutting down."""
        self._send("stopping")


class ReportReader:
    """The supervisor's end: splits what arrives on the pipe into `Report`s."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = b""

    def read(self) -> Iterator[Report]:
        """The complete lines available now (call when the fd is readable)."""
        try:
            chunk = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            try:
                message = json.loads(line)
                yield Report(int(message["slot"]), str(message["kind"]), dict(message["data"]))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut by a dying writer: nothing to act on
