"""How worker processes forked by the supervisor report to it: lines on a pipe.

systemd takes notifications from the unit's main process only, so each
worker writes what it would have told systemd as one short line (well under
PIPE_BUF, hence atomic even with several writers) and the supervisor, which
reads them all, speaks for the machine.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from worker.reporting import EVENT_TYPES, Event, Heartbeat, Status

HEARTBEAT_EVERY = 1.0  # seconds: a worker's heartbeats are thinned to this rate
STATUS_LIMIT = 300  # characters of a status line that cross the pipe
_BY_NAME = {cls.__name__: cls for cls in EVENT_TYPES}


@dataclass(frozen=True)
class Report:
    """One line from a worker: its slot and its event."""

    slot: int
    event: Event


def encode(slot: int, event: Event) -> bytes:
    """One line for the pipe: ``{"slot": 2, "event": "Status", "data": {"text": "idle"}}``."""
    message = {"slot": slot, "event": type(event).__name__, "data": dataclasses.asdict(event)}
    # Cut before the newline: a cut line is dropped by the reader, not merged with the next.
    return json.dumps(message).encode()[:4000] + b"\n"


def decode(line: bytes) -> Report | None:
    """The report of one line, or None for a line that is cut, unknown or of the wrong types."""
    try:
        message = json.loads(line)
        cls = _BY_NAME[message["event"]]
        data = message["data"]
        slot = message["slot"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(slot, int) or not isinstance(data, Mapping) or not _typed(cls, data):
        return None
    return Report(slot, cls(**data))


def _typed(cls: type[Event], data: Mapping[str, Any]) -> bool:
    """Whether ``data`` holds exactly the fields of ``cls``, each of its declared type."""
    hints = typing.get_type_hints(cls)
    if set(data) != set(hints):
        return False
    for name, kind in hints.items():
        value = data[name]
        allowed = (int, float) if kind is float else kind
        if isinstance(value, bool) or not isinstance(value, allowed):
            return False
    return True


class PipeReporter:
    """The `Reporter` of a forked worker: writes its events to the supervisor's pipe."""

    def __init__(self, slot: int, fd: int) -> None:
        self._slot = slot
        self._fd = fd
        self._last_beat = 0.0
        self._orphaned = False

    def report(self, event: Event) -> None:
        """One line per event; heartbeats at most once a second, status lines clipped."""
        if isinstance(event, Heartbeat):
            now = time.monotonic()
            if now - self._last_beat < HEARTBEAT_EVERY:
                return
            self._last_beat = now
        elif isinstance(event, Status):
            event = Status(event.text[:STATUS_LIMIT])
        try:
            os.write(self._fd, encode(self._slot, event))
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
            report = decode(line)
            if report is not None:  # else a line cut by a dying writer: nothing to act on
                yield report
