"""A real `mlworker run` with a spool that fails it: full, read-only, missing, or holding junk.

A result that ran is never lost: when the spool cannot take it, it is
delivered from memory and no job is claimed until the spool takes writes
again. A spool that cannot be written at start is a configuration error
(exit 78, one sentence). An entry that cannot be read is set aside and the
rest are delivered. The small and read-only spools are real tmpfs mounts,
so those tests need root (they are skipped without it).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_helpers import DEADLINE, WORKER_PASSWORD, WORKER_USER, Worker, start_worker
from fault_server import FaultServer, Reply
from server_helpers import wait_for
from test_worker_hostile import GOOD_INFO, POINTS, good, updates

from worker.outbox import Outbox
from worker.result import Result

pytestmark = pytest.mark.slow

NOT_CLAIMING = "the spool cannot take a result; claiming no job until it can"


@pytest.fixture
def server() -> Iterator[FaultServer]:
    """A server with one good dataset and no job to hand out until a test adds one."""
    with FaultServer(users={WORKER_USER: WORKER_PASSWORD}) as server:
        server.answer("POST", "/jobs/request/", Reply(body={"job": None}))
        server.answer("GET", "/datasets/", Reply(body={"1": GOOD_INFO}))
        server.answer("GET", "/datasets/1/points/", Reply(body=POINTS))
        yield server


def hand_out(server: FaultServer, job: int) -> None:
    """Make ``job`` (a good knn job) the answer to the next claim."""
    server.answer("GET", f"/jobs/{job}/", Reply(body=good(id=job)))
    server.fault("POST", "/jobs/request/", Reply(body={"job": job}))


def mount(*args: str) -> None:
    """Run ``mount`` with ``args``, failing the test on error."""
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture
def small_spool(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path/spool`` as a 256 KiB tmpfs (root only); unmounted at the end."""
    spool = tmp_path / "spool"
    spool.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small spool needs root")
    try:
        mount("-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(spool))
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc.stderr.decode().strip()}")
    yield spool
    subprocess.run(["umount", "-l", str(spool)], check=False)


def claims(server: FaultServer) -> int:
    """How many claims the server received."""
    return len(server.calls("POST", "/jobs/request/"))


def wait_not_claiming(worker: Worker, server: FaultServer) -> None:
    """Wait until the worker has twice declined to claim, and check it claimed nothing between."""
    wait_for(lambda: worker.events(NOT_CLAIMING), "the worker to stop claiming", deadline=DEADLINE)
    before = claims(server)
    wait_for(
        lambda: len(worker.events(NOT_CLAIMING)) >= 2, "a second declined claim", deadline=DEADLINE
    )
    assert claims(server) == before


def test_a_full_spool_delivers_from_memory_and_claims_nothing_until_it_has_room(
    server: FaultServer, small_spool: Path, tmp_path: Path
) -> None:
    """ENOSPC: the result reaches the server anyway; claims resume once space is freed."""
    with start_worker(tmp_path, server.url, burst=False) as worker:
        wait_for(lambda: worker.events("worker ready"), "the worker to start", deadline=DEADLINE)
        filler = small_spool / "filler"
        with filler.open("wb") as out:  # leaves a few KiB: the result's pictures do not fit
            while os.statvfs(small_spool).f_bavail > 1:
                out.write(bytes(4096))
                out.flush()
        hand_out(server, 301)
        wait_for(
            lambda: worker.events("result delivered", job_id=301, held=True),
            "job 301's result",
            deadline=DEADLINE,
        )
        assert updates(server)[301]["success"] == "true"
        wait_not_claiming(worker, server)
        filler.unlink()
        hand_out(server, 302)
        wait_for(
            lambda: 302 in updates(server),
            "the result of job 302, after room was made",
            deadline=DEADLINE,
        )
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0, worker.tail()
    assert worker.events("the spool takes writes again")


def test_a_read_only_spool_delivers_from_memory_and_the_worker_lives_on(
    server: FaultServer, small_spool: Path, tmp_path: Path
) -> None:
    """EROFS after start: the result is delivered from memory; claims resume once writable."""
    with start_worker(tmp_path, server.url, burst=False) as worker:
        wait_for(lambda: worker.events("worker ready"), "the worker to start", deadline=DEADLINE)
        mount("-o", "remount,ro", str(small_spool))
        hand_out(server, 311)
        wait_for(
            lambda: worker.events("result delivered", job_id=311, held=True),
            "job 311's result",
            deadline=DEADLINE,
        )
        assert updates(server)[311]["success"] == "true"
        wait_not_claiming(worker, server)
        mount("-o", "remount,rw", str(small_spool))
        hand_out(server, 312)
        wait_for(lambda: 312 in updates(server), "the result of job 312", deadline=DEADLINE)
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0, worker.tail()


def test_a_read_only_spool_at_start_is_a_configuration_error(
    server: FaultServer, small_spool: Path, tmp_path: Path
) -> None:
    """A spool that cannot be written at start: exit 78 with one sentence, no traceback."""
    mount("-o", "remount,ro", str(small_spool))
    with start_worker(tmp_path, server.url) as worker:
        assert worker.wait() == 78, worker.tail()
    assert "Traceback" not in worker.output()
    (event,) = worker.events("cannot start")
    assert "cannot be written" in event["reason"]
    assert "spool_dir" in event["reason"]
    assert claims(server) == 0


def test_a_spool_that_cannot_exist_is_a_configuration_error(
    server: FaultServer, tmp_path: Path
) -> None:
    """A spool directory under a regular file: exit 78 with one sentence, no traceback."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file")
    with start_worker(tmp_path, server.url, "--spool-dir", str(blocker / "spool")) as worker:
        assert worker.wait() == 78, worker.tail()
    assert "Traceback" not in worker.output()
    (event,) = worker.events("cannot start")
    assert str(blocker / "spool") in event["reason"]


def test_an_entry_too_deep_to_read_is_set_aside_and_the_rest_delivered(
    server: FaultServer, tmp_path: Path
) -> None:
    """A result.json of 200,000 nested brackets is quarantined; the entry behind it is
    delivered, and the burst ends."""
    outbox = Outbox(tmp_path / "spool")
    deep = outbox.ready / f"{1:020d}-76-{'a' * 12}"
    deep.mkdir()
    (deep / "result.json").write_bytes(b"[" * 200_000 + b"]" * 200_000)
    outbox.put(Result.failure(77, "kept"))
    with start_worker(tmp_path, server.url) as worker:
        assert worker.wait(60) == 0, worker.tail()
    assert updates(server)[77]["message"] == "kept"
    assert [p.name for p in outbox.corrupt.iterdir() if p.is_dir()] == [deep.name]
    assert outbox.count() == 0
