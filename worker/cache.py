"""The machine's dataset cache: a dataset crosses the network once per machine.

Points are cached by dataset id and version (the protocol's promise: the
version changes whenever any point does; a server that sends no version
promises the points of an id never change). Each key is one JSON file,
written by temporary file + fsync + rename, so a reader sees a whole file or
none. A per-key ``flock`` makes the worker processes of a machine fetch a
missing dataset once: the others wait for the lock and then read the file.
An in-process memo in :meth:`DatasetCache.dataset` keeps the built
`Dataset` (the arrays a job process is handed), so that the file is read and
the points become arrays once per version, not once per job. It is bounded
by the bytes of its arrays, not by a count: a course mixes ten or more small
datasets in one stream, and reading and parsing a cached file costs more
than the job it feeds (memoising four of nine datasets, a worker spent a
quarter of its time in `json.loads` and `Dataset.from_points`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from algorithms.dataset import Dataset
from worker.files import lock_file, locked, replace_durably

__all__ = ["DatasetCache", "Points"]

Points = list[dict[str, Any]]

#: Built datasets a worker process keeps, in array bytes: a course's datasets (iris is 5 KB,
#: digits 1 MB) all fit, and a worker never holds much more than one large one.
MEMO_BYTES = 32 * 1024 * 1024

_INFO_KEYS = ("name", "task", "features", "target")  # what Dataset.from_points reads of the info
_SAFE_VERSION = re.compile(r"[A-Za-z0-9._-]{1,64}")
_log = structlog.get_logger(__name__)


class DatasetCache:
    """Points of datasets, on disk under ``cache_dir/datasets/``, shared by processes.

    Args:
        cache_dir: the cache root (``$CACHE_DIRECTORY`` under systemd).
        keep_versions: versions kept on disk per dataset id; older ones are
            deleted when a new one is stored.
        memo_bytes: array bytes of the datasets kept built in this process's
            memory; the most recently used one is kept whatever its size.
    """

    def __init__(
        self, cache_dir: Path | str, *, keep_versions: int = 2, memo_bytes: int = MEMO_BYTES
    ) -> None:
        if keep_versions < 1 or memo_bytes < 0:
            raise ValueError("keep_versions must be at least 1 and memo_bytes at least 0")
        self.directory = Path(cache_dir) / "datasets"
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._remove_stale_temporaries()
        self._keep = keep_versions
        self._memo_bytes = memo_bytes
        self._built: OrderedDict[tuple[int, str | None, str], Dataset] = OrderedDict()
        self._held = 0  # array bytes of the memoised datasets

    def probe(self) -> None:
        """Write and remove a small file: raises OSError when the cache cannot be written."""
        probe = self.directory / f".probe.{os.getpid()}"  # one per process: they start together
        replace_durably(probe, b"probe")
        probe.unlink()

    def _remove_stale_temporaries(self) -> None:
        """Remove temporary files a writer killed mid-write left (an hour is plenty to finish)."""
        for tmp in self.directory.glob(".*.tmp"):
            if time.time() - _mtime(tmp) > 3600:
                tmp.unlink(missing_ok=True)

    def dataset(
        self, dataset_id: int, info: Mapping[str, Any], fetch: Callable[[], Points]
    ) -> Dataset:
        """Dataset ``dataset_id`` built from ``info`` (the protocol's) and its points.

        Memoised by id, version and the info fields the build reads (a task or
        name changed by an operator is picked up even when the points are not);
        points come from the disk cache, or from ``fetch``, as for :meth:`get`.
        The Dataset is immutable; its arrays are shared with later calls.
        Raises ``DatasetError`` for points that make no dataset (nothing is memoised).
        """
        version = info.get("version")
        version = version if isinstance(version, str) else None
        key = (dataset_id, version, repr([info.get(name) for name in _INFO_KEYS]))
        if key in self._built:
            self._built.move_to_end(key)
            return self._built[key]
        built = Dataset.from_points(info, self.get(dataset_id, version, fetch))
        if self._memo_bytes > 0:
            self._built[key] = built
            self._held += built.nbytes
            while self._held > self._memo_bytes and len(self._built) > 1:
                _, evicted = self._built.popitem(last=False)
                self._held -= evicted.nbytes
        return built

    def get(self, dataset_id: int, version: str | None, fetch: Callable[[], Points]) -> Points:
        """The points of ``dataset_id`` at ``version``, calling ``fetch`` only if nobody has.

        Read from the disk cache on every call: :meth:`dataset` memoises what jobs use.

        Errors of ``fetch`` propagate and leave nothing cached.
        """
        path = self._path(dataset_id, version)
        points = self._read(path)
        if points is None:
            with locked(path.with_suffix(".lock")):
                points = self._read(path)  # another process may have fetched it meanwhile
                if points is None:
                    points = self._store(path, fetch())
                    self._prune(dataset_id, keep=path)
        return points

    def _path(self, dataset_id: int, version: str | None) -> Path:
        if type(dataset_id) is not int or dataset_id < 0:
            raise ValueError(f"dataset id must be a non-negative int, not {dataset_id!r}")
        if version is None:
            tag = "unversioned"
        elif _SAFE_VERSION.fullmatch(version):
            tag = f"v{version}"
        else:  # whatever the server sends, it never becomes a path of its own choosing
            tag = "h" + hashlib.sha256(version.encode()).hexdigest()[:32]
        return self.directory / f"{dataset_id}-{tag}.json"

    @staticmethod
    def _read(path: Path) -> Points | None:
        """The cached points, or None when missing or unusable (then fetched again)."""
        try:
            points = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError) as exc:
            _log.warning(
                "dataset cache file unreadable, fetching again", path=str(path), error=str(exc)
            )
            return None
        if not isinstance(points, list) or not all(isinstance(p, dict) for p in points):
            _log.warning(
                "dataset cache file is not a list of points, fetching again", path=str(path)
            )
            return None
        return points

    @staticmethod
    def _store(path: Path, points: Points) -> Points:
        if not isinstance(points, list):
            raise TypeError(f"fetch must return a list of point dicts, not {type(points).__name__}")
        replace_durably(path, json.dumps(points, separators=(",", ":")).encode())
        return points

    def _prune(self, dataset_id: int, *, keep: Path) -> None:
        """Delete all but the newest ``keep_versions`` files of ``dataset_id``.

        A process still reading a deleted file keeps its open copy; one that
        has not opened it yet finds it missing and fetches it again.
        """
        others = [p for p in self.directory.glob(f"{dataset_id}-*.json") if p != keep]
        others.sort(key=_mtime, reverse=True)
        for old in others[self._keep - 1 :]:
            # Without waiting: a process holding that lock may be waiting for ours.
            fd = lock_file(old.with_suffix(".lock"), blocking=False)
            if fd is None:
                continue  # being fetched right now; the next prune takes it
            try:
                old.unlink(missing_ok=True)
                old.with_suffix(".lock").unlink(missing_ok=True)
            finally:
                os.close(fd)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
