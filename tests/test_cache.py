"""The dataset cache: one fetch per machine and version, safe under processes and corruption."""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from algorithms.dataset import Dataset
from algorithms.errors import DatasetError
from worker.cache import DatasetCache, Points


def make_points(n: int = 2000, shift: float = 0.0) -> Points:
    """Point dicts as the server sends them."""
    sets = ("training", "test", "validation")
    return [
        {"id": i, "x": i / 7 + shift, "y": -i / 3, "label": i % 3, "set": sets[i % 3]}
        for i in range(1, n + 1)
    ]


class Fetcher:
    """A fetch callable that counts its calls and returns the points it was given."""

    def __init__(self, points: Points) -> None:
        self.points = points
        self.calls = 0

    def __call__(self) -> Points:
        self.calls += 1
        return self.points


def _get_in_child(cache_dir: Path, counter: Path, arrived: Any) -> None:
    """One worker process: announce, then ask for dataset 5 many times."""

    def fetch() -> Points:
        with open(counter, "a", encoding="utf-8") as f:
            f.write("fetch\n")
        # Finish only once all three processes are about to ask: the others are then
        # waiting for the lock (or read the file after), never fetching on their own.
        for _ in range(3):
            if not arrived.acquire(timeout=20):
                raise AssertionError("a second process fetched the dataset")
        return make_points()

    arrived.release()
    cache = DatasetCache(cache_dir)
    for _ in range(5):
        assert cache.get(5, "abc123", fetch) == make_points()
    assert DatasetCache(cache_dir).get(5, "abc123", fetch) == make_points()


def test_three_processes_fetch_once(tmp_path: Path) -> None:
    """Three processes asking for the same dataset at once fetch it once between them."""
    counter = tmp_path / "fetches.txt"
    context = multiprocessing.get_context("fork")
    arrived = context.Semaphore(0)
    children = [
        context.Process(target=_get_in_child, args=(tmp_path / "cache", counter, arrived))
        for _ in range(3)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=120)
    assert [child.exitcode for child in children] == [0, 0, 0]
    assert counter.read_text().splitlines() == ["fetch"]


def test_repeated_gets_fetch_once(tmp_path: Path) -> None:
    """Repeated gets, in this process or a new cache object, never fetch again."""
    fetch = Fetcher(make_points())
    cache = DatasetCache(tmp_path)
    for _ in range(3):
        assert cache.get(1, "v1", fetch) == make_points()
    assert DatasetCache(tmp_path).get(1, "v1", fetch) == make_points()
    assert fetch.calls == 1


def test_new_version_refetches_and_old_versions_go(tmp_path: Path) -> None:
    """A new version is fetched; only the newest keep_versions files of a dataset stay."""
    cache = DatasetCache(tmp_path, keep_versions=2)
    fetchers = {v: Fetcher(make_points(50, shift=i)) for i, v in enumerate(("a", "b", "c"))}
    for version, fetch in fetchers.items():
        assert cache.get(1, version, fetch) == fetch.points
    assert cache.get(2, "a", Fetcher(make_points(3))) == make_points(3)
    assert [f.calls for f in fetchers.values()] == [1, 1, 1]
    files = sorted(p.name for p in cache.directory.glob("*.json"))
    assert files == ["1-vb.json", "1-vc.json", "2-va.json"]
    again = Fetcher(make_points(50))
    assert DatasetCache(tmp_path).get(1, "a", again) == make_points(50)
    assert again.calls == 1


def test_unversioned_dataset(tmp_path: Path) -> None:
    """A dataset without a version is cached under <id>-unversioned: its points never change."""
    fetch = Fetcher(make_points(10))
    DatasetCache(tmp_path).get(4, None, fetch)
    DatasetCache(tmp_path).get(4, None, fetch)
    assert fetch.calls == 1
    assert (tmp_path / "datasets" / "4-unversioned.json").is_file()


@pytest.mark.parametrize(
    "damage",
    [
        lambda path: path.write_text('[{"id": 1, "x":'),
        lambda path: path.write_text('{"points": []}'),
        lambda path: path.write_bytes(b"\xff\xfe"),
    ],
)
def test_corrupt_file_refetched(tmp_path: Path, damage: Callable[[Path], Any]) -> None:
    """A truncated or foreign cache file is fetched again and replaced by a good one."""
    fetch = Fetcher(make_points(100))
    DatasetCache(tmp_path).get(3, "v", fetch)
    path = tmp_path / "datasets" / "3-vv.json"
    damage(path)
    assert DatasetCache(tmp_path).get(3, "v", fetch) == make_points(100)
    assert fetch.calls == 2
    assert json.loads(path.read_text()) == make_points(100)


