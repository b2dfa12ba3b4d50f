"""Shared fixtures: the reference job server as a real process on a free loopback port.

``start_server`` (module scope) is a factory::

    def test_something(start_server):
        server = start_server(demo=True, lease_grace=60, data_dir=None, env=None)
        api = server.api("backend", "foobar")       # a logged-in worker.api.API
        server.add_user("alice", "secret")          # mlworker-server adduser, password file
        dataset_id = server.import_dataset(csv_path, "toy", "classification")
        round_id = server.new_round(dataset_id, "week 1")   # and server.close_round(round_id)
        server.shell("from server.models import Job; print(Job.objects.count())")
        server.restart()                            # same port, same data directory
        server.stop()

Each call starts ``mlworker-server run --bind 127.0.0.1:0 --data-dir <dir>`` (``--demo`` when
asked: accounts ``backend``/``foobar`` (admin) and ``student``/``student``) with a fresh SQLite
database in a temporary directory unless ``data_dir`` is given (``env`` adds variables to the
server's and its CLI's environment, e.g. ``{"DATABASE_URL": ...}``), reads the port from the
server's ready line (``server.port``, ``server.url``), waits until ``GET login/`` answers
(with a deadline; a server that dies early fails with its log), and stops it with SIGTERM at
the end of the module. The server's output goes to
``<data_dir>/server.log``. ``demo_server`` is one shared demo server per test module.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import requests
from server_helpers import dataset_id

from worker.api import API

START_DEADLINE = 60.0
STOP_DEADLINE = 30.0
READY_LINE = re.compile(r"mlworker-server: serving on http://127\.0\.0\.1:(\d+)/")
SERVER_ENV_VARS = ("DATABASE_URL", "MLWORKER_SERVER_DATA_DIR", "MLWORKER_SERVER_LEASE_GRACE")


def server_command() -> list[str]:
    """The ``mlworker-server`` console script installed next to this Python."""
    script = Path(sys.executable).parent / "mlworker-server"
    if not script.exists():
        found = shutil.which("mlworker-server")
        if found is None:
            pytest.fail("mlworker-server is not installed: run `pip install -e .[server]`")
        script = Path(found)
    return [str(script)]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for server processes: ours without its server variables, plus ``extra``.

    Without ``extra`` the server uses SQLite in its data directory; ``{"DATABASE_URL": ...}``
    points it at another database.
    """
    env = {key: value for key, value in os.environ.items() if key not in SERVER_ENV_VARS}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class RunningServer:
    """One ``mlworker-server run`` process and the CLI around its data directory.

    The first start binds port 0 and reads the port from the server's ready line, so two
    test processes can never race for one port; a restart binds the same port again.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        demo: bool,
        lease_grace: int,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.demo = demo
        self.lease_grace = lease_grace
        self.extra_env = dict(env or {})
        self.port = 0
        self.log_path = data_dir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.clients: list[API] = []

    @property
    def url(self) -> str:
        """The server's base URL, ``http://127.0.0.1:<port>/``."""
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> None:
        """Start the server and wait until it answers ``GET login/``."""
        args = ["run", "--bind", f"127.0.0.1:{self.port}", "--lease-grace", str(self.lease_grace)]
        if self.demo:
            args.append("--demo")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*server_command(), *args, "--data-dir", str(self.data_dir)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=server_env(self.extra_env),
                start_new_session=True,
            )
        deadline = time.monotonic() + START_DEADLINE
        self.port = self._announced_port(log_start, deadline)
        self._wait_until_up(deadline)

    def _check_alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"the server exited with {self.process.returncode}:\n{self.log()}")

    def _announced_port(self, log_start: int, deadline: float) -> int:
        """The port of the ready line this start wrote to the log."""
        while time.monotonic() < deadline:
            self._check_alive()
            with self.log_path.open("rb") as log:
                log.seek(log_start)
                found = READY_LINE.search(log.read().decode(errors="replace"))
            if found:
                return int(found.group(1))
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"the server did not announce its URL within {START_DEADLINE} s:\n{self.log()}")

    def _wait_until_up(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                if requests.get(self.url + "login/", timeout=2).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or still busy
                pass
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"the server did not answer within {START_DEADLINE} s:\n{self.log()}")

    def stop(self) -> None:
        """SIGTERM, then wait for the graceful stop (SIGKILL if it hangs).

        Our clients' idle keep-alive connections are closed first (they reconnect on their
        next call): gunicorn keeps idle connections open for up to 2 s of a graceful stop, in
        case a request is on its way, and nothing of ours is sending one.
        """
        if self.process is None or self.process.poll() is not None:
            return
        for client in self.clients:
            client.close()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def restart(self) -> None:
        """Stop and start again: same port, same data directory."""
        self.stop()
        self.start()

    def log(self) -> str:
        """The server's output so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cli(self, *args: str, check: bool = True, stdin: str | None = None) -> Any:
        """Run ``mlworker-server COMMAND --data-dir <data_dir> ARGS...``; the CompletedProcess."""
        command, *rest = args
        result = subprocess.run(
            [*server_command(), command, "--data-dir", str(self.data_dir), *rest],
            capture_output=True,
            text=True,
            env=server_env(self.extra_env),
            input=stdin,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            pytest.fail(f"mlworker-server {' '.join(args)} failed: {result.stderr}")
        return result

    def add_user(self, name: str, password: str, admin: bool = False) -> None:
        """``mlworker-server adduser`` with the password in a file (never on the command line)."""
        password_file = self.data_dir / f"password-{name}"
        password_file.write_text(password + "\n")
        args = ["adduser", name, "--password-file", str(password_file)]
        self.cli(*args, *(["--admin"] if admin else []))
        password_file.unlink()

    def import_dataset(self, csv: Path, name: str, task: str, *extra: str) -> int:
        """``mlworker-server import-dataset CSV --name NAME --task TASK EXTRA...``; the id."""
        result = self.cli("import-dataset", str(csv), "--name", name, "--task", task, *extra)
        return int(result.stdout.split()[2])  # "imported dataset ID ..."

    def shell(self, code: str) -> str:
        """Run Python with the server's settings (``manage shell -c``); its output."""
        return str(self.cli("manage", "shell", "--no-imports", "-c", code).stdout).strip()

    def new_round(self, dataset_id: int, name: str, *, open: bool = True) -> int:
        """Create a round (as an operator would in the admin); its id."""
        code = (
            "from server.models import Round; "
            f"print(Round.objects.create(name={name!r}, dataset_id={dataset_id}, open={open}).pk)"
        )
        return int(self.shell(code))

    def close_round(self, round_id: int) -> None:
        """Close a round (as an operator would in the admin)."""
        code = "from server.models import Round; Round.objects.filter(pk={}).update(open=False)"
        self.shell(code.format(round_id))

    def api(self, username: str, password: str, **kwargs: Any) -> API:
        """A logged-in client; no retries unless asked, so failures show at once."""
        kwargs.setdefault("retry_for", 0)
        client = API(username, password, self.url, **kwargs)
        self.clients.append(client)
        return client


@pytest.fixture(scope="module")
def start_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., RunningServer]]:
    """Factory of running servers; all are stopped when the module's tests are done."""
    servers: list[RunningServer] = []

    def start(
        demo: bool = True,
        lease_grace: int = 60,
        data_dir: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> RunningServer:
        directory = data_dir or tmp_path_factory.mktemp("server")
        server = RunningServer(directory, demo=demo, lease_grace=lease_grace, env=env)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def demo_server(start_server: Callable[..., RunningServer]) -> RunningServer:
    """One demo server shared by a module's tests."""
    return start_server(demo=True)


@pytest.fixture(scope="module")
def admin(demo_server: RunningServer) -> API:
    """The demo's worker account, logged in (a module may define its own `admin`)."""
    return demo_server.api("backend", "foobar")


@pytest.fixture(scope="module")
def student(demo_server: RunningServer) -> API:
    """The demo's student account, logged in."""
    return demo_server.api("student", "student")


@pytest.fixture(scope="module")
def iris(admin: API) -> int:
    """The id of the demo's iris dataset."""
    return dataset_id(admin, "iris")
