"""Shared fixtures: the reference job server as a real process on a free loopback port.

``start_server`` (module scope) is a factory::

    def test_something(start_server):
        server = start_server(demo=True, lease_grace=60, data_dir=None, env=None, fresh=False)
        api = server.api("backend", "foobar")       # a logged-in worker.api.API
        server.add_user("alice", "secret")          # mlworker-server adduser, password file
        server.add_students("eve", "fay")           # passwords eve-password, fay-password
        dataset_id = server.import_dataset(csv_path, "toy", "classification")
        round_id = server.new_round(dataset_id, "week 1")   # and server.close_round(round_id)
        server.shell("from server.models import Job; print(Job.objects.count())")
        server.restart()                            # same port, same data directory
        server.stop()

Each call starts the server as ``worker.reference_server`` does (the demo and the benchmarks
use the same module): ``mlworker-server run --bind 127.0.0.1:0 --data-dir <dir>`` (``--demo``
when asked: accounts ``backend``/``foobar`` (admin) and ``student``/``student``) with a new
SQLite database in a temporary directory unless ``data_dir`` is given (``env`` adds variables
to the server's and its CLI's environment, e.g. ``{"DATABASE_URL": ...}``). As Django's own
test runner does, each test process migrates (and seeds) a database once, by a real start,
and copies it into each new directory; ``fresh=True`` starts from an empty file instead.
The servers use ``server_test_settings`` (a fast password hasher). The fixture reads the port
from the server's ready line (``server.port``, ``server.url``), waits until ``GET login/``
answers (with a deadline; a server that dies early fails the test with its log), and stops it
with SIGTERM at the end of the module. The server's output goes to ``<data_dir>/server.log``.
``demo_server`` is one shared demo server per test module.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from server_helpers import dataset_id

from worker.api import API
from worker.defaults import DEFAULT_PASSWORD, DEFAULT_USERNAME
from worker.reference_server import (
    ReferenceServer,
    ServerProcessError,
    clean_environment,
    console_script,
    free_port,
)

__all__ = ["RunningServer", "free_port", "server_command", "server_env"]

server_env = clean_environment
TESTS = Path(__file__).parent
FAST_LOGINS = {
    "DJANGO_SETTINGS_MODULE": "server_test_settings",
    "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
}


def server_command() -> list[str]:
    """The ``mlworker-server`` console script installed next to this Python."""
    try:
        return [console_script("mlworker-server")]
    except FileNotFoundError:
        pytest.fail("mlworker-server is not installed: run `pip install -e .[server]`")


class RunningServer(ReferenceServer):
    """The reference server of ``worker.reference_server`` with a test's conveniences.

    A server that fails to start, or a command that fails, fails the test with
    the server's output; the clients made by :meth:`api` are closed before a stop.
    """

    def __init__(
        self, data_dir: Path, *, demo: bool, lease_grace: int, env: Mapping[str, str] | None = None
    ) -> None:
        env = {**FAST_LOGINS, **(env or {})}
        super().__init__(data_dir, demo=demo, lease_grace=lease_grace, env=env)
        self.clients: list[API] = []

    def start(self) -> None:
        """Start the server and wait until it answers ``GET login/``."""
        try:
            super().start()
        except (ServerProcessError, FileNotFoundError) as exc:
            pytest.fail(str(exc))

    def stop(self) -> None:
        """SIGTERM, then wait for the graceful stop (SIGKILL if it hangs).

        Our clients' idle keep-alive connections are closed first (they reconnect on their
        next call): gunicorn keeps idle connections open for up to 2 s of a graceful stop, in
        case a request is on its way, and nothing of ours is sending one.
        """
        for client in self.clients:
            client.close()
        super().stop()

    def cli(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``mlworker-server COMMAND --data-dir <data_dir> ARGS...``; the CompletedProcess."""
        try:
            return super().cli(*args, check=check, stdin=stdin)
        except ServerProcessError as exc:
            pytest.fail(str(exc))

    def shell(self, code: str) -> str:
        """Run Python with the server's settings (``manage shell -c``); its output."""
        return str(self.cli("manage", "shell", "--no-imports", "-c", code).stdout).strip()

    def add_students(self, *names: str) -> None:
        """Student accounts ``<name>`` with password ``<name>-password``, made in one shell."""
        code = (
            "from django.contrib.auth.models import User\n"
            f"for name in {names!r}:\n"
            "    User.objects.create_user(name, password=f'{name}-password')"
        )
        self.shell(code)

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


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fail a grouped test whose group ``--dist loadgroup`` lost (a pytest and xdist mismatch).

    xdist marks a grouped test by a ``@group`` suffix on its node id; without it the
    systemd tests are spread over both workers, each booting a container of its own.
    """
    lost = getattr(item.config.option, "loadgroup", False) and "@" not in item.nodeid
    if lost and item.get_closest_marker("xdist_group"):
        pytest.fail(
            "--dist loadgroup lost this test's xdist_group: "
            "install the pytest that pyproject.toml allows",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def database_template(tmp_path_factory: pytest.TempPathFactory) -> Callable[[bool], Path]:
    """The SQLite files of a migrated database (seeded with the demo if asked), made once.

    Made by a real ``run`` (``--demo``) and its graceful stop: a migration or a seed that
    fails fails every test that starts a server.
    """
    made: dict[bool, Path] = {}

    def template(demo: bool) -> Path:
        if demo not in made:
            directory = tmp_path_factory.mktemp("demo-template" if demo else "template")
            with RunningServer(directory, demo=demo, lease_grace=60):
                pass
            made[demo] = directory
        return made[demo]

    return template


def copy_database(template: Path, directory: Path) -> None:
    """Copy a stopped server's SQLite database (its write-ahead log too, if one is left)."""
    for name in ("db.sqlite3", "db.sqlite3-wal"):
        if (template / name).exists():
            shutil.copyfile(template / name, directory / name)


@pytest.fixture(scope="module")
def start_server(
    tmp_path_factory: pytest.TempPathFactory, database_template: Callable[[bool], Path]
) -> Iterator[Callable[..., RunningServer]]:
    """Factory of running servers; all are stopped when the module's tests are done."""
    servers: list[RunningServer] = []

    def start(
        demo: bool = True,
        lease_grace: int = 60,
        data_dir: Path | None = None,
        env: Mapping[str, str] | None = None,
        fresh: bool = False,
    ) -> RunningServer:
        directory = data_dir or tmp_path_factory.mktemp("server")
        if data_dir is None and not fresh and "DATABASE_URL" not in (env or {}):
            copy_database(database_template(demo), directory)
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
    return demo_server.api(DEFAULT_USERNAME, DEFAULT_PASSWORD)


@pytest.fixture(scope="module")
def student(demo_server: RunningServer) -> API:
    """The demo's student account, logged in."""
    return demo_server.api("student", "student")


@pytest.fixture(scope="module")
def iris(admin: API) -> int:
    """The id of the demo's iris dataset."""
    return dataset_id(admin, "iris")