INFO = {"name": "d", "task": "classification", "features": ["x", "y"], "target": "label"}


def test_memo_is_bounded(tmp_path: Path) -> None:
    """The in-process memo keeps only the most recently used built datasets, by their bytes."""
    one = Dataset.from_points(INFO, make_points(9)).nbytes
    cache = DatasetCache(tmp_path, memo_bytes=2 * one)
    info = {**INFO, "version": "v"}
    fetchers = {i: Fetcher(make_points(9, shift=i)) for i in (1, 2, 3)}
    for dataset_id, fetch in fetchers.items():
        cache.dataset(dataset_id, info, fetch)
    for path in cache.directory.glob("*.json"):
        path.unlink()  # from now on only the memo can answer without fetching
    cache.dataset(3, info, fetchers[3])
    cache.dataset(1, info, fetchers[1])
    assert [f.calls for f in fetchers.values()] == [2, 1, 1]


def test_memo_keeps_many_small_datasets(tmp_path: Path) -> None:
    """By default a course's stream of ten small datasets is read from disk once each."""
    cache = DatasetCache(tmp_path)
    info = {**INFO, "version": "v"}
    fetchers = {i: Fetcher(make_points(150, shift=i)) for i in range(10)}
    for dataset_id, fetch in fetchers.items():
        cache.dataset(dataset_id, info, fetch)
    for path in cache.directory.glob("*.json"):
        path.unlink()
    for dataset_id, fetch in fetchers.items():
        cache.dataset(dataset_id, info, fetch)
    assert [f.calls for f in fetchers.values()] == [1] * 10


def test_memo_keeps_the_latest_dataset_whatever_its_size(tmp_path: Path) -> None:
    """A dataset larger than the bound is still built once while it is the one in use."""
    cache = DatasetCache(tmp_path, memo_bytes=1)
    fetch = Fetcher(make_points(30))
    first = cache.dataset(1, {**INFO, "version": "v"}, fetch)
    assert cache.dataset(1, {**INFO, "version": "v"}, fetch) is first
    assert fetch.calls == 1


def test_built_dataset_is_memoised_per_version_and_info(tmp_path: Path) -> None:
    """The built Dataset is reused until the version, or a field the build reads, changes."""
    cache = DatasetCache(tmp_path)
    fetch = Fetcher(make_points(30))
    first = cache.dataset(1, {**INFO, "version": "v1"}, fetch)
    expected = Dataset.from_points(INFO, make_points(30))
    np.testing.assert_array_equal(first.test.X, expected.test.X)
    assert first.test.ids == expected.test.ids
    assert cache.dataset(1, {**INFO, "version": "v1", "description": "new"}, fetch) is first
    regression = cache.dataset(1, {**INFO, "version": "v1", "task": "regression"}, fetch)
    assert regression.task == "regression"
    moved = Fetcher(make_points(30, shift=1.0))
    newer = cache.dataset(1, {**INFO, "version": "v2"}, moved)
    assert newer.training.X[0, 0] == first.training.X[0, 0] + 1.0
    assert (fetch.calls, moved.calls) == (1, 1)


def test_points_that_make_no_dataset_are_refused_every_time(tmp_path: Path) -> None:
    """A DatasetError names the bad point, and nothing is memoised in its place."""
    cache = DatasetCache(tmp_path)
    points = make_points(6)
    points[2]["x"] = "tall"
    for _ in range(2):
        with pytest.raises(DatasetError, match="Point 3 has the non-numeric value 'tall'"):
            cache.dataset(2, {**INFO, "version": "v"}, Fetcher(points))


def test_fetch_error_caches_nothing(tmp_path: Path) -> None:
    """When the fetch fails the error propagates and the next get tries again."""
    cache = DatasetCache(tmp_path)

    def failing() -> Points:
        raise ConnectionError("server down")

    with pytest.raises(ConnectionError):
        cache.get(1, "v", failing)
    assert list(cache.directory.glob("*.json")) == []
    assert cache.get(1, "v", Fetcher(make_points(3))) == make_points(3)


def test_version_never_escapes_the_cache(tmp_path: Path) -> None:
    """Whatever version string a server sends, the file stays inside the cache directory."""
    cache = DatasetCache(tmp_path / "cache")
    cache.get(1, "../../escape", Fetcher(make_points(2)))
    (stored,) = cache.directory.glob("*.json")
    assert stored.parent == cache.directory
    assert stored.name.startswith("1-h")
    assert not list(tmp_path.glob("escape*"))
    with pytest.raises(ValueError, match="dataset id must be a non-negative int"):
        cache.get(-1, "v", Fetcher([]))
