"""The outbox: durable, atomic, replayed after restarts, delivered once across processes."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from worker.delivery import deliver_pending
from worker.errors import (
    APIError,
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    TransientError,
)
from worker.files import lock_file
from worker.outbox import Outbox
from worker.result import Picture, Result

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def result(n: int = 0) -> dict[str, Any]:
    """A successful job's update fields."""
    return {
        "score_test": 0.5 + n / 1000,
        "score_validation": 0.25,
        "labels_training": [0, 1, n],
        "labels_test": ["a", "b"],
        "labels_validation": [1.5],
        "extra_scores_test": {"f1_macro": 0.4},
        "message": f"result {n}",
    }


def made(
    job_id: int, fields: Mapping[str, Any], pictures: Sequence[tuple[str, bytes]] = ()
) -> Result:
    """A result of ``fields`` and ``(name, png)`` pictures, as the loop hands one over."""
    return Result.from_fields(job_id, fields, [Picture(name, png) for name, png in pictures])


def _listed(labels: Sequence[Any] | None) -> list[Any] | None:
    return None if labels is None else list(labels)


class RecordingAPI:
    """A stand-in for worker.api.API's update_job_details: records calls, answers as told."""

    def __init__(
        self,
        answers: Mapping[int, dict[str, Any] | APIError] | None = None,
        record: Path | None = None,
    ) -> None:
        self.answers = dict(answers or {})
        self.record = record
        self.calls: list[tuple[int, dict[str, Any], list[bytes]]] = []

    def update_job_details(
        self,
        job_id: int,
        score_test: float | None,
        score_validation: float | None,
        labels_training: Sequence[Any] | None,
        labels_test: Sequence[Any] | None,
        labels_validation: Sequence[Any] | None,
        extra_scores_test: Mapping[str, float] | None = None,
        extra_scores_validation: Mapping[str, float] | None = None,
        message: str | None = None,
        success: bool = True,
        pictures: Sequence[tuple[str, bytes]] | None = None,
    ) -> dict[str, Any]:
        sent = {
            "score_test": score_test,
            "score_validation": score_validation,
            "labels_training": _listed(labels_training),
            "labels_test": _listed(labels_test),
            "labels_validation": _listed(labels_validation),
            "extra_scores_test": extra_scores_test,
            "extra_scores_validation": extra_scores_validation,
            "message": message,
            "success": success,
        }
        self.calls.append((job_id, sent, [png for _, png in pictures or ()]))
        if self.record is not None:
            with open(self.record, "a", encoding="utf-8") as f:
                f.write(f"{job_id} {os.getpid()}\n")
                f.flush()
                os.fsync(f.fileno())
        answer = self.answers.get(job_id, {"success": True})
        if isinstance(answer, APIError):
            raise answer
        return answer


def test_put_then_claim_round_trip(tmp_path: Path) -> None:
    """An entry reads back exactly as written, pictures included, and done() removes it."""
    outbox = Outbox(tmp_path)
    entry = outbox.put(made(17, result(), [("confusion_matrix.png", PNG), ("regions.png", b"x")]))
    assert entry.job_id == 17
    assert outbox.count() == 1
    with outbox.claim(entry) as claim:
        assert claim is not None
        assert claim.job_id == 17
        assert claim.result.fields() == {**result(), "success": True}
        assert [p.name for p in claim.result.pictures] == ["confusion_matrix.png", "regions.png"]
        assert claim.result.pictures[0].png == PNG
        claim.done()
    assert outbox.count() == 0
    assert outbox.pending() == []
    assert list(outbox.tmp.iterdir()) == []


def test_entry_of_the_previous_format_is_still_delivered(tmp_path: Path) -> None:
    """A format-1 entry (pictures in a pictures/ folder), spooled before an upgrade, goes out."""
    outbox = Outbox(tmp_path)
    entry = outbox.put(made(8, result(8), [("p.png", PNG)]))
    (entry.path / "pictures").mkdir()
    (entry.path / "p.png").rename(entry.path / "pictures" / "p.png")
    _rewrite(entry, lambda document: document.update(format=1))

    api = RecordingAPI()
    report = deliver_pending(outbox, api)

    assert (report.delivered, report.quarantined, report.waiting) == (1, 0, 0)
    assert api.calls[0][2] == [PNG]


