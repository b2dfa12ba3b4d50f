"""scikit-learn's private validation sits behind one guarded adapter, for a tested range."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import sklearn
from sklearn.neighbors import KNeighborsClassifier

from algorithms.sklearn_private import (
    TESTED,
    check_version,
    parameter_constraints,
    validation_error,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("version", ["1.8.0", "1.9.1", "1.9.0rc1", sklearn.__version__])
def test_a_tested_version_passes(version: str) -> None:
    """The installed scikit-learn and the range's own versions are accepted."""
    check_version(version)


@pytest.mark.parametrize("version", ["1.7.2", "1.10.0", "2.0.0", "0.24", "nightly"])
def test_another_version_fails_saying_what_to_install(version: str) -> None:
    """Outside the range: RuntimeError naming the version and the range to install."""
    with pytest.raises(RuntimeError, match=re.escape(f"scikit-learn {version} is not supported")):
        check_version(version)
    with pytest.raises(RuntimeError, match=re.escape("scikit-learn>=1.8,<1.10")):
        check_version(version)


def test_pyproject_pins_the_same_range() -> None:
    """The dependency in pyproject.toml allows exactly the versions the adapter accepts."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = [d for d in project["dependencies"] if d.startswith("scikit-learn")]
    (low, high) = TESTED
    assert pins == [f"scikit-learn>={low[0]}.{low[1]},<{high[0]}.{high[1]}"]


def test_only_the_adapter_touches_the_private_module() -> None:
    """No other module of ours names sklearn's private `_param_validation`."""
    users = [
        path.relative_to(ROOT).as_posix()
        for package in ("algorithms", "worker", "server")
        for path in (ROOT / package).rglob("*.py")
        if "_param_validation" in path.read_text()
    ]
    assert users == ["algorithms/sklearn_private.py"]


def test_validation_names_what_is_wrong_and_passes_what_is_right() -> None:
    """n_neighbors=0 gets scikit-learn's sentence; a valid estimator gets None."""
    error = validation_error(KNeighborsClassifier(n_neighbors=0))
    assert error is not None
    assert "n_neighbors" in error
    assert validation_error(KNeighborsClassifier(n_neighbors=3)) is None


def test_constraints_are_read_where_declared_and_empty_elsewhere() -> None:
    """KNN declares constraints per parameter; a plain object declares none."""
    assert "n_neighbors" in parameter_constraints(KNeighborsClassifier())
    assert parameter_constraints(object()) == {}
    assert validation_error(object()) is None
