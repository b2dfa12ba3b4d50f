"""The score in [0, 1] and the extra scores of a job's predictions on one set.

One definition per task, the same on every machine, so that students' results
can be ranked against each other:

- classification: accuracy;
- regression: max(0, R²) (a model worse than predicting the mean scores 0);
- clustering with true labels: max(0, adjusted Rand index);
- clustering without true labels: (silhouette + 1) / 2, and 0 when there are
  fewer than 2 clusters or the silhouette is undefined (every point its own
  cluster).

Noise: clusterers such as DBSCAN label outliers ``-1``. Measures against true
labels treat the noise points as one more predicted group, exactly as plain
scikit-learn does when handed those labels, so declaring points noise costs
the score that misplacing them would. The silhouette is computed over the
non-noise points only (noise is not a cluster, and grouping it as one would
reward or punish its scattered shape instead of the clusters');
``noise_fraction`` is always reported so that a clustering which discards most
points as noise can be recognised. The silhouette needs all pairwise distances,
so on sets larger than :data:`SILHOUETTE_SAMPLE_SIZE` points it is computed on
a fixed random sample of that size (seed 0), which keeps it repeatable.

Extra scores are finite floats only: a measure that is undefined on the given
data (NaN or infinite) is left out rather than sent as a misleading number.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable

import numpy as np
import sklearn
from sklearn import metrics

__all__ = ["SILHOUETTE_SAMPLE_SIZE", "confusion_counts", "score_predictions", "unchecked_metrics"]

SILHOUETTE_SAMPLE_SIZE = 10_000
"""Largest number of points the silhouette is computed on (quadratic cost)."""

NOISE_LABEL = -1
"""The label scikit-learn's clusterers give to points they call noise."""

Scores = tuple[float, dict[str, float]]
_Scorer = Callable[[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None], Scores]


def score_predictions(
    task: str,
    X: np.ndarray,
    y_true: np.ndarray | None,
    y_pred: np.ndarray,
    *,
    y_train: np.ndarray | None,
) -> Scores:
    """Return the main score in [0, 1] and the finite extra scores of ``y_pred``.

    ``X`` and ``y_true`` are the set the predictions were made on (``y_true``
    is None when the set has no true labels, which only clustering allows);
    ``y_train`` gives the baselines (most frequent class, mean value) that
    tell a student whether the model learnt anything at all.
    """
    try:
        scorer = _SCORERS[task]
    except KeyError:
        allowed = ", ".join(_SCORERS)
        raise ValueError(f"unknown task {task!r}: the tasks are {allowed}") from None
    y_pred = np.asarray(y_pred)
    if y_true is not None and len(y_true) != len(y_pred):
        raise ValueError(
            f"there are {len(y_pred)} predictions for {len(y_true)} true labels: "
            "there must be one prediction per point"
        )
    # Undefined measures on degenerate data (one sample, one class) warn and
    # give NaN; the NaN is dropped below, so the warning would only be noise.
    with warnings.catch_warnings(), unchecked_metrics():
        warnings.simplefilter("ignore")
        main, extras = scorer(np.asarray(X), y_true, y_pred, y_train)
    return _unit_interval(main), _finite(extras)


def unchecked_metrics() -> contextlib.AbstractContextManager[None]:
    """scikit-learn's metrics without their checks of argument types and values.

    The arguments come from this package, already checked (predictions one
    per point, finite); the checks took a third of a small job's scoring time.
    They change no result: they only raise on arguments of the wrong kind.
    """
    return sklearn.config_context(skip_parameter_validation=True)