def test_failed_job_needs_no_scores(tmp_path: Path) -> None:
    """A failure result (success false, a message) needs no scores or labels."""
    outbox = Outbox(tmp_path)
    outbox.put(made(3, {"success": False, "message": "worker shut down"}, []))
    api = RecordingAPI()
    assert deliver_pending(outbox, api).delivered == 1
    ((job_id, sent, pictures),) = api.calls
    assert (job_id, sent["success"], sent["message"], sent["score_test"], pictures) == (
        3,
        False,
        "worker shut down",
        None,
        [],
    )


@pytest.mark.parametrize(
    ("fields", "pictures", "message"),
    [
        ({**result(), "scores": 1}, [], "unknown result fields ['scores']"),
        ({"message": "no labels"}, [], "a successful result needs score_test"),
        ({**result(), "score_test": float("nan")}, [], "'score_test' must be a finite number"),
        ({**result(), "success": "yes"}, [], "'success' must be true or false"),
        (result(), [("../escape.png", PNG)], "picture names must be unique plain file names"),
        (result(), [("a.png", PNG), ("a.png", PNG)], "picture names must be unique"),
    ],
)
def test_put_refuses_malformed_results(
    tmp_path: Path, fields: dict[str, Any], pictures: list[tuple[str, bytes]], message: str
) -> None:
    """A malformed result is refused before anything is written, with the reason."""
    outbox = Outbox(tmp_path)
    with pytest.raises(ValueError, match="job 5: ") as info:
        outbox.put(made(5, fields, pictures))
    assert message in str(info.value)
    assert outbox.count() == 0
    assert list(outbox.tmp.iterdir()) == []


WRITER = """
import sys
from worker.outbox import Outbox
from worker.result import Picture, Result
outbox = Outbox(sys.argv[1])
picture = bytes(range(256)) * 16384  # 4 MiB: each put spends its time writing
fields = {"success": False, "message": "x" * 1000}
n = 0
while True:
    n += 1
    pictures = [Picture("a.png", picture), Picture("b.png", picture)]
    outbox.put(Result.from_fields(n, fields, pictures))
"""


def test_kill_during_put_leaves_no_partial_entry(tmp_path: Path) -> None:
    """kill -9 in the middle of a put: ready/ holds only whole entries; the leftover is cleaned."""
    spool = tmp_path / "spool"
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(spool)])
    try:
        deadline = time.monotonic() + 60
        while True:  # freeze the writer until it is caught with a half-written entry in tmp/
            assert time.monotonic() < deadline, "never caught the writer mid-put"
            assert child.poll() is None, "writer died"
            os.kill(child.pid, signal.SIGSTOP)
            dirs = [p for p in spool.glob("*/*") if p.is_dir()]
            partial = [p for p in dirs if not (p / "result.json").exists()]
            if partial and len(dirs) >= 3:
                break
            os.kill(child.pid, signal.SIGCONT)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)

    outbox = Outbox(spool)  # a restart: cleans tmp/
    assert [p for p in outbox.tmp.iterdir() if p.is_dir()] == []
    assert list(outbox.tmp.iterdir()) == []
    entries = outbox.pending()
    assert len(entries) >= 2
    for entry in entries:
        with outbox.claim(entry) as claim:
            assert claim is not None, f"{entry.name} is not a whole entry"
            assert [len(p.png) for p in claim.result.pictures] == [4 * 1024 * 1024] * 2
    assert list(outbox.corrupt.iterdir()) == []


