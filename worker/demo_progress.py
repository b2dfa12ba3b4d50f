"""What `mlworker demo` shows while its workers run: the truth, as it happens.

Two sources, each for what it knows. The server knows which results have
landed (a job ``done`` or ``failed``); its ``running`` also counts jobs whose
results are still on their way from a worker, so it overstates the work in
progress. The workers' own JSON log knows which processes are ready and which
jobs they are running now ("job started" without "job finished").
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO

__all__ = ["Progress", "WorkerEvents"]

BAR_WIDTH = 30


class WorkerEvents:
    """The workers' log read so far: processes ready, jobs started and finished."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ready = 0
        self.started: set[int] = set()
        self.finished: set[int] = set()
        self._offset = 0

    @property
    def running(self) -> int:
        """Jobs a worker is running now."""
        return len(self.started - self.finished)

    def update(self) -> None:
        """Read the complete lines written since the last call."""
        try:
            with self.path.open("rb") as log:
                log.seek(self._offset)
                chunk = log.read()
        except FileNotFoundError:
            return
        end = chunk.rfind(b"\n") + 1  # a line still being written waits for the next call
        self._offset += end
        for line in chunk[:end].splitlines():
            self._take(line)

    def _take(self, line: bytes) -> None:
        try:
            record = json.loads(line)
        except ValueError:
            return  # not one of the workers' JSON lines
        if not isinstance(record, dict):
            return
        event, job = record.get("event"), record.get("job_id")
        if event == "worker ready":
            self.ready += 1
        elif event == "job started" and isinstance(job, int):
            self.started.add(job)
        elif event == "job finished" and isinstance(job, int):
            self.finished.add(job)


class Progress:
    """A progress bar redrawn in place on a terminal; a line per change elsewhere."""

    def __init__(self, total: int, processes: int, stream: IO[str]) -> None:
        self.total = total
        self.processes = processes
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self.last: tuple[int, ...] | None = None

    def show(self, landed: set[int], workers: WorkerEvents) -> None:
        """Draw the jobs whose results ``landed`` on the server, and what the workers do."""
        state = (len(landed), workers.ready, workers.running, len(workers.finished - landed))
        elapsed = time.monotonic() - self.started
        text = f"{_describe(self.total, self.processes, *state)} ({elapsed:.0f} s)"
        if self.tty:
            filled = BAR_WIDTH * len(landed) // self.total
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            self.stream.write(f"\r[{bar}] {text}  ")
        elif state != self.last:
            self.stream.write(text + "\n")
        self.last = state
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line."""
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _describe(
    total: int, processes: int, landed: int, ready: int, running: int, on_the_way: int
) -> str:
    """ "3/15 jobs done, 2 running, 1 result on its way to the server", or who is starting."""
    text = f"{landed}/{total} jobs done"
    if ready < processes and not running:
        return f"{text}; {ready} of {processes} worker processes ready"
    text += f", {running} running"
    if on_the_way:
        text += f", {on_the_way} result{'s' if on_the_way > 1 else ''} on the way to the server"
    return text
