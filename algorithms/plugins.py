"""Algorithms from other distributions, through the entry-point group ``mlworker.algorithms``.

A teacher or researcher publishes a package whose metadata declares, e.g.::

    [project.entry-points."mlworker.algorithms"]
    nearest_centroid = "my_plugin:NearestCentroid"

The entry point's name is the algorithm's name. Its object is either an
``Algorithm`` (full control over the description and allowed params) or any
scikit-learn-compatible estimator class; for a class the task follows from
the estimator (classifier, regressor or clusterer) and a job may set every
parameter of ``get_params()`` except the forbidden ones of ``forbidden.py``.

Loading a plugin runs its code, so one that fails in any way (import error,
wrong object, duplicate name, a bad declaration) is reported and skipped; it
never stops the others or the worker.
"""

from __future__ import annotations

import dataclasses
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import structlog
from sklearn.utils import get_tags

from algorithms.forbidden import is_forbidden
from algorithms.registry import Algorithm, LoadReport, Registry

__all__ = ["GROUP", "algorithm_from_object", "load_plugins"]

GROUP = "mlworker.algorithms"
_TASK_OF = {"classifier": "classification", "regressor": "regression", "clusterer": "clustering"}

log = structlog.get_logger(__name__)


def load_plugins(registry: Registry, group: str = GROUP) -> None:
    """Register every loadable entry point of ``group``; report and skip the others."""
    for entry_point in entry_points(group=group):
        source = _source(entry_point)
        try:
            algorithm = algorithm_from_object(entry_point.name, entry_point.load(), source)
            algorithm.defaults()  # fails now, not in a job, if a declared param is missing
            registry.register(algorithm)
        except Exception as exc:  # a plugin's import may raise anything at all
            report = LoadReport(
                name=entry_point.name,
                value=entry_point.value,
                source=source,
                error=f"{type(exc).__name__}: {exc}",
            )
            registry.reports.append(report)
            log.warning(
                "plugin skipped",
                plugin=report.name,
                value=report.value,
                source=report.source,
                error=report.error,
            )


def algorithm_from_object(name: str, obj: Any, source: str) -> Algorithm:
    """The ``Algorithm`` an entry point's object stands for, named after the entry point."""
    if isinstance(obj, Algorithm):
        return dataclasses.replace(obj, name=name, source=source)
    if isinstance(obj, type) and callable(getattr(obj, "get_params", None)):
        estimator = obj()
        return Algorithm(
            name=name,
            task=_task(estimator),
            description=_description(obj),
            estimator=obj,
            params=tuple(p for p in estimator.get_params(deep=False) if not is_forbidden(p)),
            source=source,
        )
    raise TypeError(
        f"the entry point's object is {obj!r}; it must be an mlworker Algorithm "
        "or a scikit-learn estimator class"
    )


def _task(estimator: Any) -> str:
    """The task of an estimator instance, from scikit-learn's tags.

    Estimators that do not inherit ``BaseEstimator`` have no tags; their
    ``_estimator_type`` (scikit-learn's older convention) says it instead.
    """
    try:
        kind = get_tags(estimator).estimator_type
    except (AttributeError, TypeError):
        kind = getattr(estimator, "_estimator_type", None)
    if kind not in _TASK_OF:
        raise TypeError(
            f"{type(estimator).__name__} is neither a classifier, a regressor nor a clusterer"
        )
    return _TASK_OF[kind]


def _description(cls: type) -> str:
    """The first line of the class docstring, else a plain label."""
    lines = [line.strip() for line in (cls.__doc__ or "").splitlines() if line.strip()]
    return lines[0] if lines else f"{cls.__name__} (plugin estimator)"


def _source(entry_point: EntryPoint) -> str:
    """``plugin: <distribution> <version>``, or just ``plugin`` when that is unknown."""
    dist = entry_point.dist
    return f"plugin: {dist.name} {dist.version}" if dist is not None else "plugin"