def test_replay_after_restart(tmp_path: Path) -> None:
    """Results spooled by one worker are delivered, oldest first, by the next one on that spool."""
    first = Outbox(tmp_path)
    for job_id in (9, 4, 7):
        first.put(made(job_id, result(job_id), [("p.png", PNG)]))
    del first

    restarted = Outbox(tmp_path)
    assert [e.job_id for e in restarted.pending()] == [9, 4, 7]
    api = RecordingAPI()
    report = deliver_pending(restarted, api)
    assert (report.delivered, report.waiting, report.error) == (3, 0, None)
    assert [(job_id, sent["labels_training"]) for job_id, sent, _ in api.calls] == [
        (9, [0, 1, 9]),
        (4, [0, 1, 4]),
        (7, [0, 1, 7]),
    ]
    assert all(pictures == [PNG] for _, _, pictures in api.calls)


def _deliver_in_child(spool: Path, record: Path, barrier: Any) -> None:
    barrier.wait(timeout=60)
    report = deliver_pending(Outbox(spool), RecordingAPI(record=record))
    assert report.error is None


def test_two_processes_never_deliver_the_same_entry(tmp_path: Path) -> None:
    """Two processes delivering one spool at the same time send every entry exactly once."""
    spool, record = tmp_path / "spool", tmp_path / "sent.txt"
    outbox = Outbox(spool)
    for job_id in range(1, 61):
        outbox.put(made(job_id, result(job_id), [("p.png", PNG)]))
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    children = [
        context.Process(target=_deliver_in_child, args=(spool, record, barrier)) for _ in range(2)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=120)
        assert child.exitcode == 0
    sent = [int(line.split()[0]) for line in record.read_text().splitlines()]
    assert sorted(sent) == list(range(1, 61))
    assert outbox.count() == 0


def test_claimed_entry_is_skipped_by_others(tmp_path: Path) -> None:
    """While one holder has an entry's lock, another claim gets None and delivery skips it."""
    outbox = Outbox(tmp_path)
    held = outbox.put(made(1, result(1), []))
    outbox.put(made(2, result(2), []))
    with outbox.claim(held) as claim:
        assert claim is not None
        with Outbox(tmp_path).claim(held) as other:
            assert other is None
        api = RecordingAPI()
        report = deliver_pending(Outbox(tmp_path), api)
    assert [job_id for job_id, _, _ in api.calls] == [2]
    assert (report.delivered, report.busy, report.waiting) == (1, 1, 1)


def test_leftovers_in_tmp_cleaned_unless_a_writer_holds_them(tmp_path: Path) -> None:
    """On start, tmp/ leftovers of dead writers go; one whose writer is alive stays."""
    outbox = Outbox(tmp_path)
    (outbox.tmp / "dead").mkdir()
    (outbox.tmp / "dead" / "result.json").write_text("{", encoding="utf-8")
    (outbox.tmp / "stale.lock").touch()
    (outbox.tmp / "alive").mkdir()
    fd = lock_file(outbox.tmp / "alive.lock", blocking=True)
    try:
        Outbox(tmp_path)
        assert sorted(p.name for p in outbox.tmp.iterdir()) == ["alive", "alive.lock"]
    finally:
        assert fd is not None
        os.close(fd)
    Outbox(tmp_path)
    assert list(outbox.tmp.iterdir()) == []


