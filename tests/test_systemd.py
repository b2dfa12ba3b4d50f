"""The units of deploy/ under a real systemd, installed as docs/deploy.md says, step by step.

One container (``systemd_container``) boots for the whole module: sections 1 to 3 of the
guide run in it as printed (a checkout copied to ``/srv/mlworker``; ``editor`` writes the
test's configuration; the password comes on standard input), with a virtual environment
made from Debian's ``/usr/bin/python3``. The server runs here, on 127.0.0.1, behind a
proxy that counts the requests (the container shares this machine's network). The tests
then run in file order on that one machine: each leaves ``mlworker.service`` active.

Test-only drop-ins put the ``test_gate`` plugin (``fleet_helpers``) on the path, so a
test knows when a job runs and lets it finish, and shorten ``WatchdogSec`` from 60 s to 6 s.
"""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import RunningServer
from daemon_helpers import (
    WORKER_PASSWORD,
    WORKER_USER,
    admin_api,
    assert_secret_absent,
    submit_jobs,
    wait_for,
    worker_server,
)
from fault_proxy import RESULT, FaultProxy
from fleet_helpers import Gates, wait_final
from systemd_container import Container, booted, require_root_and_nspawn

from worker.api import API

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900), pytest.mark.xdist_group("systemd")]

REPO = Path(__file__).resolve().parent.parent
GUIDE = REPO / "docs" / "deploy.md"
INSTALL_SECTIONS = ("1. Install the program", "2. Configure", "3. Install and start the unit")
CHECKOUT = "/srv/mlworker"  # where the container finds the project, as an operator would
TEST_DIR = "/srv/test"  # the test's editor, configuration, gate plugin and gates
RESTART = 120.0  # seconds for a unit to come back: RestartSec=5 and a start on a loaded machine
DROP_IN = f"""[Service]
Environment=PYTHONPATH={TEST_DIR}/plugin MLWORKER_TEST_GATES={TEST_DIR}/gates
ReadWritePaths={TEST_DIR}/gates
WatchdogSec=6
"""


class Machine:
    """The booted container with mlworker installed, and what the installation printed."""

    def __init__(self, container: Container, gates: Gates, printed: str) -> None:
        self.container = container
        self.gates = gates
        self.printed = printed
        self.after_install: dict[str, str] = {}

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        """``systemctl show -p ...``: the unit's properties."""
        output = self.container.run("systemctl", "show", unit, "-p", ",".join(properties)).stdout
        return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)

    def systemctl(self, *args: str, check: bool = True) -> int:
        """Run ``systemctl ARGS``; its exit status."""
        return self.container.run("systemctl", *args, check=check).returncode

    def journal(self, unit: str) -> list[dict[str, Any]]:
        """The journal entries of ``unit``: systemd's about it, and its processes' lines."""
        self.container.run("journalctl", "--flush", check=False)
        output = self.container.run("journalctl", "-u", unit, "-o", "json", "--no-pager").stdout
        return [json.loads(line) for line in output.splitlines() if line.strip()]

    def lines(self, unit: str) -> list[str]:
        """What the unit's own processes wrote (not systemd's messages about the unit)."""
        return [
            entry["MESSAGE"]
            for entry in self.journal(unit)
            if entry.get("_SYSTEMD_UNIT") == unit and isinstance(entry.get("MESSAGE"), str)
        ]

    def events(self, unit: str, event: str, **match: Any) -> list[dict[str, Any]]:
        """The unit's JSON log lines of ``event`` with these fields."""
        found = []
        for line in self.lines(unit):
            record = json.loads(line) if line.startswith("{") else {}
            if record.get("event") == event and all(record.get(k) == v for k, v in match.items()):
                found.append(record)
        return found

    def main_pid(self, unit: str = "mlworker.service") -> int:
        """The unit's main process, as the container sees it (0: none)."""
        return int(self.show(unit, "MainPID")["MainPID"])

    def wait_active(self, unit: str = "mlworker.service", *, not_pid: int = 0) -> dict[str, str]:
        """Wait until ``unit`` is active with a main process other than ``not_pid``."""

        def active() -> dict[str, str] | None:
            state = self.show(unit, "ActiveState", "SubState", "MainPID", "NRestarts", "Result")
            running = state["ActiveState"] == "active" and state["SubState"] == "running"
            return state if running and int(state["MainPID"]) not in (0, not_pid) else None

        found = wait_for(active, f"{unit} to be active", RESTART)
        assert found is not None
        return found


