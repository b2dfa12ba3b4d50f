"""Running one job: an algorithm with its params on a dataset, to labels, scores and pictures.

The same job gives the same labels on every machine and every run: the job's
seed is the estimator's ``random_state``, BLAS/OpenMP use one thread (which
also keeps parallel jobs from fighting over cores), and the estimator sees the
feature values exactly as given, with no hidden preprocessing.

Supervised estimators and clusterers with ``predict`` are fitted on the
training set and predict all three sets. Clusterers without ``predict``
(DBSCAN, HDBSCAN, OPTICS, agglomerative, spectral) can only label the points
they are fitted on, so they ``fit_predict`` training + test + validation
stacked in that order, and the labels are split back.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, r2_score
from threadpoolctl import ThreadpoolController

from algorithms.catalog import default_registry
from algorithms.dataset import SETS, Dataset
from algorithms.errors import AlgorithmError
from algorithms.jobresult import JobResult, Picture
from algorithms.params import build_estimator
from algorithms.pictures import draw_pictures
from algorithms.registry import Algorithm, Registry
from algorithms.scoring import score_predictions, unchecked_metrics

__all__ = ["JobResult", "run_algorithm"]

# Parameters that count clusters, components or neighbours: none can exceed the points.
_COUNT_PARAMS = ("n_clusters", "n_components", "n_neighbors")
_WARNING_LENGTH = 240


def run_algorithm(
    name: str,
    params: Mapping[str, Any],
    dataset: Dataset,
    *,
    seed: int | None,
    registry: Registry | None = None,
    pictures: bool = True,
    drawing: Callable[[], None] | None = None,
) -> JobResult:
    """Fit algorithm ``name`` with ``params`` on ``dataset`` and score its predictions.

    ``drawing`` is called once the labels and scores are known, just before
    the pictures are drawn: a worker claims its next job meanwhile.

    Raises an ``AlgorithmError`` (its message a sentence a student can act on)
    for an unknown algorithm, invalid params, or data the algorithm cannot use.
    """
    registry = registry if registry is not None else default_registry()
    algorithm = registry.get(name)
    _check_task(algorithm, dataset, registry)
    estimator = build_estimator(algorithm, params, seed)
    _check_data(algorithm, dataset, estimator)
    # Scores (the silhouette's distances) and pictures (predictions over a grid,
    # PCA) call BLAS/OpenMP too: the whole job runs with one thread.
    with _thread_pools().limit(limits=1):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            predictions, fit_seconds, predict_seconds = _fit_predict(algorithm, estimator, dataset)
        notes = [_sentence(w.category.__name__, w.message) for w in caught]
        _check_predictions(dataset, predictions)
        view = _as_seen_by(algorithm, dataset)
        own_extras = {"fit_seconds": fit_seconds, "predict_seconds": predict_seconds}
        own_extras.update(_training_score(algorithm.task, dataset, predictions["training"]))
        scores = {s: _score(view, s, predictions[s], own_extras) for s in ("test", "validation")}
        drawn: list[Picture] = []
        if pictures:
            if drawing is not None:
                drawing()
            drawn, picture_notes = draw_pictures(estimator, view, predictions)
            notes.extend(picture_notes)
    return JobResult(
        labels={s: _native(predictions[s]) for s in SETS},
        score_test=scores["test"][0],
        score_validation=scores["validation"][0],
        extra_scores_test=scores["test"][1],
        extra_scores_validation=scores["validation"][1],
        pictures=tuple(drawn),
        warnings=tuple(dict.fromkeys(notes)),
    )


def _as_seen_by(algorithm: Algorithm, dataset: Dataset) -> Dataset:
    """The dataset under the algorithm's task, for scores and pictures.

    A clustering algorithm on a classification dataset is scored against its
    classes; on a regression dataset the continuous targets are no clusters,
    so they are left out and the clustering is scored without labels.
    """
    view = dataclasses.replace(dataset, task=algorithm.task)
    if algorithm.task == "clustering" and dataset.task == "regression":
        view = dataclasses.replace(
            view,
            training=dataclasses.replace(dataset.training, y=None),
            test=dataclasses.replace(dataset.test, y=None),
            validation=dataclasses.replace(dataset.validation, y=None),
        )
    return view


def _check_task(algorithm: Algorithm, dataset: Dataset, registry: Registry) -> None:
    """Refuse an algorithm for another task; clustering runs on any dataset."""
    if algorithm.task in (dataset.task, "clustering"):
        return
    suitable = ", ".join(registry.names(dataset.task))
    raise AlgorithmError(
        f"{algorithm.name} is a {algorithm.task} algorithm, but dataset {dataset.name!r} is "
        f"for {dataset.task}; choose one of: {suitable}."
    )


def _check_data(algorithm: Algorithm, dataset: Dataset, estimator: Any) -> None:
    """Refuse data the algorithm cannot learn from or the job cannot score."""
    for set_name in SETS:
        if not dataset.split(set_name).ids:
            raise AlgorithmError(
                f"The {set_name} set of dataset {dataset.name!r} has no points; every set "
                "(training, test and validation) needs at least one point."
            )
    if algorithm.task != "clustering":
        _check_labels(algorithm, dataset)
    _check_counts(algorithm, dataset, estimator)


def _check_counts(algorithm: Algorithm, dataset: Dataset, estimator: Any) -> None:
    """Refuse more clusters, components or neighbours than the points the estimator sees."""
    if _fits_all_sets(algorithm, estimator):
        n_points, where = sum(len(dataset.split(s).ids) for s in SETS), "all sets together"
    else:
        n_points, where = len(dataset.training.ids), "the training set"
    given = estimator.get_params(deep=False)
    # Spectral clustering reads n_neighbors only with the nearest-neighbours affinity.
    neighbours_used = given.get("affinity", "nearest_neighbors") == "nearest_neighbors"
    for key in _COUNT_PARAMS:
        value = given.get(key)
        if key == "n_neighbors" and not neighbours_used:
            continue
        if isinstance(value, int) and not isinstance(value, bool) and value > n_points:
            raise AlgorithmError(
                f"{key} is {value}, but {algorithm.name} is fitted on {where}, which has only "
                f"{n_points} points; choose {key} of at most {n_points}."
            )


def _check_labels(algorithm: Algorithm, dataset: Dataset) -> None:
    """Supervised tasks need labels in every set, numeric ones for regression, 2+ classes."""
    for set_name in SETS:
        if dataset.split(set_name).y is None:
            purpose = "to learn from" if set_name == "training" else "to score the predictions"
            raise AlgorithmError(
                f"The {set_name} points of dataset {dataset.name!r} have no labels "
                f"({dataset.target!r}), and {algorithm.task} needs them {purpose}; "
                "use a labelled dataset (test and validation labels are only sent to "
                "worker accounts)."
            )
    y_train = dataset.training.y
    assert y_train is not None  # checked above
    if algorithm.task == "regression" and y_train.dtype == object:
        raise AlgorithmError(
            f"Dataset {dataset.name!r} has text labels such as {y_train[0]!r}, but "
            f"{algorithm.name} is a regression algorithm and needs numeric labels."
        )
    if algorithm.task == "classification":
        classes = np.unique(y_train)
        if len(classes) < 2:
            raise AlgorithmError(
                f"The training set of dataset {dataset.name!r} has only one class "
                f"({_native(classes)[0]!r}); classification needs at least two classes "
                "among the training points."
            )


def _fits_all_sets(algorithm: Algorithm, estimator: Any) -> bool:
    """Whether the estimator labels only what it is fitted on (a clusterer without predict)."""
    return algorithm.task == "clustering" and not hasattr(estimator, "predict")


def _fit_predict(
    algorithm: Algorithm, estimator: Any, dataset: Dataset
) -> tuple[dict[str, np.ndarray], float, float]:
    """Predictions per set, fit seconds and predict seconds.

    An estimator's own exceptions pass through: the worker reports their last
    line, which names what scikit-learn refused (e.g. a penalty/loss pairing).
    """
    if _fits_all_sets(algorithm, estimator):
        return _fit_predict_stacked(estimator, dataset)
    started = time.perf_counter()
    if algorithm.task == "clustering":
        estimator.fit(dataset.training.X)
    else:
        estimator.fit(dataset.training.X, dataset.training.y)
    fitted = time.perf_counter()
    predictions = {s: np.asarray(estimator.predict(dataset.split(s).X)) for s in SETS}
    return predictions, fitted - started, time.perf_counter() - fitted


@functools.cache
def _thread_pools() -> ThreadpoolController:
    """The BLAS/OpenMP libraries loaded, found once per process (the scan takes milliseconds).

    Made in the job forkserver's warm-up, so job processes inherit it. A
    library loaded later (by a plugin) is not in it, but it reads the job
    environment's ``*_NUM_THREADS=1`` when it loads.
    """
    return ThreadpoolController()


def _fit_predict_stacked(
    estimator: Any, dataset: Dataset
) -> tuple[dict[str, np.ndarray], float, float]:
    """``fit_predict`` on all sets stacked in SETS order, split back; no separate predict."""
    started = time.perf_counter()
    labels = np.asarray(estimator.fit_predict(np.vstack([dataset.split(s).X for s in SETS])))
    seconds = time.perf_counter() - started
    ends = np.cumsum([len(dataset.split(s).ids) for s in SETS])[:-1]
    return dict(zip(SETS, np.split(labels, ends), strict=True)), seconds, 0.0


def _training_score(task: str, dataset: Dataset, predicted: np.ndarray) -> dict[str, float]:
    """How well the estimator fits its own training set (a gauge of over-fitting)."""
    y_train = dataset.training.y
    with unchecked_metrics():
        if task == "classification" and y_train is not None:
            return {"training_accuracy": float(accuracy_score(y_train, predicted))}
        if task == "regression" and y_train is not None and len(y_train) > 1:
            return {"training_r2": float(r2_score(y_train, predicted))}
    return {}


def _score(
    view: Dataset, set_name: str, predicted: np.ndarray, extras: Mapping[str, float]
) -> tuple[float, dict[str, float]]:
    """The main score of one set and its extra scores, with the job's own extras added."""
    split = view.split(set_name)
    main, extra = score_predictions(view.task, split.X, split.y, predicted, y_train=view.training.y)
    return main, {**extra, **extras}


