"""Durable results: written to disk before the first attempt to send them.

This module is storage only; what to send and when is `worker.delivery`'s.
A finished job's `Result` (its fields and picture files) goes into the spool
directory first, and leaves it only once the server has accepted it, or has
answered that it never will (404, 409). A result therefore survives a server
outage, a network cut, a worker restart and a reboot, and any worker process
of the machine may deliver it later. The spool::

    spool/
      tmp/<u>/, tmp/<u>.lock     being written (the writer holds the .lock), or trash
      ready/<time>-<job>-<u>/    complete entries: result.json, <picture>.png..., .lock
      corrupt/<name>, <name>.reason   entries that could not be read or were refused

An entry appears in ``ready/`` by one ``rename`` of a fully written and
fsynced directory, so ``ready/`` never holds half an entry; it leaves by a
``rename`` too. A result costs one ``fsync`` per file, one of the entry's
directory and one of ``ready/``, which makes the rename durable: ``tmp/``
holds nothing that must survive, so it is not flushed. The pictures lie
beside ``result.json`` (format 1 kept them in ``pictures/``, a directory
more to flush; such entries are still read). A process delivers an entry
only while it holds the entry's ``flock``, taken without waiting: two
processes never send the same entry at the same time, and the server's
idempotent update covers a crash between its answer and the removal.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog

from worker.files import fsync_dir, lock_file, write_durably
from worker.result import Result

__all__ = ["Claim", "Entry", "Outbox", "count_waiting"]

_ENTRY_NAME = re.compile(r"\d{20}-(\d{1,18})-[0-9a-f]{12}")
_LOCK = ".lock"

_log = structlog.get_logger(__name__)


class CorruptEntryError(Exception):
    """A spool entry cannot be read or does not hold a valid result."""


@dataclass(frozen=True)
class Entry:
    """A handle on a complete result in ``ready/``; :meth:`Outbox.claim` reads it."""

    path: Path

    @property
    def name(self) -> str:
        """The entry's directory name: creation time, job id, random suffix."""
        return self.path.name

    @property
    def job_id(self) -> int | None:
        """The job id from the name (for logs), or None for a foreign name."""
        match = _ENTRY_NAME.fullmatch(self.name)
        return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Claim:
    """A ready entry this process holds the lock of, and the result read from it."""

    entry: Entry
    result: Result
    outbox: Outbox

    @property
    def job_id(self) -> int:
        """The result's job."""
        return self.result.job_id

    def done(self) -> None:
        """Remove the entry: the server has it, or has said it never will."""
        self.outbox.discard(self.entry)

    def quarantine(self, reason: str) -> None:
        """Move the entry to ``corrupt/`` with ``reason`` beside it, for a person to look at."""
        self.outbox.quarantine(self.entry, reason)


def count_waiting(spool_dir: Path | str) -> int:
    """How many results wait in the spool at ``spool_dir``; 0 when there is none yet.

    Reads only: for metrics and status lines, which must not create the spool.
    """
    try:
        with os.scandir(Path(spool_dir) / "ready") as it:
            return sum(1 for item in it if item.is_dir())
    except FileNotFoundError:
        return 0


