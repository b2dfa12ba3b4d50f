"""scikit-learn's private parameter validation, behind one guarded door.

A job's hyper-parameters are checked with the constraints scikit-learn
declares on each estimator (``_parameter_constraints``) and its own checker
(``_validate_params``, which raises ``InvalidParameterError`` from the
private module ``sklearn.utils._param_validation``). None of that is public
API: a release may move or change it. So only this module touches it, and
only for the scikit-learn versions in ``TESTED`` (the range pinned in
pyproject.toml; a test keeps the two in step). Any other version, or one
where the names moved, fails here, when ``algorithms`` is imported, with a
sentence saying what to do, never half-way through a student's job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import sklearn

__all__ = ["TESTED", "check_version", "parameter_constraints", "validation_error"]

TESTED = ((1, 8), (1, 10))  # scikit-learn minor versions: from the first, up to the second


def check_version(version: str) -> None:
    """Raise RuntimeError unless ``version`` (``"1.9.1"``) is in the tested range."""
    found = re.match(r"(\d+)\.(\d+)", version)
    low, high = (f"{major}.{minor}" for major, minor in TESTED)
    if found is None or not TESTED[0] <= (int(found[1]), int(found[2])) < TESTED[1]:
        raise RuntimeError(
            f"scikit-learn {version} is not supported: mlworker checks job parameters with "
            f"scikit-learn's private validation, tested from {low} up to (not including) "
            f"{high}. Install a tested version (pip install 'scikit-learn>={low},<{high}'), "
            "or extend the range in algorithms/sklearn_private.py after running its tests"
        )


check_version(sklearn.__version__)

try:
    from sklearn.utils._param_validation import InvalidParameterError
except ImportError as exc:  # the private module moved, in a version we claimed to support
    raise RuntimeError(
        f"scikit-learn {sklearn.__version__} has no sklearn.utils._param_validation."
        "InvalidParameterError: update algorithms/sklearn_private.py"
    ) from exc


def parameter_constraints(estimator: Any) -> Mapping[str, list[Any]]:
    """The constraints an estimator declares per parameter; empty when it declares none."""
    constraints = getattr(estimator, "_parameter_constraints", None)
    return constraints if isinstance(constraints, Mapping) else {}


def validation_error(estimator: Any) -> str | None:
    """scikit-learn's sentence for the estimator's invalid params, or None when they pass.

    Estimators without declared constraints (many plugins) pass: there is
    nothing to check them against.
    """
    validate = getattr(estimator, "_validate_params", None)
    if validate is None or not hasattr(estimator, "_parameter_constraints"):
        return None
    try:
        validate()
    except InvalidParameterError as exc:
        return str(exc)
    return None