def _check_predictions(dataset: Dataset, predictions: Mapping[str, np.ndarray]) -> None:
    """Refuse predictions that cannot be sent: not one per point, NaN or infinite.

    Built-ins always predict one label per point; a plugin's ``predict`` may not,
    and the server would refuse the labels without saying which algorithm erred.
    """
    for set_name, predicted in predictions.items():
        n_points = len(dataset.split(set_name).ids)
        if predicted.shape[:1] != (n_points,):
            raise AlgorithmError(
                f"The algorithm predicted {predicted.shape[0] if predicted.ndim else 0} labels "
                f"for the {n_points} points of the {set_name} set; it must predict one label "
                "per point."
            )
        if predicted.dtype.kind == "f" and not np.isfinite(predicted).all():
            raise AlgorithmError(
                f"The algorithm predicted a non-finite number for the {set_name} set; "
                "try other params (e.g. more regularisation or a smaller learning rate)."
            )


def _native(values: np.ndarray) -> list[Any]:
    """Labels as JSON-native Python values (numpy scalars become int, float, str)."""
    return [v.item() if isinstance(v, np.generic) else v for v in np.asarray(values).tolist()]


def _sentence(category: str, message: Warning | str) -> str:
    """A captured warning as one short line: its category and its text."""
    text = " ".join(str(message).split())
    if len(text) > _WARNING_LENGTH:
        text = text[: _WARNING_LENGTH - 1] + "…"
    return f"{category}: {text}"
