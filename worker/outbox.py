"""Durable results: written to disk before the first attempt to send them.

A finished job's update (its fields and picture files) goes into the spool
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
import math
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import structlog

from worker.errors import (
    APIError,
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    TransientError,
)
from worker.files import fsync_dir, lock_file, write_durably

__all__ = ["Claim", "DeliveryReport", "Entry", "Outbox", "ResultAPI", "deliver_pending"]

_SCORES = ("score_test", "score_validation")
_LABELS = ("labels_training", "labels_test", "labels_validation")
_EXTRAS = ("extra_scores_test", "extra_scores_validation")
RESULT_FIELDS = frozenset({*_SCORES, *_LABELS, *_EXTRAS, "message", "success"})
_FORMAT = 2
_FORMATS = {1: "pictures", 2: ""}  # where the pictures lie in the entry, per format
_ENTRY_NAME = re.compile(r"\d{20}-(\d{1,18})-[0-9a-f]{12}")
_PICTURE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}\.png")  # never result.json
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
    """A ready entry this process holds the lock of, with its content read and checked."""

    entry: Entry
    job_id: int
    fields: Mapping[str, Any]
    picture_paths: tuple[Path, ...]
    outbox: Outbox

    def done(self) -> None:
        """Remove the entry: the server has it, or has said it never will."""
        self.outbox._discard(self.entry)

    def quarantine(self, reason: str) -> None:
        """Move the entry to ``corrupt/`` with ``reason`` beside it, for a person to look at."""
        self.outbox._quarantine(self.entry, reason)


def check_fields(fields: Mapping[str, Any]) -> str | None:
    """Say what is wrong with a job's update fields, or None when they are well-formed."""
    unknown = set(fields) - RESULT_FIELDS
    if unknown:
        return f"unknown result fields {sorted(unknown)}; allowed: {sorted(RESULT_FIELDS)}"
    success = fields.get("success", True)
    if not isinstance(success, bool):
        return f"'success' must be true or false, not {success!r}"
    if success:
        missing = [name for name in (*_SCORES, *_LABELS) if fields.get(name) is None]
        if missing:
            return f"a successful result needs {', '.join(missing)}"
    for name in _SCORES:
        value = fields.get(name)
        if value is not None and not _is_finite_number(value):
            return f"{name!r} must be a finite number, not {value!r}"
    for name in _LABELS:
        if not isinstance(fields.get(name, []), list | None):
            return f"{name!r} must be a list"
    for name in _EXTRAS:
        if not isinstance(fields.get(name, {}), dict | None):
            return f"{name!r} must be an object"
    if not isinstance(fields.get("message", ""), str | None):
        return "'message' must be a string"
    return None


def _is_finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


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

    def put(
        self, job_id: int, fields: Mapping[str, Any], pictures: Sequence[tuple[str, bytes]]
    ) -> Entry:
        """Store one job's update and its pictures durably; return the new ready entry.

        Raises ValueError for malformed fields or picture names (a bug in the
        caller, refused before anything is written) and OSError when the disk
        fails; in both cases nothing appears in ``ready/``.
        """
        result = self._result_json(job_id, fields, [name for name, _ in pictures])
        unique = uuid.uuid4().hex[:12]
        lock_path = self.tmp / f"{unique}{_LOCK}"
        work = self.tmp / unique
        fd = lock_file(lock_path, blocking=True)
        if fd is None:  # pragma: no cover - tmp/ vanished under us
            raise FileNotFoundError(f"spool directory {self.tmp} disappeared")
        try:
            work.mkdir(mode=0o700)
            for name, png in pictures:
                write_durably(work / name, png)
            write_durably(work / "result.json", result)
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

    @staticmethod
    def _result_json(job_id: int, fields: Mapping[str, Any], names: list[str]) -> bytes:
        problem = check_fields(fields)
        if problem is not None:
            raise ValueError(f"job {job_id}: {problem}")
        bad = [n for n in names if not _PICTURE_NAME.fullmatch(n)]
        if bad or len(set(names)) != len(names):
            raise ValueError(
                f"job {job_id}: picture names must be unique plain file names ending in .png "
                f"(letters, digits, '.', '_', '-'), got {names!r}"
            )
        document = {
            "format": _FORMAT,
            "job_id": job_id,
            "created": datetime.now(UTC).isoformat(),
            "fields": dict(fields),
            "pictures": names,
        }
        return json.dumps(document, allow_nan=False, ensure_ascii=False).encode()

    def pending(self) -> list[Entry]:
        """The complete entries, oldest first; stray files in ``ready/`` are moved aside."""
        entries = []
        for path in sorted(self.ready.iterdir()):
            if _ENTRY_NAME.fullmatch(path.name) and path.is_dir():
                entries.append(Entry(path))
            else:
                self._quarantine(Entry(path), "not a spool entry written by the worker")
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
        with os.scandir(self.ready) as it:
            return sum(1 for item in it if item.is_dir())

    @contextlib.contextmanager
    def claim(self, entry: Entry) -> Iterator[Claim | None]:
        """Lock ``entry`` and read it, for the ``with`` block.

        Yields None, without waiting, when another process holds the entry,
        when it is gone, or when it is corrupt (it is then quarantined).
        """
        try:
            fd = lock_file(entry.path / _LOCK, blocking=False)
        except OSError as exc:
            self._quarantine(entry, f"cannot lock the entry: {exc}")
            yield None
            return
        if fd is None:
            yield None
            return
        try:
            try:
                claim = self._load(entry)
            except CorruptEntryError as exc:
                self._quarantine(entry, str(exc))
                yield None
                return
            except Exception as exc:  # whatever is in the file, the entries behind it go on
                self._quarantine(entry, f"result.json unusable: {type(exc).__name__}: {exc}")
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
        if not isinstance(document, dict) or document.get("format") not in _FORMATS:
            raise CorruptEntryError(f"result.json is not a result of format {sorted(_FORMATS)}")
        job_id, fields, names = (document.get(k) for k in ("job_id", "fields", "pictures"))
        if type(job_id) is not int or job_id != entry.job_id:
            raise CorruptEntryError(f"job id {job_id!r} does not match the entry's name")
        if not isinstance(fields, dict):
            raise CorruptEntryError("bad result fields: not an object")
        if (problem := check_fields(fields)) is not None:
            raise CorruptEntryError(f"bad result fields: {problem}")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise CorruptEntryError("'pictures' is not a list of file names")
        paths = tuple(entry.path / _FORMATS[document["format"]] / n for n in names)
        missing = [p.name for p in paths if not _PICTURE_NAME.fullmatch(p.name) or not p.is_file()]
        if missing:
            raise CorruptEntryError(f"picture files missing or misnamed: {missing}")
        return Claim(entry, job_id, fields, paths, self)

    def _discard(self, entry: Entry) -> None:
        trash = self.tmp / f"{entry.name}.done-{uuid.uuid4().hex[:8]}"
        os.rename(entry.path, trash)
        fsync_dir(self.ready)
        shutil.rmtree(trash, ignore_errors=True)

    def _quarantine(self, entry: Entry, reason: str) -> None:
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


