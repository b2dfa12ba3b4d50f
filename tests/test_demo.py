"""`mlworker demo` (what `make demo` runs), as a real process: server, workers, table, clean-up."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import requests
from daemon_helpers import mlworker_command, wait_for, worker_environment
from fleet_helpers import processes_in

from worker.demo_progress import Progress, WorkerEvents

DEMO_DEADLINE = 300.0  # seconds for the whole demo on a loaded 2-core machine
DEMO_JOBS = 15  # server/demo.py's JOBS
PROGRESS = re.compile(r"^(\d+)/15 jobs done, (\d+) running", re.M)
ROW = re.compile(r"^\s*(\d+)\s+(\S+)\s+(\S+)\s+([\d.]+|-)\s+([\d.]+|-)\s+([\d.]+|-)\s+(.+)$")


def run_demo(tmp_path: Path, *args: str) -> tuple[int, str]:
    """Run ``mlworker demo ARGS`` to its end; its exit status and output."""
    result = subprocess.run(
        [*mlworker_command(), "demo", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=worker_environment(),
        cwd=tmp_path,
        timeout=DEMO_DEADLINE,
        check=False,
    )
    return result.returncode, result.stdout


def demo_directory(output: str) -> Path:
    """The temporary directory the demo announced."""
    match = re.search(r"demo data in (\S+) \.\.\.", output)
    assert match, output
    return Path(match.group(1))


def server_url(output: str) -> str:
    """The server's URL the demo announced."""
    match = re.search(r"Server at (http://127\.0\.0\.1:\d+/)", output)
    assert match, output
    return match.group(1)


def table(output: str) -> dict[int, tuple[str, ...]]:
    """The result table's rows by job id."""
    return {int(m.group(1)): m.groups()[1:] for m in map(ROW.match, output.splitlines()) if m}


def answers(url: str) -> bool:
    """Whether a server still listens at ``url`` (one busy stopping is still there)."""
    try:
        requests.get(url + "login/", timeout=2)
    except requests.Timeout:  # accepted but not answered yet: it is still shutting down
        return True
    except requests.ConnectionError:
        return False
    return True


@pytest.mark.slow
def test_demo_runs_every_job_prints_the_table_and_cleans_up(tmp_path: Path) -> None:
    """Every demo job succeeds, the table shows each with scores; server and files are gone;
    progress never shows more jobs running than processes, and the last line names only what
    still exists."""
    status, output = run_demo(tmp_path)
    assert status == 0, output
    rows = table(output)
    assert sorted(rows) == list(range(1, DEMO_JOBS + 1)), output
    assert {row[-1] for row in rows.values()} == {"success"}, output
    assert all(0 <= float(row[2]) <= 1 for row in rows.values())
    assert rows[1][:2] == ("knn", "iris")
    progress = [(int(done), int(running)) for done, running in PROGRESS.findall(output)]
    assert progress[-1] == (DEMO_JOBS, 0), output
    assert max(running for _, running in progress) <= 2, output  # the demo's 2 processes
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)
    assert re.fullmatch(
        r"\d+ pictures were drawn\. The demo's server and files go now; to browse the results "
        r"and pictures, run: mlworker demo --keep",
        output.splitlines()[-1],
    ), output
    assert not demo_directory(output).exists()
    assert not answers(server_url(output))


@pytest.mark.slow
def test_keep_leaves_a_server_whose_admin_shows_the_results(tmp_path: Path) -> None:
    """--keep: the server runs on, its Django admin takes the printed login and has the pictures."""
    status, output = run_demo(tmp_path, "--keep", "--processes", "3")
    directory, url = demo_directory(output), server_url(output)
    try:
        kept = re.search(r"keeps running at \S+ \(pid (\d+)\)", output)
        assert status == 0, output
        assert kept, output
        assert len(table(output)) == DEMO_JOBS
        login = re.search(r"admin/ \(login (\S+) / (\S+)\)", output)
        assert login, output
        admin = requests.Session()
        admin.get(url + "admin/login/", timeout=10)
        page = admin.post(
            url + "admin/login/?next=/admin/server/job/",
            data={
                "username": login.group(1),
                "password": login.group(2),
                "csrfmiddlewaretoken": admin.cookies["csrftoken"],
            },
            timeout=10,
        )
        assert page.url.endswith("/admin/server/job/"), page.text[:2000]
        picture = re.search(r"job 1: (http://\S+\.png)", output)
        assert picture, output
        assert admin.get(picture.group(1), timeout=10).content.startswith(b"\x89PNG")
    finally:
        for pid in [int(kept.group(1))] if kept else processes_in(directory):
            os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not answers(url), "the kept server to stop")
        shutil.rmtree(directory)


@pytest.mark.slow
def test_ctrl_c_stops_server_and_workers_and_removes_the_directory(tmp_path: Path) -> None:
    """Ctrl-C while workers run jobs: exit 130, no server or worker left, no directory left."""
    log = tmp_path / "demo.out"
    with log.open("wb") as out:
        demo = subprocess.Popen(
            [*mlworker_command(), "demo"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=worker_environment(),
            cwd=tmp_path,
        )
    try:
        wait_for(
            lambda: re.search(r"jobs done, [1-9]\d* running", log.read_text()),
            "the workers to run jobs",
            DEMO_DEADLINE,
        )
        directory = demo_directory(log.read_text())
        assert processes_in(directory)
    finally:
        demo.send_signal(signal.SIGINT)  # also when the test failed: the demo cleans up
        status = demo.wait(timeout=120)
    output = log.read_text()
    assert status == 130, output
    assert "interrupted; cleaning up" in output
    assert not directory.exists()
    assert not answers(server_url(output))
    assert processes_in(directory) == []


def test_worker_events_count_what_runs_now(tmp_path: Path) -> None:
    """Running jobs are those started and not finished in the workers' log; a half-written
    line waits for its end, other lines are skipped."""
    log = tmp_path / "worker.log"
    lines = [
        {"event": "worker ready"},
        {"event": "worker ready"},
        {"event": "job started", "job_id": 1},
        {"event": "job started", "job_id": 2},
        {"event": "job finished", "job_id": 1},
    ]
    log.write_text("not json\n" + "".join(json.dumps(line) + "\n" for line in lines))
    events = WorkerEvents(log)
    events.update()
    assert (events.ready, events.running, events.finished) == (2, 1, {1})
    with log.open("a") as out:
        out.write('{"event": "job finished", "job_id"')
    events.update()
    assert events.running == 1
    with log.open("a") as out:
        out.write(": 2}\n")
    events.update()
    assert (events.running, events.finished) == (0, {1, 2})


def test_progress_lines_say_what_is_done_running_and_on_its_way(tmp_path: Path) -> None:
    """A line per change: workers starting, then done/running/on the way, from both sources."""
    events = WorkerEvents(tmp_path / "absent.log")
    stream = io.StringIO()
    progress = Progress(3, 2, stream)
    progress.show(set(), events)
    progress.show(set(), events)  # nothing changed: no new line
    events.ready, events.started, events.finished = 2, {1, 2, 3}, {1, 2}
    progress.show({1}, events)
    lines = [line.rsplit(" (", 1)[0] for line in stream.getvalue().splitlines()]
    assert lines == [
        "0/3 jobs done; 0 of 2 worker processes ready",
        "1/3 jobs done, 1 running, 1 result on the way to the server",
    ]
