"""The data directory is private: only the server's account may read what it holds.

It holds the SQLite database (sessions, password hashes, hidden labels), the uploaded
pictures, the sessions' cache and the secret key. The directory is made ``0700`` and the
database files ``0600`` whatever the umask, also on a directory an older version created
world-readable; new pictures get ``0600`` from ``FILE_UPLOAD_PERMISSIONS``, new cached
sessions from Django's file cache, which writes them so. SQLite gives its ``-wal`` and ``-shm``
files the database file's mode, so creating that file private first covers them too.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def make_private(data_dir: Path) -> None:
    """Create ``data_dir`` if needed and make it, and its media and sessions trees, private."""
    data_dir.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    _chmod(data_dir, PRIVATE_DIR)
    secret = data_dir / "secret_key"
    if secret.exists():
        _chmod(secret, PRIVATE_FILE)
    for tree in (data_dir / "media", data_dir / "sessions"):
        for root, _, files in os.walk(tree):  # none if absent; symbolic links not followed
            _chmod(Path(root), PRIVATE_DIR)
            for name in files:
                _chmod(Path(root) / name, PRIVATE_FILE)


def make_private_sqlite(name: str | Path) -> None:
    """Create the SQLite file ``0600`` before SQLite does (umask-free), or tighten it.

    An in-memory database has no file; a file that cannot be created is left for SQLite to
    report, as the clear ``cannot set up the database`` of every command.
    """
    if str(name) in ("", ":memory:") or str(name).startswith("file:"):
        return
    database = Path(name)
    try:
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE))
    except OSError:
        return
    for path in [database, *(database.with_name(database.name + s) for s in SQLITE_SIDE_FILES)]:
        if path.exists():
            _chmod(path, PRIVATE_FILE)


def _chmod(path: Path, mode: int) -> None:
    """Set ``mode`` unless it is already so; links and files we do not own are left alone."""
    try:
        if not path.is_symlink() and path.stat().st_mode & 0o777 != mode:
            path.chmod(mode)
    except PermissionError:
        pass
