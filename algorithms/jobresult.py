"""What a job sends back, as plain values: `JobResult` and its `Picture`s.

Kept apart from `algorithms.run` and `algorithms.pictures`, which make
them, because the worker's own process unpickles them from its job
processes: importing this module loads neither numpy nor scikit-learn nor
matplotlib, so a worker process, which never runs an algorithm, never pays
for their imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["JobResult", "Picture"]


@dataclass(frozen=True)
class Picture:
    """One PNG picture of a result; ``name`` is its file name, e.g. "decision_regions.png"."""

    name: str
    png: bytes


@dataclass(frozen=True)
class JobResult:
    """Everything a job sends back: labels per set, scores, pictures and warnings."""

    labels: dict[str, list[Any]]
    score_test: float
    score_validation: float
    extra_scores_test: dict[str, float]
    extra_scores_validation: dict[str, float]
    pictures: tuple[Picture, ...]
    warnings: tuple[str, ...]
