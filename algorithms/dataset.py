"""Point dicts of the protocol turned into the arrays an estimator sees.

The conversion is strict on purpose: a missing, null, boolean, textual or
non-finite feature value is refused with the point's id and the feature's
name, instead of being guessed at, because any guess (zero, the mean,
``float("1.5")``) would be hidden preprocessing that changes a student's
result. Labels keep their own values and types (strings stay strings), so
predicted labels can be sent back as the dataset spells them.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from algorithms.errors import DatasetError

__all__ = ["SETS", "TASKS", "Dataset", "Split"]

TASKS = ("classification", "regression", "clustering")
SETS = ("training", "test", "validation")
_RESERVED_KEYS = ("id", "set")


@dataclass(frozen=True)
class Split:
    """The points of one set, ordered by id: their ids, feature matrix and labels.

    ``y`` is ``None`` when no point of the set has a label (an unlabelled
    clustering dataset, or test labels hidden from a non-staff account).
    """

    ids: tuple[int, ...]
    X: np.ndarray
    y: np.ndarray | None


@dataclass(frozen=True)
class Dataset:
    """A dataset ready for an estimator: its task, features and three splits."""

    name: str
    task: str
    features: tuple[str, ...]
    target: str
    training: Split
    test: Split
    validation: Split

    @property
    def nbytes(self) -> int:
        """What its arrays and ids take, in bytes (the labels' Python objects not counted)."""
        total = 0
        for split in (self.training, self.test, self.validation):
            total += split.X.nbytes + 8 * len(split.ids)
            if split.y is not None:
                total += split.y.nbytes
        return total

    def split(self, name: str) -> Split:
        """The split called ``name`` (``training``, ``test`` or ``validation``)."""
        if name not in SETS:
            raise DatasetError(f"There is no set {name!r}; the sets are {', '.join(SETS)}.")
        split: Split = getattr(self, name)
        return split

    @classmethod
    def from_points(cls, info: Mapping[str, Any], points: Sequence[Mapping[str, Any]]) -> Dataset:
        """Build a dataset from the protocol's dataset info dict and its point dicts.

        Raises ``DatasetError`` naming the point id, feature or set that is wrong.
        """
        name = str(info.get("name", ""))
        task = info.get("task")
        if task not in TASKS:
            raise DatasetError(
                f"Dataset {name!r} has task {task!r}; the task must be one of {', '.join(TASKS)}."
            )
        target = info.get("target") or "label"
        if not isinstance(target, str):
            raise DatasetError(f"Dataset {name!r} names target {target!r}; it must be a string.")
        features = _features(name, info.get("features"), points, target)
        by_set: dict[str, list[Mapping[str, Any]]] = {s: [] for s in SETS}
        seen: set[int] = set()
        for index, point in enumerate(points):
            point_id = _point_id(point, index, seen)
            by_set[_set_of(point, point_id)].append(point)
        label_kind = _label_kind(points, target)
        splits = {s: _split(s, by_set[s], features, target, label_kind) for s in SETS}
        return cls(name=name, task=task, features=features, target=target, **splits)


def _features(
    name: str, given: Any, points: Sequence[Mapping[str, Any]], target: str
) -> tuple[str, ...]:
    """The feature names: the info's list, else the first point's other keys in order."""
    if given is not None:
        if not isinstance(given, list | tuple) or not all(isinstance(f, str) for f in given):
            raise DatasetError(
                f"Dataset {name!r} lists features {given!r}; they must be a list of names."
            )
        features = tuple(given)
    elif points:
        excluded = {*_RESERVED_KEYS, target}
        features = tuple(key for key in points[0] if key not in excluded)
    else:
        raise DatasetError(f"Dataset {name!r} has no points, so its features are unknown.")
    if not features:
        raise DatasetError(f"Dataset {name!r} has no features; a point needs at least one number.")
    return features


def _point_id(point: Mapping[str, Any], index: int, seen: set[int]) -> int:
    """The point's integer id, refused when missing, not an int, or seen before."""
    point_id = point.get("id") if isinstance(point, Mapping) else None
    if not isinstance(point_id, int) or isinstance(point_id, bool):
        raise DatasetError(
            f"Point number {index + 1} has id {point_id!r}; every point needs an integer 'id'."
        )
    if point_id in seen:
        raise DatasetError(f"Point id {point_id} appears twice; every point needs its own id.")
    seen.add(point_id)
    return point_id


def _set_of(point: Mapping[str, Any], point_id: int) -> str:
    """The point's set name, refused unless it is one of ``SETS``."""
    name = point.get("set")
    if name not in SETS:
        raise DatasetError(
            f"Point {point_id} is in set {name!r}; the set must be one of {', '.join(SETS)}."
        )
    return str(name)


def _label_kind(points: Sequence[Mapping[str, Any]], target: str) -> type:
    """The one kind (``str``, ``float`` or ``int``) shared by every non-null label.

    Mixing strings and numbers is refused: scikit-learn cannot order such
    classes, and it is almost always a data-entry mistake.
    """
    kinds: dict[type, int] = {}
    for point in points:
        label = point.get(target)
        if label is None:
            continue
        if isinstance(label, bool) or not isinstance(label, int | float | str):
            raise DatasetError(
                f"Point {point['id']} has label {label!r} in {target!r}; "
                "a label must be an int, a float, a string or null."
            )
        if isinstance(label, float) and not math.isfinite(label):
            raise DatasetError(
                f"Point {point['id']} has the non-finite label {label!r} in {target!r}; "
                "a numeric label must be a finite number."
            )
        kinds.setdefault(type(label), point["id"])
    if str in kinds and len(kinds) > 1:
        number_id = next(pid for kind, pid in kinds.items() if kind is not str)
        raise DatasetError(
            f"Labels in {target!r} mix strings (point {kinds[str]}) and numbers "
            f"(point {number_id}); use one kind of label for the whole dataset."
        )
    if str in kinds:
        return str
    return float if float in kinds else int


def _split(
    set_name: str,
    points: list[Mapping[str, Any]],
    features: tuple[str, ...],
    target: str,
    label_kind: type,
) -> Split:
    """One set's ids, float64 feature matrix and labels (``None`` when all are null)."""
    points = sorted(points, key=lambda p: int(p["id"]))
    ids = tuple(int(p["id"]) for p in points)
    X = _plain_features(points, features)
    if X is None:  # something to refuse, or numbers of other types: one value at a time
        X = np.array([[_feature(p, f) for f in features] for p in points], dtype=np.float64)
    X = X.reshape(len(points), len(features))
    labels = [p.get(target) for p in points]
    missing = [pid for pid, label in zip(ids, labels, strict=True) if label is None]
    if len(missing) == len(ids):
        return Split(ids=ids, X=X, y=None)
    if missing:
        raise DatasetError(
            f"Point {missing[0]} of the {set_name} set has no label in {target!r} while other "
            f"{set_name} points have one; label every point of a set, or none."
        )
    dtype = object if label_kind is str else label_kind
    return Split(ids=ids, X=X, y=np.array(labels, dtype=dtype))


def _plain_features(
    points: list[Mapping[str, Any]], features: tuple[str, ...]
) -> np.ndarray | None:
    """The feature matrix when every value is a finite JSON int or float, else None.

    The common case, checked a whole set at a time: four times faster than
    `_feature` on each value, which then runs only to find and name what is wrong.
    """
    try:
        values = [point[feature] for point in points for feature in features]
    except (KeyError, TypeError):
        return None
    if not all(type(value) is float or type(value) is int for value in values):
        return None  # bools, None, strings, numpy scalars
    X = np.array(values, dtype=np.float64)
    return X if np.isfinite(X).all() else None


def _feature(point: Mapping[str, Any], feature: str) -> float:
    """One feature value as a float, refused unless it is a finite number (bools are not)."""
    if feature not in point:
        raise DatasetError(f"Point {point['id']} has no value for feature {feature!r}.")
    value = point[feature]
    if value is None:
        raise DatasetError(
            f"Point {point['id']} has a null value for feature {feature!r}; "
            "every feature value must be a number."
        )
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise DatasetError(
            f"Point {point['id']} has the non-numeric value {value!r} for feature {feature!r}; "
            "every feature value must be a number."
        )
    number = float(value)
    if not math.isfinite(number):
        raise DatasetError(
            f"Point {point['id']} has the non-finite value {value!r} for feature {feature!r}; "
            "every feature value must be a finite number."
        )
    return number
