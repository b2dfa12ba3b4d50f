"""A job's hyper-parameters: which are allowed, and turning them into an estimator.

A job's params come from a student over the network, so they are checked in
three layers before anything is fitted:

1. **Policy.** Only the names an algorithm declares are accepted, and
   never one of ``forbidden.py`` (threads, logging, caches, files, in-place
   changes), for built-ins and plugins alike.
2. **JSON types.** A value is ``None``, a bool, an int, a finite float, a
   string, or a (nested) list of those, which becomes a tuple. Nothing is
   imported, evaluated or unpickled: a string stays a string. Strings starting
   with ``precomputed`` are refused because a job sends feature values, never
   a distance or kernel matrix.
3. **scikit-learn's own validation** (``_validate_params``, reached through
   ``sklearn_private.py``), which checks types and ranges and names what is
   allowed. scikit-learn accepts ``True`` for an int; we refuse a bool
   wherever the parameter is not a true/false one.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Any

from algorithms.errors import InvalidParamsError
from algorithms.forbidden import is_forbidden
from algorithms.registry import Algorithm
from algorithms.sklearn_private import parameter_constraints, validation_error

__all__ = ["build_estimator", "check_params"]

_SEED_RANGE = 2**32  # numpy's seeds are 32-bit; larger job seeds wrap around


def check_params(algorithm: Algorithm, params: Mapping[str, Any]) -> dict[str, Any]:
    """The job's params with names checked and values converted to plain Python values."""
    if not isinstance(params, Mapping):
        raise InvalidParamsError(
            f"The params of {algorithm.name} must be a JSON object such as "
            f'{{"name": value}}, not {type(params).__name__}.'
        )
    checked: dict[str, Any] = {}
    for key, value in params.items():
        if not isinstance(key, str):
            raise InvalidParamsError(f"Parameter names must be strings, not {key!r}.")
        if key not in algorithm.params:
            raise InvalidParamsError(_unknown_message(algorithm, key))
        checked[key] = _json_value(algorithm.name, key, value)
    return checked


def build_estimator(algorithm: Algorithm, params: Mapping[str, Any], seed: int | None) -> Any:
    """A new, validated, unfitted estimator for ``algorithm`` with the job's params.

    ``random_state`` becomes the job's seed wherever the estimator has one and
    the params do not set it, so the same job gives the same result anywhere.
    """
    checked = check_params(algorithm, params)
    estimator = algorithm.make(**checked)
    if (
        seed is not None
        and "random_state" not in checked
        and "random_state" in estimator.get_params(deep=False)
    ):
        estimator.set_params(random_state=seed % _SEED_RANGE)
    _refuse_misplaced_bools(algorithm, estimator, checked)
    error = validation_error(estimator)
    if error is not None:
        raise InvalidParamsError(f"Invalid params for {algorithm.name}: {error}")
    return estimator


def _unknown_message(algorithm: Algorithm, key: str) -> str:
    """Why ``key`` is refused, with the allowed names and a likely intended one."""
    allowed = ", ".join(sorted(algorithm.params)) or "none"
    if is_forbidden(key):
        reason = (
            f"{key!r} is not allowed for {algorithm.name}: a job may not choose threads, "
            "logging, caches, files or in-place changes"
        )
    else:
        reason = f"{algorithm.name} has no parameter {key!r}"
        close = difflib.get_close_matches(key, algorithm.params, n=1)
        if close:
            reason += f" (did you mean {close[0]!r}?)"
    return f"{reason}; the allowed parameters are: {allowed}."


def _json_value(algorithm: str, key: str, value: Any) -> Any:
    """A JSON-typed value as sklearn wants it: lists become tuples, nothing else changes."""
    if isinstance(value, list | tuple):
        return tuple(_json_value(algorithm, key, item) for item in value)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidParamsError(
                f"Invalid value {value!r} for {key!r} of {algorithm}: numbers must be finite."
            )
        return value
    if isinstance(value, str):
        if value.startswith("precomputed"):
            raise InvalidParamsError(
                f"Invalid value {value!r} for {key!r} of {algorithm}: a job sends feature "
                "values, not precomputed distances or kernels; choose another value."
            )
        return value
    raise InvalidParamsError(
        f"Invalid value for {key!r} of {algorithm}: a value must be null, true/false, a number, "
        f"a string or a list of those, not {type(value).__name__}."
    )


def _refuse_misplaced_bools(
    algorithm: Algorithm, estimator: Any, checked: Mapping[str, Any]
) -> None:
    """Refuse ``true``/``false`` for parameters whose sklearn constraints take no booleans.

    Python counts ``True`` as the int 1, so sklearn would accept
    ``n_neighbors=true``; a student almost certainly meant something else.
    """
    constraints = parameter_constraints(estimator)
    for key, value in checked.items():
        allowed = constraints.get(key)
        if isinstance(value, bool) and allowed is not None and not _takes_bool(allowed):
            raise InvalidParamsError(
                f"Invalid value {str(value).lower()} for {key!r} of {algorithm.name}: "
                f"{key!r} is not a true/false parameter (its default is "
                f"{algorithm.defaults()[key]!r})."
            )


def _takes_bool(constraints: list[Any]) -> bool:
    """Whether a sklearn constraint list admits booleans."""
    return any(c in ("boolean", "no_validation") or c is bool for c in constraints)