@pytest.fixture(scope="module")
def server(start_server: Callable[..., RunningServer]) -> RunningServer:
    """A demo server with the test worker account and no pending jobs."""
    return worker_server(start_server)


@pytest.fixture(scope="module")
def proxy(server: RunningServer) -> Iterator[FaultProxy]:
    """A proxy in front of the server that forwards everything and records each request."""
    with FaultProxy(server.url) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def admin(server: RunningServer) -> API:
    """The test worker account (an admin), to submit jobs and read results."""
    return admin_api(server.url)


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory, proxy: FaultProxy) -> Iterator[Machine]:
    """A container booted once for the module, mlworker installed as the guide says."""
    require_root_and_nspawn()
    with booted(tmp_path_factory.mktemp("systemd") / "machine") as container:
        test_dir = container.root / TEST_DIR.lstrip("/")
        gates = _prepare(container, test_dir, proxy.url)
        sections = documented_commands(INSTALL_SECTIONS)
        printed = [_run_section(container, sections[title]) for title in INSTALL_SECTIONS[:2]]
        for unit in ("mlworker.service", "mlworker@.service"):
            drop_ins = container.root / "etc/systemd/system" / f"{unit}.d"
            drop_ins.mkdir(parents=True)
            (drop_ins / "test.conf").write_text(DROP_IN)
        printed.append(_run_section(container, sections[INSTALL_SECTIONS[2]]))
        installed = Machine(container, gates, "".join(printed))
        installed.after_install = installed.show("mlworker.service", "ActiveState", "SubState")
        yield installed


def documented_commands(titles: tuple[str, ...]) -> dict[str, list[str]]:
    """The ``sh`` blocks of docs/deploy.md under each ``## <title>`` heading, in order."""
    text = GUIDE.read_text(encoding="utf-8")
    blocks = {}
    for title in titles:
        match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", text, re.S | re.M)
        assert match, f"no section '## {title}' in {GUIDE.name}"
        blocks[title] = re.findall(r"```sh\n(.*?)```", match.group(1), re.S)
        assert blocks[title], f"no sh block under '## {title}'"
    return blocks


def _prepare(container: Container, test_dir: Path, host: str) -> Gates:
    """The checkout, the test's configuration and its editor, the gate plugin and gates."""
    shutil.copytree(
        REPO,
        container.root / CHECKOUT.lstrip("/"),
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "*.egg-info", "build", "__pycache__", ".*_cache", "mlworker-data"
        ),
    )
    gates = Gates(test_dir)
    gates.directory.chmod(0o1777)  # the service's dynamic user writes its markers there
    (test_dir / "worker.toml").write_text(_configuration(host))
    editor = test_dir / "bin" / "editor"
    editor.parent.mkdir()
    editor.write_text(f'#!/bin/sh\n# The operator\'s edit.\ncat {TEST_DIR}/worker.toml > "$1"\n')
    editor.chmod(0o755)
    return gates


def _configuration(host: str) -> str:
    """deploy/worker.toml edited as an operator would: this server, 2 processes, quick polls."""
    text = (REPO / "deploy" / "worker.toml").read_text(encoding="utf-8")
    edits = {
        r'^host = ".*"$': f'host = "{host}"',
        r'^username = ".*"$': f'username = "{WORKER_USER}"',
        r"^processes = \d+$": "processes = 2",
        r"^# poll_min = .*$": "poll_min = 0.2",
        r"^# poll_max = .*$": "poll_max = 1",
        r"^# startup_jitter = .*$": "startup_jitter = 0",
    }
    for pattern, line in edits.items():
        text, count = re.subn(pattern, line, text, flags=re.M)
        assert count == 1, f"deploy/worker.toml has no line matching {pattern}"
    return text


