"""``mlworker-server import-dataset``: a real CLI process, read back through worker.api."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import RunningServer

from worker.api import API

pytestmark = pytest.mark.slow  # end to end: one `mlworker-server` CLI process per case

ROWS = 20


@pytest.fixture(scope="module")
def server(start_server: Any) -> RunningServer:
    running: RunningServer = start_server(demo=False)
    running.add_user("backend", "foobar", admin=True)
    return running


@pytest.fixture(scope="module")
def admin(server: RunningServer) -> API:
    return server.api("backend", "foobar")


def write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def toy_csv(tmp_path: Path) -> Path:
    """20 rows: x is the row number, y a float, label a word, size a small int."""
    lines = ["x,y,label,size"]
    lines += [f"{i},{i / 4},{'cat' if i % 3 else 'dog'},{i % 4}" for i in range(ROWS)]
    return write(tmp_path, "\n".join(lines) + "\n")


def sets_by_x(admin: API, dataset: int) -> list[str]:
    """The set of each point, in the order of the file's rows (x is the row number)."""
    points = sorted(admin.get_points(dataset), key=lambda point: point["x"])
    return [point["set"] for point in points]


def test_good_csv_imports_with_split_counts_and_types(
    server: RunningServer, admin: API, tmp_path: Path
) -> None:
    """A good CSV becomes a dataset: 60/20/20 counts, float features, labels of their own type."""
    dataset = server.import_dataset(toy_csv(tmp_path), "toy", "classification", "--seed", "1")
    info = admin.get_datasets()[dataset]
    assert info["name"] == "toy"
    assert info["task"] == "classification"
    assert info["features"] == ["x", "y", "size"]
    assert info["target"] == "label"
    assert info["points"] == {"training": 12, "test": 4, "validation": 4}
    points = sorted(admin.get_points(dataset), key=lambda point: point["x"])
    assert [point["x"] for point in points] == [float(i) for i in range(ROWS)]
    assert all(isinstance(point["x"], float) for point in points)
    assert [point["y"] for point in points] == [i / 4 for i in range(ROWS)]
    assert [point["label"] for point in points] == ["cat" if i % 3 else "dog" for i in range(ROWS)]
    assert Counter(point["set"] for point in points) == {"training": 12, "test": 4, "validation": 4}


def test_target_option_keeps_int_labels_and_other_columns_as_features(
    server: RunningServer, admin: API, tmp_path: Path
) -> None:
    """--target picks the label column; an integer column stays ints; 'label' is a feature."""
    text = "label,size\n" + "".join(f"{i * 1.5},{i % 4}\n" for i in range(ROWS))
    dataset = server.import_dataset(
        write(tmp_path, text), "by-size", "classification", "--target", "size"
    )
    info = admin.get_datasets()[dataset]
    assert (info["features"], info["target"]) == (["label"], "size")
    points = sorted(admin.get_points(dataset), key=lambda point: point["label"])
    assert [point["size"] for point in points] == [i % 4 for i in range(ROWS)]
    assert all(type(point["size"]) is int for point in points)


def test_regression_labels_are_floats(server: RunningServer, admin: API, tmp_path: Path) -> None:
    """Regression targets are floats even when written as integers."""
    text = "x,label\n" + "".join(f"{i},{i * 2}\n" for i in range(ROWS))
    dataset = server.import_dataset(write(tmp_path, text), "line", "regression")
    points = sorted(admin.get_points(dataset), key=lambda point: point["x"])
    assert [point["label"] for point in points] == [float(i * 2) for i in range(ROWS)]
    assert all(type(point["label"]) is float for point in points)


def test_clustering_labels_may_be_empty_or_absent(
    server: RunningServer, admin: API, tmp_path: Path
) -> None:
    """Clustering takes empty labels as null, and a file without a label column too."""
    some = "x,label\n" + "".join(f"{i},{'' if i % 2 else 'A'}\n" for i in range(ROWS))
    partly = server.import_dataset(write(tmp_path, some, "some.csv"), "partly", "clustering")
    labels = [point["label"] for point in sorted(admin.get_points(partly), key=lambda p: p["x"])]
    assert labels == [None if i % 2 else "A" for i in range(ROWS)]
    none = "x,y\n" + "".join(f"{i},{-i}\n" for i in range(ROWS))
    bare = server.import_dataset(write(tmp_path, none, "none.csv"), "bare", "clustering")
    assert admin.get_datasets()[bare]["features"] == ["x", "y"]
    assert {point["label"] for point in admin.get_points(bare)} == {None}


