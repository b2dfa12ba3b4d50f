"""A throw-away machine booted with a real systemd: an overlay over this machine's root.

As root: a tmpfs holds the overlay's upper and work directories, the overlay lays them
over ``/`` (``lowerdir=/``), and ``systemd-nspawn -D <overlay> --register=no --keep-unit
-b`` boots the machine's own systemd in it. Nothing the container writes reaches this
machine's disk, and the tmpfs goes at the end. The container shares this machine's
network (no ``--private-network``), so it reaches a server on 127.0.0.1; it boots
``basic.target`` only, so none of the machine's network services (an mDNS responder, a
database) start in it. Commands run inside with ``nsenter -t <its systemd> -a``.

:func:`require_root_and_nspawn` skips outside CI when not root, and fails under ``CI``
when the tests cannot run, so CI can never pass by skipping them.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres_helpers import in_ci

BOOT_DEADLINE = 120.0
POWEROFF_DEADLINE = 60.0
COMMAND_DEADLINE = 600.0
TMPFS_SIZE = "4G"  # the virtual environment with numpy, scipy, scikit-learn is most of it
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def require_root_and_nspawn() -> None:
    """Skip without root outside CI; fail under CI, or when systemd-nspawn is missing."""
    if os.geteuid() != 0:
        if in_ci():
            pytest.fail("the systemd tests need root (mount, systemd-nspawn); CI runs as root")
        pytest.skip("the systemd tests need root (mount, systemd-nspawn)")
    for tool in ("systemd-nspawn", "nsenter", "mount", "umount"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: apt-get install systemd-container (.ci/run does)")


class Container:
    """One booted container: ``run`` commands in it, ``root`` to reach its files from here."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "root"
        self.log_path = base.parent / f"{base.name}-console.log"
        self.nspawn: subprocess.Popen[bytes] | None = None
        self.leader = 0  # the container's systemd, as this machine sees it

    def boot(self) -> None:
        """Mount the tmpfs and the overlay, boot, and wait until systemd says it is up."""
        self.base.mkdir(parents=True, exist_ok=True)
        _run("mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0755", "tmpfs", self.base)
        for name in ("upper", "work", "root"):
            (self.base / name).mkdir()
        upper, work = self.base / "upper", self.base / "work"
        options = f"lowerdir=/,upperdir={upper},workdir={work}"
        _run("mount", "-t", "overlay", "overlay", "-o", options, self.root)
        command = ["systemd-nspawn", "-q", "-D", str(self.root), "--register=no", "--keep-unit"]
        with self.log_path.open("wb") as log:
            self.nspawn = subprocess.Popen(
                [*command, "--console=passive", "-b", "--", "systemd.unit=basic.target"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.leader = self._wait_for_leader()
        deadline = time.monotonic() + BOOT_DEADLINE
        state = ""
        while state not in ("running", "degraded") and time.monotonic() < deadline:
            # Empty until systemd in there listens; then it waits for the boot to end.
            answer = self.run("systemctl", "is-system-running", "--wait", check=False)
            state = answer.stdout.strip()
            time.sleep(0 if state else 0.2)
        if state not in ("running", "degraded"):
            pytest.fail(f"the container's systemd is {state!r}:\n{self.console()}")

    def _wait_for_leader(self) -> int:
        assert self.nspawn is not None
        deadline = time.monotonic() + BOOT_DEADLINE
        while time.monotonic() < deadline:
            if self.nspawn.poll() is not None:
                pytest.fail(
                    f"systemd-nspawn exited with {self.nspawn.returncode}:\n{self.console()}"
                )
            for child in _children(self.nspawn.pid):
                if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                    return child
            time.sleep(0.1)
        pytest.fail(f"the container did not start systemd in {BOOT_DEADLINE} s:\n{self.console()}")

    def run(
        self, *command: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` inside (all its namespaces), with a clean environment."""
        environment = ["env", "-i", f"PATH={PATH}", "HOME=/root", "LANG=C.UTF-8"]
        inside = ["nsenter", "-t", str(self.leader), "-a", *environment]
        result = subprocess.run(
            [*inside, *command],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=COMMAND_DEADLINE,
            check=False,
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"{' '.join(command)} exited {result.returncode} in the container:\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def shell(self, script: str, *, stdin: str | None = None, cwd: str = "/") -> str:
        """Run a bash script inside (``set -euo pipefail``); its output."""
        script = f"cd {shlex.quote(cwd)}\n{script}"
        result = self.run("bash", "-euo", "pipefail", "-c", script, stdin=stdin)
        return result.stdout

    def console(self) -> str:
        """What the container printed on its console (boot messages)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def poweroff(self) -> None:
        """Kill the container outright, then unmount everything.

        Nothing in it is worth a clean shutdown: SIGKILL to its systemd, PID 1 of its PID
        namespace, makes the kernel kill every process in it, and systemd-nspawn exits.
        """
        if self.nspawn is not None and self.nspawn.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                if self.leader:
                    os.kill(self.leader, signal.SIGKILL)
            try:
                self.nspawn.wait(POWEROFF_DEADLINE)
            except subprocess.TimeoutExpired:
                os.killpg(self.nspawn.pid, signal.SIGKILL)
                self.nspawn.wait()
        for mount in (self.root, self.base):
            if os.path.ismount(mount) and _run("umount", mount, check=False).returncode != 0:
                _run("umount", "--lazy", mount, check=False)  # something still holds it


@contextlib.contextmanager
def booted(base: Path) -> Iterator[Container]:
    """A booted container under ``base``; powered off and unmounted however the block ends."""
    container = Container(base)
    try:
        container.boot()
        yield container
    finally:
        container.poweroff()


def _run(*command: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, command))} failed: {result.stderr}")
    return result


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found.extend(int(child) for child in (task / "children").read_text().split())
    return found