def _run_section(container: Container, blocks: list[str]) -> str:
    """Run each block as printed, in the checkout, the test's editor first on the PATH."""
    printed = []
    for block in blocks:
        script = f"export PATH={TEST_DIR}/bin:$PATH\n{block}"
        password = WORKER_PASSWORD + "\n" if "read -rsp" in block else None
        printed.append(container.shell(script, stdin=password, cwd=CHECKOUT))
    return "".join(printed)


def _status(machine: Machine) -> str:
    return machine.show("mlworker.service", "StatusText")["StatusText"]


def test_the_documented_install_starts_the_unit_once_logged_in(machine: Machine) -> None:
    """Sections 1-3 of the guide, as printed, leave the unit active: READY=1 came at start."""
    assert machine.after_install == {"ActiveState": "active", "SubState": "running"}
    # READY=1 came from the supervisor once it had logged in; then it forked the workers.
    wait_for(
        lambda: len(machine.events("mlworker.service", "worker ready")) == 2,
        "both worker processes to log in",
        RESTART,
    )
    assert machine.printed.count("login: ok as 'e2e-worker'") == 2  # both documented checks


def test_the_password_arrives_through_load_credential(machine: Machine) -> None:
    """The password reaches the worker as systemd's credential, and no log line shows it."""
    assert "password from CREDENTIALS_DIRECTORY" in machine.printed  # the systemd-run check
    environ = machine.container.run("cat", f"/proc/{machine.main_pid()}/environ").stdout
    assert "CREDENTIALS_DIRECTORY=/run/credentials/mlworker.service" in environ.split("\0")
    configuration = (machine.container.root / "etc/mlworker/worker.toml").read_text()
    assert not {"password", "password_file"} & set(tomllib.loads(configuration))
    assert_secret_absent(machine.printed, "\n".join(machine.lines("mlworker.service")))


def test_status_shows_what_each_process_does(machine: Machine, admin: API) -> None:
    """While one process runs a job, STATUS= names the job; then both are idle again."""
    (job,) = submit_jobs(admin, [("test_gate", "moons", {"gate": "status"})])
    wait_for(
        lambda: f"job {job} test_gate on moons" in _status(machine) and "idle" in _status(machine),
        "STATUS= to name the running job beside an idle process",
        RESTART,
    )
    machine.gates.open("status")
    assert wait_final(admin, job)["status"] == "done"
    wait_for(lambda: _status(machine) == "#0 idle; #1 idle", "STATUS= to show two idle processes")


def test_the_journal_holds_one_json_object_per_line_with_the_jobs_fields(
    machine: Machine, admin: API
) -> None:
    """Every line the service wrote is a JSON object; a job's lines carry the job's fields."""
    (job,) = submit_jobs(admin, [("knn", "iris", {})])  # its own: tests may run in any order
    assert wait_final(admin, job)["status"] == "done"
    # journald stores what the unit wrote on its own time, maybe after the server has the result
    wait_for(
        lambda: machine.events("mlworker.service", "job finished", job_id=job),
        "the job's finished line in the journal",
    )
    records = [json.loads(line) for line in machine.lines("mlworker.service")]
    assert all(isinstance(record, dict) for record in records)
    assert all({"timestamp", "level", "event"} <= set(record) for record in records)
    finished = [r for r in records if r["event"] == "job finished"]
    for record in finished:
        assert {"worker_id", "job_id", "algorithm", "dataset", "attempt"} <= set(record)


def test_stop_lets_a_running_job_finish_and_its_result_reach_the_server(
    machine: Machine, admin: API
) -> None:
    """systemctl stop during a job: the unit waits for it, delivers, and ends inactive, 0."""
    (job,) = submit_jobs(admin, [("test_gate", "moons", {"gate": "stop"})])
    wait_for(lambda: machine.gates.started("stop"), "the job to start", RESTART)
    machine.systemctl("stop", "--no-block", "mlworker.service")
    wait_for(
        lambda: machine.show("mlworker.service", "ActiveState")["ActiveState"] == "deactivating",
        "the unit to be stopping",
    )
    assert admin.get_job_result(job)["status"] == "running"
    machine.gates.open("stop")
    wait_for(
        lambda: machine.show("mlworker.service", "ActiveState")["ActiveState"] == "inactive",
        "the unit to stop",
        RESTART,
    )
    assert admin.get_job_result(job)["status"] == "done"
    state = machine.show("mlworker.service", "Result", "ExecMainStatus")
    assert state == {"Result": "success", "ExecMainStatus": "0"}
    machine.systemctl("start", "mlworker.service")
    machine.wait_active()