def test_corrupt_entries_moved_aside_and_reported(tmp_path: Path) -> None:
    """Unreadable or malformed entries go to corrupt/ with a reason and a log; good ones go out."""
    outbox = Outbox(tmp_path)
    good = outbox.put(made(1, result(1), [("p.png", PNG)]))
    damaged = {
        "badjson": (2, lambda e: (e.path / "result.json").write_text("{not json")),
        "nofields": (3, lambda e: _rewrite(e, lambda d: d.pop("fields"))),
        "wrongjob": (4, lambda e: _rewrite(e, lambda d: d.update(job_id=99))),
        "nopicture": (5, lambda e: (e.path / "p.png").unlink()),
        "badlabels": (6, lambda e: _rewrite(e, lambda d: d["fields"].pop("labels_test"))),
        "deep": (
            7,
            lambda e: (e.path / "result.json").write_bytes(b"[" * 200_000 + b"]" * 200_000),
        ),
        "listjob": (8, lambda e: _rewrite(e, lambda d: d.update(job_id=[8]))),
        "deepfields": (9, lambda e: _rewrite(e, lambda d: d["fields"].update(message=[[[["x"]]]]))),
    }
    names = {}
    for label, (job_id, damage) in damaged.items():
        entry = outbox.put(made(job_id, result(job_id), [("p.png", PNG)]))
        damage(entry)
        names[entry.name] = label
    (outbox.ready / "stray-file").write_text("?")

    api = RecordingAPI()
    with capture_logs() as logs:
        report = deliver_pending(outbox, api)
    assert [job_id for job_id, _, _ in api.calls] == [1]
    assert (report.delivered, report.waiting) == (1, 0)
    moved = sorted(p.name for p in outbox.corrupt.iterdir() if not p.name.endswith(".reason"))
    assert moved == sorted([*names, "stray-file"])
    reasons = {n: (outbox.corrupt / f"{n}.reason").read_text() for n in names}
    assert "result.json unreadable" in reasons[_name(names, "badjson")]
    assert "bad result fields" in reasons[_name(names, "nofields")]
    assert "does not match" in reasons[_name(names, "wrongjob")]
    assert "picture files missing" in reasons[_name(names, "nopicture")]
    assert "needs labels_test" in reasons[_name(names, "badlabels")]
    assert "nested too deeply" in reasons[_name(names, "deep")]
    assert "does not match" in reasons[_name(names, "listjob")]
    assert "'message' must be a string" in reasons[_name(names, "deepfields")]
    reported = [e for e in logs if e["event"] == "spool entry moved aside"]
    assert len(reported) == 9
    assert all(e["log_level"] == "error" for e in reported)
    assert good.name not in {e["entry"] for e in reported}


def _rewrite(entry: Any, change: Any) -> None:
    path = entry.path / "result.json"
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def _name(names: dict[str, str], label: str) -> str:
    return next(name for name, value in names.items() if value == label)


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        ({"success": True}, "delivered"),
        ({"success": True, "duplicate": True}, "delivered"),
        (NotFoundError("no job 1", 404), "dropped"),
        (ConflictError("job 1 is pending", 409), "dropped"),
        (TransientError("connection refused", None), "kept"),
        (TransientError("busy", 503, retry_after=5), "kept"),
        (AuthenticationError("login refused", 401), "kept"),
        (PermissionDeniedError("admin rights required", 403), "kept"),
        (InvalidInputError("bad labels", 400, {"labels_test": "wrong length"}), "quarantined"),
        ({"success": False}, "quarantined"),
    ],
)
def test_deliver_pending_per_answer(
    tmp_path: Path, answer: dict[str, Any] | APIError, outcome: str
) -> None:
    """Each answer class: delivered/dropped entries go, kept ones stop the pass, 400s go aside."""
    outbox = Outbox(tmp_path)
    first = outbox.put(made(1, result(1), []))
    second = outbox.put(made(2, result(2), []))
    api = RecordingAPI({1: answer})
    with capture_logs() as logs:
        report = deliver_pending(outbox, api)
    attempted = [job_id for job_id, _, _ in api.calls]
    if outcome == "kept":
        assert attempted == [1]  # the pass stops: the server is unavailable
        assert report.error is answer
        assert outbox.pending() == [first, second]
        assert report.waiting == 2
        return
    assert attempted == [1, 2]
    assert report.error is None
    assert report.waiting == 0
    assert (report.delivered, report.dropped, report.quarantined) == {
        "delivered": (2, 0, 0),
        "dropped": (1, 1, 0),
        "quarantined": (1, 0, 1),
    }[outcome]
    if outcome == "dropped":
        assert any(e["event"].startswith("result dropped") and e["job_id"] == 1 for e in logs)
    if outcome == "quarantined":
        assert (outbox.corrupt / first.name).is_dir()
        assert "bad labels" in (outbox.corrupt / f"{first.name}.reason").read_text() or (
            "unexpected answer" in (outbox.corrupt / f"{first.name}.reason").read_text()
        )
