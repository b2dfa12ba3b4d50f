"""Names to algorithms: what an algorithm is, and the registry that holds them.

A job names its algorithm with a short string a student types (``knn``,
``kmeans``); the registry maps it to an ``Algorithm``: the task it solves,
how to make its estimator, and which hyper-parameters a job may set. Unlike
registries that silently replace a duplicate name, ours refuses it, so a
plugin can never shadow a built-in or another plugin. The registry every
process uses, built-ins plus plugins, is ``catalog.default_registry()``.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from algorithms.dataset import TASKS
from algorithms.errors import DuplicateAlgorithmError, UnknownAlgorithmError
from algorithms.forbidden import is_forbidden

__all__ = ["Algorithm", "LoadReport", "Registry", "json_safe"]

# The protocol accepts these algorithm names at submit; one the server takes
# must be one the registry can hold.
_NAME = re.compile(r"[a-z0-9_.-]{1,64}")


@dataclass(frozen=True)
class Algorithm:
    """One runnable algorithm: a task, an estimator factory and the params a job may set.

    ``estimator`` is called with the job's (checked) params as keywords and
    returns a new scikit-learn-compatible estimator: usually the estimator
    class itself. ``params`` names every hyper-parameter a job may set; their
    defaults are the estimator's own, read from ``get_params()``. ``source``
    says where the algorithm comes from: ``builtin`` or ``plugin: <dist> <version>``.
    """

    name: str
    task: str
    description: str
    estimator: Callable[..., Any]
    params: tuple[str, ...]
    source: str = "builtin"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(
                f"algorithm name {self.name!r} must be 1-64 characters of a-z, 0-9, '_', '.', '-'"
            )
        if self.task not in TASKS:
            raise ValueError(f"algorithm {self.name!r} has task {self.task!r}, not one of {TASKS}")
        if not callable(self.estimator):
            raise TypeError(f"algorithm {self.name!r}: estimator must be a class or a factory")
        if isinstance(self.params, str) or not all(isinstance(p, str) for p in self.params):
            raise TypeError(f"algorithm {self.name!r}: params must be a tuple of names")
        object.__setattr__(self, "params", tuple(self.params))
        forbidden = [p for p in self.params if is_forbidden(p)]
        if forbidden:
            raise ValueError(f"algorithm {self.name!r} may not let jobs set {forbidden}")

    def make(self, **params: Any) -> Any:
        """A new, unfitted estimator with ``params`` (not checked here: see ``params.py``)."""
        return self.estimator(**params)

    def defaults(self) -> dict[str, Any]:
        """The allowed params with the estimator's own defaults, in declaration order."""
        given = self.make().get_params(deep=False)
        unknown = [p for p in self.params if p not in given]
        if unknown:
            raise ValueError(
                f"algorithm {self.name!r} declares params its estimator lacks: {unknown}"
            )
        return {p: given[p] for p in self.params}

    def describe(self) -> dict[str, Any]:
        """A JSON-safe summary: name, task, description, params with defaults, source."""
        return {
            "name": self.name,
            "task": self.task,
            "description": self.description,
            "params": {key: json_safe(value) for key, value in self.defaults().items()},
            "source": self.source,
        }


@dataclass(frozen=True)
class LoadReport:
    """Why a plugin entry point was skipped."""

    name: str
    value: str
    source: str
    error: str

    def __str__(self) -> str:
        return f"plugin {self.name!r} ({self.value}, {self.source}) was skipped: {self.error}"


class Registry:
    """Algorithms by name; a duplicate name is refused, an unknown one lists the others.

    ``reports`` lists the plugins that were skipped while loading, and why.
    """

    def __init__(self, algorithms: Iterable[Algorithm] = ()) -> None:
        self._algorithms: dict[str, Algorithm] = {}
        self.reports: list[LoadReport] = []
        for algorithm in algorithms:
            self.register(algorithm)

    def register(self, algorithm: Algorithm) -> None:
        """Add ``algorithm``; raises ``DuplicateAlgorithmError`` if its name is taken."""
        taken = self._algorithms.get(algorithm.name)
        if taken is not None:
            raise DuplicateAlgorithmError(
                f"The algorithm name {algorithm.name!r} ({algorithm.source}) is already "
                f"taken by {taken.source}; choose another entry-point name."
            )
        self._algorithms[algorithm.name] = algorithm

    def get(self, name: str) -> Algorithm:
        """The algorithm called ``name``; raises ``UnknownAlgorithmError`` listing the names."""
        algorithm = self._algorithms.get(name)
        if algorithm is None:
            close = difflib.get_close_matches(str(name), self._algorithms, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownAlgorithmError(
                f"There is no algorithm {name!r}.{hint} "
                f"The available algorithms are: {', '.join(self.names())}."
            )
        return algorithm

    def names(self, task: str | None = None) -> list[str]:
        """The registered names, sorted; only those for ``task`` when given."""
        return sorted(n for n, a in self._algorithms.items() if task in (None, a.task))

    def __iter__(self) -> Iterator[Algorithm]:
        return iter(self._algorithms.values())

    def __len__(self) -> int:
        return len(self._algorithms)

    def __contains__(self, name: object) -> bool:
        return name in self._algorithms


def json_safe(value: Any) -> Any:
    """``value`` if JSON can carry it (tuples as lists), else its ``repr`` as a string."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return repr(value)