class ResultAPI(Protocol):
    """What delivery needs of :class:`worker.api.API`."""

    def update_job_details(self, job_id: int, *args: Any, **kwargs: Any) -> Any:
        """Post one job's update (pictures first); answer ``{"success": true, ...}``."""


@dataclass
class DeliveryReport:
    """What one delivery pass did; ``waiting`` counts what is still in the spool."""

    delivered: int = 0
    dropped: int = 0
    quarantined: int = 0
    busy: int = 0
    waiting: int = 0
    error: APIError | None = field(default=None)


def deliver_pending(outbox: Outbox, api: ResultAPI, log: Any = _log) -> DeliveryReport:
    """Send every spooled result, oldest first, until the server stops answering.

    Accepted (a duplicate too): removed. 404 or 409: the server will never
    take it, so it is removed and the drop logged. Transient failure, or the
    login/rights refused: kept, and the pass stops there (``report.error``),
    since the next entry would fail the same way. Any other refusal (400):
    our result is wrong, so it is quarantined with the server's sentence.
    Entries another process is delivering are skipped (``report.busy``).
    """
    report = DeliveryReport()
    for entry in outbox.pending():
        with outbox.claim(entry) as claim:
            outcome = "busy" if claim is None else _deliver(claim, api, log)
        if isinstance(outcome, APIError):
            report.error = outcome
            break
        setattr(report, outcome, getattr(report, outcome) + 1)
    report.waiting = outbox.count()
    return report


def _deliver(claim: Claim, api: ResultAPI, log: Any) -> APIError | str:
    """Send one claimed entry; the report counter it adds to, or the error ending the pass."""
    log = log.bind(job_id=claim.job_id)
    fields = claim.fields
    try:
        answer = api.update_job_details(
            claim.job_id,
            fields.get("score_test"),
            fields.get("score_validation"),
            fields.get("labels_training"),
            fields.get("labels_test"),
            fields.get("labels_validation"),
            extra_scores_test=fields.get("extra_scores_test"),
            extra_scores_validation=fields.get("extra_scores_validation"),
            message=fields.get("message"),
            success=fields.get("success", True),
            pictures=[str(p) for p in claim.picture_paths],
        )
    except (TransientError, AuthenticationError, PermissionDeniedError) as exc:
        log.warning(
            "result kept in the spool: server unavailable", error=str(exc), status=exc.status
        )
        return exc
    except (NotFoundError, ConflictError) as exc:
        log.warning(
            "result dropped: the server will not take it", error=str(exc), status=exc.status
        )
        claim.done()
        return "dropped"
    except APIError as exc:
        reason = f"server refused the result ({exc.status}): {exc}"
    except (OSError, ValueError) as exc:  # a picture unreadable, a field the client refuses
        reason = f"the result cannot be sent: {exc}"
    else:
        if isinstance(answer, dict) and answer.get("success") is True:
            claim.done()
            log.info(
                "result delivered",
                duplicate=bool(answer.get("duplicate")),
                pictures=len(claim.picture_paths),
            )
            return "delivered"
        reason = f"unexpected answer to the update: {answer!r}"
    claim.quarantine(reason)
    return "quarantined"
