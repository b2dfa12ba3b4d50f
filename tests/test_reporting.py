"""Reporter events: typed, relayed over the supervisor's pipe, told to systemd, in-process."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker.relay import STATUS_LIMIT, PipeReporter, Report, ReportReader, decode, encode
from worker.reporting import (
    EVENT_TYPES,
    Event,
    Heartbeat,
    JobFinished,
    NotifyReporter,
    Ready,
    ServerError,
    Status,
    Stopping,
    Tee,
)
from worker.sdnotify import Notifier
from worker.testing import RecordingReporter

EVERY_EVENT: list[Event] = [
    Ready(),
    Status("job 3 knn on moons"),
    Heartbeat(),
    JobFinished("knn", "success", 1.5),
    ServerError(),
    Stopping(),
]


def test_the_examples_cover_every_event_type() -> None:
    """The events below are one of each type the relay knows."""
    assert [type(event) for event in EVERY_EVENT] == list(EVENT_TYPES)


@pytest.mark.parametrize("event", EVERY_EVENT, ids=lambda e: type(e).__name__)
def test_every_event_crosses_the_pipe_unchanged(event: Event) -> None:
    """encode then decode gives back the slot and an equal event."""
    assert decode(encode(3, event)) == Report(3, event)


@pytest.mark.parametrize(
    "line",
    [
        b'{"slot": 1, "event": "Status", "data": {"text": "id',  # cut by a dying writer
        b'{"slot": 1, "event": "Reboot", "data": {}}',  # no such event
        b'{"slot": 1, "event": "Status", "data": {"text": 5}}',  # wrong type
        b'{"slot": 1, "event": "Status", "data": {}}',  # a field missing
        b'{"slot": 1, "event": "Ready", "data": {"now": true}}',  # a field too many
        b'{"slot": 1, "event": "JobFinished", "data": '
        b'{"algorithm": "knn", "outcome": "success", "seconds": true}}',  # a bool for a float
        b'{"slot": "1", "event": "Ready", "data": {}}',  # a slot that is no number
        b'{"slot": 1, "event": "__class__", "data": {}}',
        b"[]",
    ],
)
def test_a_malformed_line_is_dropped(line: bytes) -> None:
    """Whatever a line holds, a bad one decodes to None and never raises."""
    assert decode(line) is None


def test_an_int_is_taken_for_a_float_field() -> None:
    """JSON writes 2.0 as 2.0 but another writer may send 2: still JobFinished."""
    line = b'{"slot": 0, "event": "JobFinished", "data": '
    line += b'{"algorithm": "knn", "outcome": "timeout", "seconds": 2}}'
    assert decode(line) == Report(0, JobFinished("knn", "timeout", 2))


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    """A pipe whose read end does not block."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    yield read_fd, write_fd
    os.close(read_fd)
    os.close(write_fd)


def test_an_overlong_report_is_dropped_alone(pipe: tuple[int, int]) -> None:
    """A report cut to the pipe's atomic size is dropped; the next report still arrives."""
    read_fd, write_fd = pipe
    reporter = PipeReporter(2, write_fd)
    reporter.report(JobFinished("x" * 5000, "success", 1.0))
    reporter.report(Status("idle"))
    assert list(ReportReader(read_fd).read()) == [Report(2, Status("idle"))]


def test_the_pipe_reporter_thins_heartbeats_and_clips_status(pipe: tuple[int, int]) -> None:
    """Ten quick heartbeats cross as one; a long status line arrives cut to STATUS_LIMIT."""
    read_fd, write_fd = pipe
    reporter = PipeReporter(0, write_fd)
    for _ in range(10):
        reporter.report(Heartbeat())
    reporter.report(Status("s" * 1000))
    reports = list(ReportReader(read_fd).read())
    assert reports == [Report(0, Heartbeat()), Report(0, Status("s" * STATUS_LIMIT))]


def test_tee_tells_each_reporter_in_order() -> None:
    """Every event reaches every reporter of a Tee, in the order sent."""
    first, second = RecordingReporter(), RecordingReporter()
    tee = Tee(first, second)
    for event in EVERY_EVENT:
        tee.report(event)
    assert first.events == second.events == EVERY_EVENT


def test_the_notify_reporter_speaks_sd_notify(tmp_path: Path) -> None:
    """On a real datagram socket: READY=1, STATUS= once per change, WATCHDOG=1, STOPPING=1."""
    address = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(address)
        systemd.settimeout(5)
        reporter = NotifyReporter(Notifier(address, watchdog_period=10.0))
        for event in [Ready(), Status("idle"), Status("idle"), Heartbeat(), ServerError()]:
            reporter.report(event)
        reporter.report(Stopping())
        received = [systemd.recv(4096).decode() for _ in range(4)]
    assert received == ["READY=1", "STATUS=idle", "WATCHDOG=1", "STOPPING=1"]
