"""Durable file helpers shared by the outbox and the dataset cache.

Both keep state on local disk that several worker processes of one machine
use at once, and both must survive a crash at any instruction. The tools are
the classic POSIX ones: write to a temporary name, ``fsync``, ``rename`` over
the final name, ``fsync`` the directory; and ``flock`` on a lock file whose
inode is checked after locking, so that a lock file unlinked (or its directory
renamed) by the previous holder is never mistaken for the live one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = ["fsync_dir", "lock_file", "locked", "replace_durably", "write_durably"]


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries, so a rename or a new file in it survives a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to the new file ``path`` and flush it to disk before returning."""
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def replace_durably(path: Path, data: bytes) -> None:
    """Make ``path`` hold ``data``: readers see the old file or the new one, never a mix."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write_durably(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def lock_file(path: Path, *, blocking: bool) -> int | None:
    """Take an exclusive ``flock`` on ``path`` (created if missing) and return its descriptor.

    Returns ``None`` when ``blocking`` is false and another process holds the
    lock, or when the directory of ``path`` no longer exists (its holder
    removed or moved it: there is nothing left to lock). After locking, the
    descriptor's inode is compared with the path's: if the previous holder
    unlinked or moved the file meanwhile, our lock is on a dead inode and we
    try again (or, for a vanished directory, give up).
    """
    flags = fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)
        if not path.parent.is_dir():
            return None


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold a blocking exclusive lock on ``path`` for the ``with`` block."""
    fd = lock_file(path, blocking=True)
    if fd is None:
        raise FileNotFoundError(f"cannot lock {path}: its directory does not exist")
    try:
        yield
    finally:
        os.close(fd)
