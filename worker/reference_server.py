"""The reference job server as a separate process: start it, wait until it answers, stop it.

What the demo, the tests and the benchmarks all do, in one place: run
``mlworker-server run`` (the console script beside this Python) on a
loopback port with a data directory of its own, read the port from its
ready line (binding port 0 means two test processes never race for one),
wait until ``GET login/`` answers, and stop it with SIGTERM, then SIGKILL to
its process group should it hang. The server is reached over HTTP only: the
worker package never imports ``server``. Needs the ``server`` extra.
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
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

import requests

__all__ = [
    "ReferenceServer",
    "ServerProcessError",
    "clean_environment",
    "console_script",
    "free_port",
]

READY_LINE = re.compile(r"mlworker-server: serving on http://127\.0\.0\.1:(\d+)/")
# Our settings that would steer the server or speak for a systemd unit: never inherited.
INHERITED_NOT = ("MLWORKER_", "NOTIFY_SOCKET", "WATCHDOG_", "CREDENTIALS_DIRECTORY", "DATABASE_URL")


class ServerProcessError(RuntimeError):
    """The server (or its command line) failed; the message ends with its output."""


def console_script(name: str) -> str:
    """A console script of this installation: beside this Python, else on PATH.

    Raises FileNotFoundError naming the script when it is not installed.
    """
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"the {name} command is not installed")
    return found


def clean_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Ours without the variables of `INHERITED_NOT`, unbuffered, plus ``extra``.

    Without ``extra`` the server uses SQLite in its data directory;
    ``{"DATABASE_URL": ...}`` points it at another database.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith(INHERITED_NOT)}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ReferenceServer:
    """One ``mlworker-server run`` process and the command line around its data directory.

    Args:
        data_dir: the server's directory (database, media, ``server.log``).
        demo: seed the demo data (accounts, datasets, jobs) on start.
        lease_grace: seconds a claimed job's lease outlasts its time limit.
        env: variables added to the server's environment.
        start_deadline: seconds the start may take (migrating a new database).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        demo: bool = False,
        lease_grace: int | None = None,
        env: Mapping[str, str] | None = None,
        start_deadline: float = 60.0,
        stop_deadline: float = 30.0,
    ) -> None:
        self.data_dir = data_dir
        self.demo = demo
        self.lease_grace = lease_grace
        self.extra_env = dict(env or {})
        self.start_deadline = start_deadline
        self.stop_deadline = stop_deadline
        self.port = 0
        self.log_path = data_dir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's base URL, ``http://127.0.0.1:<port>/``."""
        return f"http://127.0.0.1:{self.port}/"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the server (in a session of its own) and wait until it answers ``GET login/``.

        The first start binds a free port; a restart binds the same one again.
        Raises ServerProcessError, with the server's output, when it exits or
        does not answer within ``start_deadline`` seconds.
        """
        args = ["run", "--bind", f"127.0.0.1:{self.port}", "--data-dir", str(self.data_dir)]
        if self.lease_grace is not None:
            args += ["--lease-grace", str(self.lease_grace)]
        if self.demo:
            args.append("--demo")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [console_script("mlworker-server"), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=clean_environment(self.extra_env),
                start_new_session=True,
            )
        deadline = time.monotonic() + self.start_deadline
        self.port = self._wait(
            lambda: self._announced_port(log_start), "announce its URL", deadline
        )
        self._wait(self._answers, "answer GET login/", deadline)

    def _wait(self, condition: Callable[[], int], what: str, deadline: float) -> int:
        """Poll ``condition`` until it returns non-zero; stop and raise past the deadline."""
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServerProcessError(
                    f"the server exited with {self.process.returncode}:\n{self.log()}"
                )
            found = condition()
            if found:
                return found
            time.sleep(0.05)
        self.stop()
        raise ServerProcessError(
            f"the server did not {what} within {self.start_deadline} s:\n{self.log()}"
        )

    def _announced_port(self, log_start: int) -> int:
        """The port of the ready line this start wrote to the log, or 0 before it."""
        with self.log_path.open("rb") as log:
            log.seek(log_start)
            found = READY_LINE.search(log.read().decode(errors="replace"))
        return int(found.group(1)) if found else 0

    def _answers(self) -> int:
        try:
            return int(requests.get(self.url + "login/", timeout=2).status_code == 200)
        except (requests.ConnectionError, requests.Timeout):  # not up yet, or still busy
            return 0

    def stop(self) -> None:
        """SIGTERM, then wait for the graceful stop (SIGKILL to the group if it hangs)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=self.stop_deadline)
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

    def cli(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``mlworker-server COMMAND --data-dir <data_dir> ARGS...``, run to its end.

        Raises ServerProcessError with its error output when it fails and ``check``.
        """
        command, *rest = args
        result = subprocess.run(
            [console_script("mlworker-server"), command, "--data-dir", str(self.data_dir), *rest],
            capture_output=True,
            text=True,
            env=clean_environment(self.extra_env),
            input=stdin,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise ServerProcessError(f"mlworker-server {' '.join(args)} failed: {result.stderr}")
        return result

    def add_user(self, name: str, password: str, *, admin: bool = False) -> None:
        """``mlworker-server adduser`` with the password in a file (never on the command line)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        password_file = self.data_dir / f"password-{name}"
        password_file.write_text(password + "\n")
        try:
            self.cli("adduser", name, "--password-file", str(password_file), *(["--admin"] * admin))
        finally:
            password_file.unlink()

    def import_dataset(self, csv: Path, name: str, task: str, *extra: str) -> int:
        """``mlworker-server import-dataset CSV --name NAME --task TASK EXTRA...``; the id."""
        result = self.cli("import-dataset", str(csv), "--name", name, "--task", task, *extra)
        return int(result.stdout.split()[2])  # "imported dataset ID: ..."