def test_set_column_overrides_the_split(server: RunningServer, admin: API, tmp_path: Path) -> None:
    """Each row lands in the set its `set` column names, whatever --split says."""
    wanted = ["training"] * 5 + ["test"] * 3 + ["validation"] * 2
    text = "x,set,label\n" + "".join(f"{i},{s},{i % 2}\n" for i, s in enumerate(wanted))
    dataset = server.import_dataset(
        write(tmp_path, text), "fixed", "classification", "--split", "0.1,0.1,0.8"
    )
    assert admin.get_datasets()[dataset]["features"] == ["x"]
    assert sets_by_x(admin, dataset) == wanted


def test_same_seed_same_split(server: RunningServer, admin: API, tmp_path: Path) -> None:
    """The same --seed gives the same split; another seed gives another one."""
    path = toy_csv(tmp_path)
    first = server.import_dataset(path, "seed-a", "classification", "--seed", "7")
    again = server.import_dataset(path, "seed-b", "classification", "--seed", "7")
    other = server.import_dataset(path, "seed-c", "classification", "--seed", "8")
    assert sets_by_x(admin, first) == sets_by_x(admin, again)
    assert sets_by_x(admin, first) != sets_by_x(admin, other)


def test_split_sizes_are_exact_by_largest_remainder(
    server: RunningServer, admin: API, tmp_path: Path
) -> None:
    """7 rows at 0.6,0.2,0.2 (4.2, 1.4, 1.4 rows) split 4, 2, 1: sizes add up, none empty."""
    text = "x,label\n" + "".join(f"{i},{i % 2}\n" for i in range(7))
    dataset = server.import_dataset(write(tmp_path, text), "seven", "classification")
    assert admin.get_datasets()[dataset]["points"] == {"training": 4, "test": 2, "validation": 1}


HEAD = "x,y,label\n" + "".join(f"{i},{i / 2},{i % 2}\n" for i in range(10))  # lines 1-11


def bad(case: str, text: str, message: str, *args: str) -> Any:
    """A refused import: the file, what stderr must say, and the arguments (else classification)."""
    return pytest.param(text, message, args or ("--task", "classification"), id=case)


BAD_CASES = [
    bad("not a number", HEAD + "5,abc,1\n", "line 12: column 'y' is 'abc', not a number"),
    bad("not finite", HEAD + "inf,1,1\n", "line 12: column 'x' is 'inf', not a finite number"),
    bad("empty feature", HEAD + "5,,1\n", "line 12: column 'y' is empty"),
    bad("missing label", HEAD + "5,1,\n", "line 12: target 'label' is empty"),
    bad("short row", HEAD + "5,1\n", "line 12: 2 values, but the header has 3 columns"),
    bad("unknown set", "x,set,label\n1,train,0\n", "line 2: set is 'train', not one of"),
    bad("no label column", "x,y\n1,2\n", "line 1: there is no 'label' column"),
    bad("duplicate column", "x,x,label\n1,2,0\n", "line 1: column 'x' appears twice"),
    bad("reserved column", "id,x,label\n1,2,0\n", "line 1: column 'id' cannot be a feature"),
    bad("header only", "x,label\n", "line 1: the header is the only row"),
    bad("empty file", "", "is empty; it needs a header row"),
    bad("empty set", "x,set,label\n1,training,0\n2,test,1\n", "the validation set would be"),
    bad("too few rows", "x,label\n1,0\n2,1\n", "the validation set would be empty (2 rows"),
    bad(
        "text target",
        "x,label\n1,2.5\n2,3\n3,tall\n",
        "line 4: target 'label' is 'tall', not a number",
        *("--task", "regression"),
    ),
    bad(
        "no target column",
        "x,y\n1,2\n",
        "line 1: there is no column 'kind'",
        *("--task", "clustering", "--target", "kind"),
    ),
]


@pytest.mark.parametrize(("text", "message", "args"), BAD_CASES)
def test_bad_file_is_refused_and_nothing_imported(
    server: RunningServer,
    admin: API,
    tmp_path: Path,
    text: str,
    message: str,
    args: tuple[str, ...],
) -> None:
    """A bad file exits 1 naming the line and the reason, and changes nothing."""
    before = admin.get_datasets()
    path = write(tmp_path, text)
    result = server.cli("import-dataset", str(path), "--name", "bad", *args, check=False)
    assert result.returncode == 1
    assert message in result.stderr
    assert admin.get_datasets() == before


def test_used_or_blank_name_is_refused(server: RunningServer, admin: API, tmp_path: Path) -> None:
    """A name already used, or a blank one, exits 1 and leaves every dataset as it was."""
    path = toy_csv(tmp_path)
    server.import_dataset(path, "taken", "classification")
    before = admin.get_datasets()
    for name, message in (("taken", "a dataset named 'taken' already exists"), (" ", "empty")):
        result = server.cli(
            "import-dataset", str(path), "--name", name, "--task", "clustering", check=False
        )
        assert result.returncode == 1
        assert message in result.stderr
    assert admin.get_datasets() == before
