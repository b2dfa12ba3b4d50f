"""What the worker is measured against: the compute limit and the script a user would write.

Both run one job on a :class:`~algorithms.dataset.Dataset` already built, in
the process that calls them, with plain scikit-learn:

- :func:`compute_limit`: fit, predict the three sets, score test and
  validation (accuracy, R², adjusted Rand or silhouette). Nothing else: no
  checks, no extra scores, no pictures, no results sent anywhere.
- :func:`naive_script`: the same, plus the two pictures a user would draw
  with scikit-learn's displays and pyplot, saved as PNG files: the decision
  boundary (2 features) or a PCA scatter, then the test set's confusion
  matrix or predicted-against-true plot.

The estimator comes from the worker's registry with the job's params and
seed, so that all sides fit the very same model.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from algorithms.catalog import default_registry
from algorithms.dataset import SETS, Dataset
from algorithms.params import build_estimator


def fit_predict(algorithm: str, params: Mapping[str, Any], dataset: Dataset) -> tuple[Any, dict]:
    """The fitted estimator and its predictions per set, as a user would get them."""
    estimator = build_estimator(default_registry().get(algorithm), params, 0)
    if not hasattr(estimator, "predict"):  # DBSCAN and kin label what they are fitted on
        labels = estimator.fit_predict(np.vstack([dataset.split(s).X for s in SETS]))
        ends = np.cumsum([len(dataset.split(s).ids) for s in SETS])[:-1]
        return estimator, dict(zip(SETS, np.split(labels, ends), strict=True))
    task = default_registry().get(algorithm).task
    if task == "clustering":
        estimator.fit(dataset.training.X)
    else:
        estimator.fit(dataset.training.X, dataset.training.y)
    return estimator, {s: estimator.predict(dataset.split(s).X) for s in SETS}


def scores(task: str, dataset: Dataset, predictions: Mapping[str, np.ndarray]) -> list[float]:
    """The one score per hidden set a user would print."""
    from sklearn.metrics import accuracy_score, adjusted_rand_score, r2_score, silhouette_score

    found = []
    for name in ("test", "validation"):
        split, predicted = dataset.split(name), predictions[name]
        if task == "classification":
            found.append(float(accuracy_score(split.y, predicted)))
        elif task == "regression":
            found.append(float(r2_score(split.y, predicted)))
        elif split.y is not None:
            found.append(float(adjusted_rand_score(split.y, predicted)))
        elif len(set(predicted.tolist())) > 1:
            found.append(float(silhouette_score(split.X, predicted)))
    return found


def compute_limit(algorithm: str, params: Mapping[str, Any], dataset: Dataset) -> None:
    """Fit, predict the three sets, score: what no worker can beat."""
    task = default_registry().get(algorithm).task
    _, predictions = fit_predict(algorithm, params, dataset)
    scores(task, dataset, predictions)


def naive_script(algorithm: str, params: Mapping[str, Any], dataset: Dataset, out: Path) -> None:
    """The compute limit plus two display pictures saved as PNG files in ``out``."""
    task = default_registry().get(algorithm).task
    estimator, predictions = fit_predict(algorithm, params, dataset)
    scores(task, dataset, predictions)
    naive_pictures(task, estimator, dataset, predictions, out)


def naive_pictures(
    task: str, estimator: Any, dataset: Dataset, predictions: Mapping[str, np.ndarray], out: Path
) -> None:
    """Two pictures, as scikit-learn's examples draw them with pyplot, saved as PNG."""
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA
    from sklearn.inspection import DecisionBoundaryDisplay
    from sklearn.metrics import ConfusionMatrixDisplay, PredictionErrorDisplay

    X = np.vstack([dataset.split(s).X for s in SETS])
    y = np.concatenate([predictions[s] for s in SETS])
    figure, axes = plt.subplots()
    if X.shape[1] == 2 and hasattr(estimator, "predict"):
        DecisionBoundaryDisplay.from_estimator(estimator, X, response_method="predict", ax=axes)
        points = X
    else:
        points = PCA(n_components=2).fit_transform(X)
    axes.scatter(points[:, 0], points[:, 1], c=_numbers(y), edgecolor="k")
    axes.set_title(f"{type(estimator).__name__} on {dataset.name}")
    figure.savefig(out / "map.png")
    plt.close(figure)
    test = dataset.test
    if test.y is None:
        return
    figure, axes = plt.subplots()
    if task == "regression":
        PredictionErrorDisplay.from_predictions(
            test.y, predictions["test"], kind="actual_vs_predicted", ax=axes
        )
    else:
        ConfusionMatrixDisplay.from_predictions(test.y, predictions["test"], ax=axes)
    axes.set_title(f"test set of {dataset.name}")
    figure.savefig(out / "summary.png")
    plt.close(figure)


def _numbers(values: np.ndarray) -> np.ndarray:
    """Labels as numbers for a colour map (text classes become their codes)."""
    if values.dtype.kind in "iuf":
        return values.astype(float)
    return np.unique(values, return_inverse=True)[1].astype(float)