class Outbox:
    """The spool of results waiting for the server, shared by every process of a machine.

    Creating one makes the directories and removes what a crash left in
    ``tmp/`` (anything no live writer holds the lock of).
    """

    def __init__(self, spool_dir: Path | str) -> None:
        self.root = Path(spool_dir)
        self.tmp = self.root / "tmp"
        self.ready = self.root / "ready"
        self.corrupt = self.root / "corrupt"
        for directory in (self.root, self.tmp, self.ready, self.corrupt):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._clean_tmp()

    def put(self, result: Result) -> Entry:
        """Store one job's result and its pictures durably; return the new ready entry.

        Raises OSError when the disk fails; nothing appears in ``ready/`` then.
        """
        job_id = result.job_id
        document = json.dumps(result.document(), allow_nan=False, ensure_ascii=False).encode()
        unique = uuid.uuid4().hex[:12]
        lock_path = self.tmp / f"{unique}{_LOCK}"
        work = self.tmp / unique
        fd = lock_file(lock_path, blocking=True)
        if fd is None:  # pragma: no cover - tmp/ vanished under us
            raise FileNotFoundError(f"spool directory {self.tmp} disappeared")
        try:
            work.mkdir(mode=0o700)
            for picture in result.pictures:
                write_durably(work / picture.name, picture.png)
            write_durably(work / "result.json", document)
            fsync_dir(work)
            target = self.ready / f"{time.time_ns():020d}-{job_id}-{unique}"
            os.rename(work, target)
            fsync_dir(self.ready)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        finally:
            lock_path.unlink(missing_ok=True)
            os.close(fd)
        return Entry(target)

    def pending(self) -> list[Entry]:
        """The complete entries, oldest first; stray files in ``ready/`` are moved aside."""
        entries = []
        for path in sorted(self.ready.iterdir()):
            if _ENTRY_NAME.fullmatch(path.name) and path.is_dir():
                entries.append(Entry(path))
            else:
                self.quarantine(Entry(path), "not a spool entry written by the worker")
        return entries

    def probe(self, size: int) -> None:
        """Write and remove ``size`` bytes in ``tmp/``: raises OSError when a result that
        large cannot be spooled now (a full or read-only disk)."""
        path = self.tmp / f"probe-{uuid.uuid4().hex[:12]}"
        try:
            write_durably(path, bytes(size))
        finally:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)

    def count(self) -> int:
        """How many results are waiting for the server (for STATUS= and metrics)."""
        return count_waiting(self.root)

    @contextlib.contextmanager
    def claim(self, entry: Entry) -> Iterator[Claim | None]:
        """Lock ``entry`` and read it, for the ``with`` block.

        Yields None, without waiting, when another process holds the entry,
        when it is gone, or when it is corrupt (it is then quarantined).
        """
        try:
            fd = lock_file(entry.path / _LOCK, blocking=False)
        except OSError as exc:
            self.quarantine(entry, f"cannot lock the entry: {exc}")
            yield None
            return
        if fd is None:
            yield None
            return
        try:
            try:
                claim = self._load(entry)
            except CorruptEntryError as exc:
                self.quarantine(entry, str(exc))
                yield None
                return
            except Exception as exc:  # whatever is in the file, the entries behind it go on
                self.quarantine(entry, f"result.json unusable: {type(exc).__name__}: {exc}")
                yield None
                return
            yield claim
        finally:
            os.close(fd)

    def _load(self, entry: Entry) -> Claim:
        try:
            document = json.loads((entry.path / "result.json").read_bytes())
        except (OSError, ValueError) as exc:
            raise CorruptEntryError(f"result.json unreadable: {exc}") from exc
        except RecursionError:
            raise CorruptEntryError("result.json is nested too deeply to read") from None
        if isinstance(document, dict) and document.get("job_id") != entry.job_id:
            raise CorruptEntryError("the job id in result.json does not match the entry's name")
        try:
            result = Result.from_document(document, lambda name: (entry.path / name).read_bytes())
        except ValueError as exc:
            raise CorruptEntryError(str(exc)) from None
        return Claim(entry, result, self)

    def discard(self, entry: Entry) -> None:
        """Remove a delivered (or refused for good) entry from ``ready/``."""
        trash = self.tmp / f"{entry.name}.done-{uuid.uuid4().hex[:8]}"
        os.rename(entry.path, trash)
        fsync_dir(self.ready)
        shutil.rmtree(trash, ignore_errors=True)

    def quarantine(self, entry: Entry, reason: str) -> None:
        """Move an entry to ``corrupt/`` with ``reason`` beside it; never raises."""
        target = self.corrupt / entry.name
        try:
            os.rename(entry.path, target)
        except FileNotFoundError:
            return  # another process moved it first
        except OSError as exc:
            _log.error(
                "spool entry unusable and cannot be moved aside",
                entry=str(entry.path),
                reason=reason,
                error=str(exc),
            )
            return
        note = f"{datetime.now(UTC).isoformat()} {reason}\n"
        try:
            self.corrupt.joinpath(f"{entry.name}.reason").write_text(note, encoding="utf-8")
            fsync_dir(self.corrupt)
            fsync_dir(self.ready)
        except OSError as exc:  # a full disk: the entry is aside, its reason is in the log
            _log.warning("cannot write why a spool entry was moved aside", error=str(exc))
        _log.error(
            "spool entry moved aside",
            entry=entry.name,
            job_id=entry.job_id,
            reason=reason,
            moved_to=str(target),
        )

    def _clean_tmp(self) -> None:
        """Remove what crashed writers and interrupted removals left in ``tmp/``."""
        for path in self.tmp.iterdir():
            if path.name.endswith(_LOCK):
                if not path.with_name(path.name.removesuffix(_LOCK)).exists():
                    self._remove_unlocked(path, path)
                continue
            self._remove_unlocked(path, path.with_name(path.name + _LOCK))

    @staticmethod
    def _remove_unlocked(path: Path, lock_path: Path) -> None:
        fd = lock_file(lock_path, blocking=False)
        if fd is None:
            return  # a live writer holds it
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            lock_path.unlink(missing_ok=True)
        finally:
            os.close(fd)