def test_a_killed_main_process_is_restarted(machine: Machine) -> None:
    """SIGKILL to the supervisor: systemd restarts the unit (Restart=on-failure)."""
    before = machine.wait_active()
    machine.container.run("kill", "-KILL", before["MainPID"])
    after = machine.wait_active(not_pid=int(before["MainPID"]))
    assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1


def test_a_hung_supervisor_is_killed_by_the_watchdog_and_restarted(machine: Machine) -> None:
    """SIGSTOP to the supervisor: no WATCHDOG=1 for WatchdogSec=, so systemd kills, restarts."""
    before = machine.wait_active()
    machine.container.run("kill", "-STOP", before["MainPID"])
    after = machine.wait_active(not_pid=int(before["MainPID"]))
    assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1
    messages = [entry.get("MESSAGE") for entry in machine.journal("mlworker.service")]
    assert "mlworker.service: Failed with result 'watchdog'." in messages


def test_exit_78_is_not_restarted(machine: Machine) -> None:
    """A refused login exits 78: the unit fails and stays down (RestartPreventExitStatus=)."""
    password = machine.container.root / "etc/mlworker/password"
    machine.wait_active()
    password.write_text("not-the-password\n")
    try:
        assert machine.systemctl("restart", "mlworker.service", check=False) != 0
        state = machine.show("mlworker.service", "ActiveState", "SubState", "ExecMainStatus")
        # Failed, not auto-restart: a restart to come would show as SubState=auto-restart.
        assert state == {"ActiveState": "failed", "SubState": "failed", "ExecMainStatus": "78"}
        # And none happened since the manual restart, which set the counter back to 0.
        assert machine.show("mlworker.service", "NRestarts") == {"NRestarts": "0"}
    finally:
        password.write_text(WORKER_PASSWORD + "\n")
        machine.systemctl("reset-failed", "mlworker.service", check=False)
        machine.systemctl("start", "mlworker.service", check=False)
    machine.wait_active()


def test_two_template_instances_share_the_spool_and_the_cache(
    machine: Machine, admin: API, proxy: FaultProxy
) -> None:
    """A result mlworker@1 left in the spool is delivered by mlworker@2, which also reuses
    the dataset mlworker@1 downloaded: one download of it for the machine."""
    machine.systemctl("disable", "--now", "mlworker.service")
    machine.container.shell(
        f"install -m 0644 {CHECKOUT}/deploy/mlworker@.service /etc/systemd/system/"
    )
    machine.systemctl("daemon-reload")
    proxy.unavailable = re.compile(RESULT)  # results cannot be delivered
    try:
        machine.systemctl("start", "mlworker@1.service")
        (left,) = submit_jobs(admin, [("knn", "iris", {})])
        wait_for(
            lambda: machine.events("mlworker@1.service", "job finished", job_id=left),
            "mlworker@1 to run the job",
            RESTART,
        )
        machine.systemctl("stop", "mlworker@1.service")
    finally:
        proxy.unavailable = None
    assert admin.get_job_result(left)["status"] == "running"  # its result is in the spool
    machine.systemctl("start", "mlworker@2.service")
    assert wait_final(admin, left)["status"] == "done"
    # The worker logs the delivery after the server's answer; journald stores it after that.
    wait_for(
        lambda: machine.events("mlworker@2.service", "result delivered", job_id=left),
        "mlworker@2's delivery in the journal",
    )
    (again,) = submit_jobs(admin, [("knn", "iris", {})])
    assert wait_final(admin, again)["status"] == "done"
    wait_for(
        lambda: machine.events("mlworker@2.service", "job finished", job_id=again),
        "mlworker@2's job in the journal",
    )
    iris = next(key for key, info in admin.get_datasets().items() if info["name"] == "iris")
    assert len(proxy.received("GET", rf"/datasets/{iris}/points/")) == 1
