"""Put datasets into the server: from a CSV file, or from rows built in Python (the demo).

Both paths end in ``import_rows``, which writes the dataset and all its points in one
transaction, so a refused import leaves nothing behind. Every refusal is a
``DatasetImportError`` whose message names the line (for a file) and what is allowed, because
the person reading it is fixing a spreadsheet, not reading a traceback.

CSV rules: a header row; the target column (default ``label``) holds the labels; an optional
``set`` column puts each row in ``training``, ``test`` or ``validation`` instead of the random
split; every other column is a feature whose values must be finite numbers. Labels keep their
type: a column of integers stays integers, of numbers floats (always floats for regression),
anything else stays text. Clustering rows may leave the label empty (no label), or the file
may have no label column at all. Blank lines are skipped; cells are stripped of spaces.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from django.db import IntegrityError, models, transaction

from server.models import SETS, TASKS, Dataset, Point

Label = int | float | str | None
SplitFractions = tuple[float, float, float]

RESERVED_COLUMNS = ("id", "set")
DEFAULT_TARGET = "label"
_INT = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|infinity|nan)", re.I)


class DatasetImportError(ValueError):
    """A dataset was refused; ``line`` is the CSV line at fault (1 is the header), if any."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.line = line


class Row(NamedTuple):
    """One point to import: feature values, label (``None`` for none) and set name."""

    values: dict[str, float]
    label: Label
    set: str


def import_rows(
    name: str,
    task: str,
    features: Sequence[str],
    rows: Iterable[Row],
    *,
    target: str = DEFAULT_TARGET,
    description: str = "",
) -> Dataset:
    """Create dataset ``name`` with ``rows`` as its points, all or nothing, and return it."""
    check_task(task)
    _check_columns(list(features), target)
    points = list(rows)
    _check_sets_filled(points)
    try:
        with transaction.atomic():
            check_name_free(name)
            dataset = Dataset.objects.create(
                name=name,
                description=description,
                task=task,
                features=list(features),
                target=target,
            )
            Point.objects.bulk_create(
                (Point(dataset=dataset, set=r.set, values=r.values, label=r.label) for r in points),
                batch_size=500,
            )
            dataset.refresh_version()
    except IntegrityError as error:  # a concurrent import took the name after our check
        raise DatasetImportError(f"a dataset named {name!r} already exists") from error
    return dataset


def import_csv(
    path: Path,
    *,
    name: str,
    task: str,
    target: str | None = None,
    split: SplitFractions = (0.6, 0.2, 0.2),
    seed: int | None = None,
) -> Dataset:
    """Import the CSV file at ``path`` as dataset ``name`` (see the module docstring)."""
    check_task(task)
    check_split(split)
    check_name_free(name)
    header, records = _read_csv(path)
    columns = _Columns.from_header(header, task, target)
    values: list[dict[str, float]] = []
    raw_labels: list[str] = []
    sets: list[str] = []
    for line, cells in records:
        if len(cells) != len(header):
            raise DatasetImportError(
                f"{len(cells)} values, but the header has {len(header)} columns", line=line
            )
        values.append(columns.features_of(cells, line))
        raw_labels.append(columns.label_of(cells))
        sets.append(columns.set_of(cells, line))
    labels = _typed_labels(raw_labels, task, columns.target, [line for line, _ in records])
    if columns.set_index is None:
        sets = split_sets(len(records), split, seed)
    rows = [Row(*fields) for fields in zip(values, labels, sets, strict=True)]
    return import_rows(name, task, columns.features, rows, target=columns.target)


def check_task(task: str) -> None:
    """Refuse a task that is not one of ``TASKS``."""
    if task not in TASKS:
        raise DatasetImportError(f"task {task!r} is not one of {', '.join(TASKS)}")


def check_name_free(name: str) -> None:
    """Refuse an empty, too long or already used dataset name."""
    limit = _max_length("name")
    if not name.strip():
        raise DatasetImportError("the dataset name is empty")
    if len(name) > limit:
        raise DatasetImportError(f"the dataset name is {len(name)} characters; at most {limit}")
    if Dataset.objects.filter(name=name).exists():
        raise DatasetImportError(f"a dataset named {name!r} already exists; choose another name")


def check_split(split: Sequence[float]) -> None:
    """Refuse a split that is not three non-negative finite fractions summing to 1."""
    shown = ",".join(str(part) for part in split)
    if len(split) != 3 or not all(math.isfinite(part) and part >= 0 for part in split):
        raise DatasetImportError(
            f"split {shown} must be three non-negative numbers (training,test,validation)"
        )
    if not math.isclose(sum(split), 1.0, abs_tol=1e-6):
        raise DatasetImportError(f"split {shown} sums to {sum(split):g}, not 1")


def split_sets(count: int, split: SplitFractions, seed: int | None) -> list[str]:
    """Give ``count`` rows their sets: exact sizes, random order reproducible from ``seed``.

    Sizes are the fractions of ``count`` rounded by largest remainder, so they always add up
    to ``count`` and each is within one of its exact share.
    """
    shares = [fraction * count for fraction in split]
    sizes = [math.floor(share) for share in shares]
    by_remainder = sorted(range(3), key=lambda i: sizes[i] - shares[i])
    for index in by_remainder[: count - sum(sizes)]:
        sizes[index] += 1
    ordered = [name for name, size in zip(SETS, sizes, strict=True) for _ in range(size)]
    order = np.random.default_rng(seed).permutation(count)
    sets = [""] * count
    for position, row in enumerate(order):
        sets[int(row)] = ordered[position]
    return sets


