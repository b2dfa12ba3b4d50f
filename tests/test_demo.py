"""`mlworker demo` (what `make demo` runs), as a real process: server, workers, table, clean-up."""

from __future__ import annotations

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

pytestmark = pytest.mark.slow

DEMO_DEADLINE = 300.0  # seconds for the whole demo on a loaded 2-core machine
DEMO_JOBS = 15  # server/demo.py's JOBS
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


def test_demo_runs_every_job_prints_the_table_and_cleans_up(tmp_path: Path) -> None:
    """Every demo job succeeds, the table shows each with scores; server and files are gone."""
    status, output = run_demo(tmp_path)
    assert status == 0, output
    rows = table(output)
    assert sorted(rows) == list(range(1, DEMO_JOBS + 1)), output
    assert {row[-1] for row in rows.values()} == {"success"}, output
    assert all(0 <= float(row[2]) <= 1 for row in rows.values())
    assert rows[1][:2] == ("knn", "iris")
    assert re.search(r"\d+ pictures were drawn", output)
    assert not demo_directory(output).exists()
    assert not answers(server_url(output))


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
            lambda: re.search(r"jobs finished, [1-9]\d* running", log.read_text()),
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