def _classification(
    X: np.ndarray, y_true: np.ndarray | None, y_pred: np.ndarray, y_train: np.ndarray | None
) -> Scores:
    """Accuracy, with macro averages that do not hide a neglected small class.

    Every measure comes from one confusion matrix, exactly as scikit-learn's
    own functions compute them (each of which would check the labels and
    count them again): per class, precision = tp / predicted and recall =
    tp / true, 0 where nothing was predicted or is true (``zero_division=0``);
    F1 = 2 tp / (true + predicted); macro averages over every label of either
    side; balanced accuracy = the mean recall over the classes present in
    ``y_true``.
    """
    y_true = _required(y_true, "classification")
    confusion = confusion_counts(y_true, y_pred)
    tp = np.diag(confusion).astype(np.float64)
    true = confusion.sum(axis=1).astype(np.float64)
    predicted = confusion.sum(axis=0).astype(np.float64)
    recall = _ratio(tp, true)
    extras = {
        "balanced_accuracy": recall[true > 0].mean(),
        "f1_macro": _ratio(2.0 * tp, true + predicted).mean(),
        "precision_macro": _ratio(tp, predicted).mean(),
        "recall_macro": recall.mean(),
    }
    if y_train is not None and len(y_train):
        classes, counts = np.unique(y_train, return_counts=True)
        extras["baseline_accuracy"] = np.mean(y_true == classes[counts.argmax()])
    return tp.sum() / len(y_true), extras


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """scikit-learn's confusion matrix: rows true, columns predicted, over the sorted labels.

    Integer labels, or string labels, on both sides are counted here with
    numpy: the same counts, where scikit-learn's function spends about a
    millisecond checking the targets first. Other labels (floats, mixed
    kinds) go to that function, which refuses what it cannot count with a
    message that says why.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    kinds = {y_true.dtype.kind, y_pred.dtype.kind}
    if not (kinds <= {"i", "u", "b"} or kinds == {"U"}) or y_true.ndim != 1 or y_pred.ndim != 1:
        return np.asarray(metrics.confusion_matrix(y_true, y_pred))
    labels, codes = np.unique(np.concatenate([y_true, y_pred]), return_inverse=True)
    n = len(labels)
    pairs = codes[: len(y_true)] * n + codes[len(y_true) :]
    return np.bincount(pairs, minlength=n * n).reshape(n, n)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Per-class ``numerator / denominator``, 0 where the denominator is 0."""
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def _regression(
    X: np.ndarray, y_true: np.ndarray | None, y_pred: np.ndarray, y_train: np.ndarray | None
) -> Scores:
    """max(0, R²), with errors in the target's own unit for the extras."""
    y_true = np.asarray(_required(y_true, "regression"), dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    r2 = metrics.r2_score(y_true, y_pred)
    extras = {
        "r2": r2,
        "mae": metrics.mean_absolute_error(y_true, y_pred),
        "rmse": metrics.root_mean_squared_error(y_true, y_pred),
    }
    if y_train is not None and len(y_train):
        baseline = np.full(len(y_true), np.mean(np.asarray(y_train, dtype=np.float64)))
        extras["baseline_r2"] = metrics.r2_score(y_true, baseline)
    return max(0.0, r2), extras


def _clustering(
    X: np.ndarray, y_true: np.ndarray | None, y_pred: np.ndarray, y_train: np.ndarray | None
) -> Scores:
    """Adjusted Rand index against true labels, else the rescaled silhouette."""
    noise = np.asarray(y_pred == NOISE_LABEL, dtype=bool).reshape(len(y_pred))
    clustered = y_pred[~noise]
    n_clusters = len(np.unique(clustered))
    extras: dict[str, float] = {
        "n_clusters": n_clusters,
        "noise_fraction": float(noise.mean()) if len(noise) else math.nan,
    }
    silhouette = _silhouette(X[~noise], clustered, n_clusters)
    if silhouette is not None:
        extras["silhouette"] = silhouette
    if y_true is None:
        return (0.0 if silhouette is None else (silhouette + 1.0) / 2.0), extras
    homogeneity, completeness, v_measure = metrics.homogeneity_completeness_v_measure(
        y_true, y_pred
    )
    extras |= {
        "nmi": metrics.normalized_mutual_info_score(y_true, y_pred),
        "ami": metrics.adjusted_mutual_info_score(y_true, y_pred),
        "v_measure": v_measure,
        "homogeneity": homogeneity,
        "completeness": completeness,
        "fowlkes_mallows": metrics.fowlkes_mallows_score(y_true, y_pred),
    }
    return max(0.0, metrics.adjusted_rand_score(y_true, y_pred)), extras


def _silhouette(X: np.ndarray, labels: np.ndarray, n_clusters: int) -> float | None:
    """The mean silhouette, or None where it is undefined (< 2 or all-singleton clusters)."""
    if not 2 <= n_clusters < len(labels):
        return None
    sample_size = SILHOUETTE_SAMPLE_SIZE if len(labels) > SILHOUETTE_SAMPLE_SIZE else None
    try:
        return float(metrics.silhouette_score(X, labels, sample_size=sample_size, random_state=0))
    except ValueError:  # the fixed sample happened to hold fewer than 2 clusters
        return None


def _required(y_true: np.ndarray | None, task: str) -> np.ndarray:
    """The true labels, which supervised scores cannot do without."""
    if y_true is None:
        raise ValueError(f"{task} scores need the true labels of the set, and it has none")
    return np.asarray(y_true)


def _unit_interval(score: float) -> float:
    """Clamp to [0, 1]; an undefined score (NaN, e.g. R² on one point) counts as 0."""
    score = float(score)
    return min(1.0, max(0.0, score)) if math.isfinite(score) else 0.0


def _finite(extras: dict[str, float]) -> dict[str, float]:
    """Plain floats, leaving out undefined measures (NaN or infinite)."""
    values = {name: float(value) for name, value in extras.items()}
    return {name: value for name, value in values.items() if math.isfinite(value)}


_SCORERS: dict[str, _Scorer] = {
    "classification": _classification,
    "regression": _regression,
    "clustering": _clustering,
}