def _check_columns(features: list[str], target: str) -> None:
    limit = _max_length("target")
    if not features:
        raise DatasetImportError("there are no feature columns; a dataset needs at least one")
    if not target or len(target) > limit:
        raise DatasetImportError(f"the target column name must have 1 to {limit} characters")
    for column in [*features, target]:
        if column in RESERVED_COLUMNS:
            raise DatasetImportError(
                f"column {column!r} cannot be a feature or the target: "
                f"{' and '.join(RESERVED_COLUMNS)} are reserved"
            )


def _max_length(field_name: str) -> int:
    """The model's own limit, so that a long name is refused here, not by the database."""
    field = Dataset._meta.get_field(field_name)
    assert isinstance(field, models.CharField)
    assert field.max_length is not None
    return field.max_length


def _check_sets_filled(rows: list[Row]) -> None:
    for row in rows:
        if row.set not in SETS:
            raise DatasetImportError(f"set {row.set!r} is not one of {', '.join(SETS)}")
    empty = [name for name in SETS if not any(row.set == name for row in rows)]
    if empty:
        sets = f"{' and '.join(empty)} set{'s' if len(empty) > 1 else ''}"
        rows_in_all = f"{len(rows)} row{'s' if len(rows) != 1 else ''} in all"
        raise DatasetImportError(
            f"the {sets} would be empty ({rows_in_all}): "
            f"training, test and validation each need at least one point"
        )


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Return the stripped header and the non-blank records with their line numbers."""
    records: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    try:
        with open(path, encoding="utf-8-sig", newline="") as file:
            reader = csv.reader(file)
            for cells in reader:
                _refuse_nul(cells, reader.line_num)
                stripped = [cell.strip() for cell in cells]
                if header is None:
                    header = stripped
                elif any(stripped):
                    records.append((reader.line_num, stripped))
    except UnicodeDecodeError as error:
        raise DatasetImportError(f"{path} is not UTF-8 text ({error.reason})") from error
    except csv.Error as error:
        raise DatasetImportError(f"{path} is not valid CSV: {error}") from error
    except OSError as error:
        raise DatasetImportError(f"cannot read {path}: {error.strerror or error}") from error
    if header is None:
        raise DatasetImportError(f"{path} is empty; it needs a header row and data rows")
    if not records:
        raise DatasetImportError("the header is the only row; there are no data rows", line=1)
    return header, records


def _refuse_nul(cells: list[str], line: int) -> None:
    """NUL is valid in a CSV cell but not text: PostgreSQL cannot store it in a string."""
    if any("\x00" in cell for cell in cells):
        raise DatasetImportError("contains a NUL character (byte 0), which is not text", line=line)


class _Columns(NamedTuple):
    """Where the features, the target and the set live in each record."""

    features: list[str]
    feature_indexes: list[int]
    target: str
    target_index: int | None
    set_index: int | None

    @classmethod
    def from_header(cls, header: list[str], task: str, target: str | None) -> _Columns:
        for index, column in enumerate(header):
            if not column:
                raise DatasetImportError(f"column {index + 1} of the header has no name", line=1)
            if header.count(column) > 1:
                raise DatasetImportError(f"column {column!r} appears twice in the header", line=1)
        name = target or DEFAULT_TARGET
        columns = ", ".join(header)
        if target is not None and target not in header:
            raise DatasetImportError(
                f"there is no column {target!r} (columns: {columns}) to be the target", line=1
            )
        if name not in header and task != "clustering":
            raise DatasetImportError(
                f"there is no {name!r} column (columns: {columns}); {task} needs labels: "
                "name the label column with --target",
                line=1,
            )
        target_index = header.index(name) if name in header else None
        set_index = header.index("set") if "set" in header else None
        indexes = [i for i in range(len(header)) if i not in (target_index, set_index)]
        features = [header[i] for i in indexes]
        try:
            _check_columns(features, name)
        except DatasetImportError as error:
            raise DatasetImportError(str(error), line=1) from error
        return cls(features, indexes, name, target_index, set_index)

    def features_of(self, cells: list[str], line: int) -> dict[str, float]:
        return {
            name: _number(cells[index], f"column {name!r}", line)
            for name, index in zip(self.features, self.feature_indexes, strict=True)
        }

    def label_of(self, cells: list[str]) -> str:
        return "" if self.target_index is None else cells[self.target_index]

    def set_of(self, cells: list[str], line: int) -> str:
        if self.set_index is None:
            return ""
        value = cells[self.set_index]
        if value not in SETS:
            raise DatasetImportError(f"set is {value!r}, not one of {', '.join(SETS)}", line=line)
        return value


def _number(text: str, what: str, line: int) -> float:
    if not text:
        raise DatasetImportError(f"{what} is empty; it needs a number", line=line)
    if not _NUMBER.fullmatch(text):
        raise DatasetImportError(f"{what} is {text!r}, not a number", line=line)
    number = float(text)
    if not math.isfinite(number):
        raise DatasetImportError(f"{what} is {text!r}, not a finite number", line=line)
    return number


def _typed_labels(raw: list[str], task: str, target: str, lines: list[int]) -> list[Label]:
    """Give a column of label texts one type: int, float (always for regression) or str.

    Empty labels are refused except for clustering, where they mean "no label".
    """
    what = f"target {target!r}"
    for text, line in zip(raw, lines, strict=True):
        if not text and task != "clustering":
            raise DatasetImportError(
                f"{what} is empty; {task} needs a label on every row", line=line
            )
    given = [text for text in raw if text]
    if task != "regression" and given and all(_INT.fullmatch(text) for text in given):
        return [int(text) if text else None for text in raw]
    if task == "regression" or (given and all(_NUMBER.fullmatch(text) for text in given)):
        return [_number(t, what, line) if t else None for t, line in zip(raw, lines, strict=True)]
    return [text or None for text in raw]
