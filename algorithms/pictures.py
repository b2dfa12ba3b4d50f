"""PNG pictures of a job's result, for students to see what their model did.

By the number of features: 1, ``feature_plot`` (the feature against the target,
the model's prediction along it as a line); 2, ``decision_regions`` (or
``prediction_surface`` for regression) from scikit-learn's
DecisionBoundaryDisplay with the points on top, or ``cluster_map`` for
clusterers without ``predict``; more, ``pca_projection`` (the first two
principal components of the raw features, as the estimator sees them). Per
task: the test set's ``confusion_matrix`` or ``predicted_vs_true``.

Over a prediction background a training point's colour shows its true class
or value, so the model's mistakes on what it learnt from stand out; test and
validation points, and every point elsewhere, show the prediction. Students
see these pictures and the protocol hides test and validation labels from
them, so only the test set's summary pictures use its labels. The marker
shows the set: circle training, square test, triangle validation.

Figures are plain :class:`matplotlib.figure.Figure` objects on an Agg canvas,
never pyplot's, so nothing global is touched or left open. A picture that
cannot be drawn becomes a warning sentence, never an exception: a job's labels
and scores matter more than its pictures.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import AutoLocator
from sklearn.decomposition import PCA
from sklearn.metrics import ConfusionMatrixDisplay, PredictionErrorDisplay

from algorithms.colouring import Categories, Scale, colouring_for, handle
from algorithms.dataset import SETS, Dataset

__all__ = ["MAX_PNG_BYTES", "Picture", "draw_pictures"]

MAX_PNG_BYTES = 5 * 2**20
"""The server refuses larger pictures."""

DPI = 100
FALLBACK_DPI = 50  # a second try when a picture comes out larger than MAX_PNG_BYTES
GRID_RESOLUTION = 100  # predictions per axis for regions and surfaces
MARKERS = {"training": "o", "test": "s", "validation": "^"}
_SET_OFFSET = {"training": 0.0, "test": -0.15, "validation": 0.15}  # rows of 1-feature plots
_EDGE: dict[str, Any] = {"edgecolors": "black", "linewidths": 0.4}


@dataclass(frozen=True)
class Picture:
    """One PNG picture of a result; ``name`` is its file name, e.g. "decision_regions.png"."""

    name: str
    png: bytes


class _CannotDraw(Exception):
    """A sentence that explains by itself why a picture is impossible."""


@dataclass(frozen=True)
class _Points:
    """One non-empty set: its features, true labels (if known) and predictions."""

    set_name: str
    X: np.ndarray
    y_true: np.ndarray | None
    y_pred: np.ndarray


@dataclass(frozen=True)
class _Result:
    """What every picture is drawn from: the fitted estimator, the dataset, its sets."""

    estimator: Any
    dataset: Dataset
    sets: tuple[_Points, ...]

    @classmethod
    def of(cls, estimator: Any, dataset: Dataset, predictions: Mapping[str, Any]) -> _Result:
        """Pair each non-empty set with its predictions, checked to match point for point."""
        sets = []
        for name in SETS:
            split = dataset.split(name)
            if not len(split.ids):
                continue
            y_pred = np.asarray(predictions.get(name, ()))
            if len(y_pred) != len(split.ids):
                raise _CannotDraw(
                    f"there are {len(y_pred)} predictions for the {len(split.ids)} points "
                    f"of the {name} set"
                )
            sets.append(_Points(name, split.X, split.y, y_pred))
        return cls(estimator, dataset, tuple(sets))

    @functools.cached_property
    def all_X(self) -> np.ndarray:
        """Every set's features stacked: the extent of the axes and the PCA's input."""
        return np.vstack([p.X for p in self.sets])

    def shown(self, p: _Points) -> np.ndarray:
        """What a point's colour shows over a prediction background: the truth for training.

        Test and validation points show their prediction: the pictures go to
        the job's owner, a student, and the protocol hides those points'
        labels from students. Only the test set's own pictures (confusion
        matrix, predicted against true) use its labels, as a summary.
        """
        if self.dataset.task == "clustering" or p.y_true is None or p.set_name != "training":
            return p.y_pred
        return p.y_true

    def test_set(self) -> _Points:
        """The test set with its true labels, which the test-set pictures need."""
        test = next((p for p in self.sets if p.set_name == "test"), None)
        if test is None or test.y_true is None:
            raise _CannotDraw("the test set has no points with true labels")
        return test

    def title(self, axes: Axes, what: str) -> None:
        """What the picture shows, then which model on which dataset."""
        model = type(self.estimator).__name__
        axes.set_title(f"{what}\n{model} on the dataset {self.dataset.name!r}")


_Drawer = Callable[[Figure, _Result], None]


def draw_pictures(
    estimator: Any, dataset: Dataset, predictions: Mapping[str, np.ndarray]
) -> tuple[list[Picture], list[str]]:
    """Draw the pictures of ``estimator``'s ``predictions`` (per set name) on ``dataset``.

    Returns the pictures and a warning sentence for each picture that could
    not be drawn. Never raises (except for BaseExceptions such as
    KeyboardInterrupt), so a broken picture never fails a job.
    """
    try:
        result = _Result.of(estimator, dataset, predictions)
        plan = _plan(estimator, dataset)
    except Exception as error:
        return [], [f"no pictures could be drawn: {_reason(error)}"]
    pictures: list[Picture] = []
    warnings: list[str] = []
    for name, draw in plan:
        try:
            pictures.append(Picture(f"{name}.png", _render(draw, result)))
        except Exception as error:
            warnings.append(f"picture {name!r} could not be drawn: {_reason(error)}")
    return pictures, warnings


def _plan(estimator: Any, dataset: Dataset) -> list[tuple[str, _Drawer]]:
    """The pictures that suit this dataset and estimator, by name."""
    n_features = len(dataset.features)
    plan: list[tuple[str, _Drawer]]
    if n_features == 1:
        plan = [("feature_plot", _draw_feature_plot)]
    elif n_features > 2:
        plan = [("pca_projection", _draw_map)]
    elif dataset.task == "regression":
        plan = [("prediction_surface", _draw_regions)]
    elif hasattr(estimator, "predict"):
        plan = [("decision_regions", _draw_regions)]
    else:
        plan = [("cluster_map", _draw_map)]
    if dataset.task == "classification":
        plan.append(("confusion_matrix", _draw_confusion_matrix))
    elif dataset.task == "regression":
        plan.append(("predicted_vs_true", _draw_predicted_vs_true))
    return plan


def _render(draw: _Drawer, result: _Result) -> bytes:
    """Draw on a fresh figure and return it as PNG bytes of at most MAX_PNG_BYTES."""
    figure = Figure(figsize=(8.0, 5.5), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    try:
        draw(figure, result)
        for dpi in (DPI, FALLBACK_DPI):
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=dpi)
            if buffer.tell() <= MAX_PNG_BYTES:
                return buffer.getvalue()
        raise _CannotDraw(
            f"the PNG is {buffer.tell():,} bytes even at {FALLBACK_DPI} dpi, "
            f"more than the limit of {MAX_PNG_BYTES:,} bytes"
        )
    finally:
        figure.clear()


def _reason(error: Exception) -> str:
    """One short line saying what went wrong."""
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else "no reason given"
    if not isinstance(error, _CannotDraw):
        text = f"{type(error).__name__}: {text}"
    return text if len(text) <= 300 else text[:299] + "…"


def _scatter(
    figure: Figure,
    axes: Axes,
    result: _Result,
    xy: Callable[[_Points], np.ndarray],
    values: Callable[[_Points], np.ndarray],
    colouring: Categories | Scale,
) -> None:
    """Draw every set with its own marker, then the keys to markers and colours."""
    size = 30.0 if len(result.all_X) <= 500 else 12.0
    for p in result.sets:
        coords, style = xy(p), colouring.style(values(p))
        axes.scatter(
            coords[:, 0], coords[:, 1], marker=MARKERS[p.set_name], s=size, **_EDGE, **style
        )
    handles = [
        handle(f"{p.set_name} ({len(p.X)})", "white", MARKERS[p.set_name]) for p in result.sets
    ]
    figure.legend(handles=handles, title="set (points)", loc="outside right upper")
    colouring.add_key(figure, axes)


def _draw_regions(figure: Figure, result: _Result) -> None:
    """Decision regions or predicted-value surface over 2 features, with the points."""
    dataset, all_X = result.dataset, result.all_X
    xx0, xx1 = np.meshgrid(*(_axis_range(all_X[:, i], GRID_RESOLUTION) for i in (0, 1)))
    predicted = np.asarray(result.estimator.predict(np.c_[xx0.ravel(), xx1.ravel()]))
    shown = [predicted, *map(result.shown, result.sets)]
    colouring = colouring_for(dataset, shown, truth=True)
    axes = figure.add_subplot()
    colouring.draw_surface(axes, xx0, xx1, predicted)
    _scatter(figure, axes, result, lambda p: p.X, result.shown, colouring)
    axes.set(xlabel=dataset.features[0], ylabel=dataset.features[1])
    if dataset.task == "clustering":
        what = "Cluster regions and the clusters of the points"
    elif dataset.task == "regression":
        what = f"Predicted {dataset.target} (background), true {dataset.target} of training points"
    else:
        what = "Predicted classes (background), true classes of training points"
    result.title(axes, what)


def _draw_map(figure: Figure, result: _Result) -> None:
    """All points coloured by prediction, in their 2 features or their first 2 principal ones."""
    dataset = result.dataset
    what = "Clusters" if dataset.task == "clustering" else f"Predicted {dataset.target}"
    project: Callable[[np.ndarray], np.ndarray] = np.asarray
    names = dataset.features
    if len(names) > 2:
        pca = PCA(n_components=2, svd_solver="full").fit(result.all_X)
        project, share = pca.transform, pca.explained_variance_ratio_
        names = tuple(
            f"{n} principal component ({v:.0%} of the variance)"
            for n, v in zip(("first", "second"), share, strict=True)
        )
        what = f"{what}, {len(dataset.features)} features projected by PCA"
    colouring = colouring_for(dataset, [p.y_pred for p in result.sets], truth=False)
    axes = figure.add_subplot()
    _scatter(figure, axes, result, lambda p: project(p.X), lambda p: p.y_pred, colouring)
    axes.set(xlabel=names[0], ylabel=names[1])
    result.title(axes, what)


def _draw_feature_plot(figure: Figure, result: _Result) -> None:
    """The one feature against the target, with the model's prediction as a line."""
    dataset, estimator = result.dataset, result.estimator
    line_x = _axis_range(result.all_X[:, 0], 300)
    line_y = (
        np.asarray(estimator.predict(line_x[:, None])) if hasattr(estimator, "predict") else None
    )
    colouring = colouring_for(dataset, [line_y, *map(result.shown, result.sets)], truth=True)
    axes = figure.add_subplot()
    categories = colouring if isinstance(colouring, Categories) else None
    if categories is not None:  # one row per label
        noise = ["noise"] if categories.has_noise else []
        axes.set_yticks(
            range(-len(noise), len(categories.labels)), [*noise, *map(str, categories.labels)]
        )

    def height(values: np.ndarray) -> np.ndarray:
        """Where a label (its row) or a value sits on the vertical axis."""
        return categories.codes(values) if categories else np.asarray(values, dtype=float)

    def xy(p: _Points) -> np.ndarray:
        """In rows, each set a little apart, so that overlapping markers stay visible."""
        apart = _SET_OFFSET[p.set_name] if categories else 0.0
        return np.c_[p.X[:, 0], height(result.shown(p)) + apart]

    _scatter(figure, axes, result, xy, result.shown, colouring)
    if line_y is not None:
        steps = "steps-mid" if categories else "default"
        axes.plot(line_x, height(line_y), color="black", drawstyle=steps, zorder=3)
    target = "cluster" if dataset.task == "clustering" else dataset.target
    axes.set(xlabel=dataset.features[0], ylabel=target)
    line = "; line: the model's prediction" if line_y is not None else ""
    result.title(axes, f"{target} by {dataset.features[0]}{line}")


def _draw_confusion_matrix(figure: Figure, result: _Result) -> None:
    """How often each true class of the test set was predicted as each class."""
    test, target = result.test_set(), result.dataset.target
    labels = Categories.of([test.y_true, test.y_pred], target, noise=False).labels
    names = [str(label) for label in labels]
    side = min(14.0, max(6.0, 0.5 * len(labels) + 3.0))
    figure.set_size_inches(side + 1.0, side)
    axes = figure.add_subplot()
    ConfusionMatrixDisplay.from_predictions(
        test.y_true,
        test.y_pred,
        labels=list(labels),
        display_labels=names,
        include_values=len(labels) <= 20,
        xticks_rotation="vertical" if sum(map(len, names)) > 40 else "horizontal",
        cmap="Blues",
        ax=axes,
    )
    axes.set(xlabel=f"predicted {target}", ylabel=f"true {target}")
    result.title(axes, f"Confusion matrix of the {len(test.X)} test points")


def _draw_predicted_vs_true(figure: Figure, result: _Result) -> None:
    """Predicted against true values on the test set; perfect predictions lie on the diagonal."""
    test, target = result.test_set(), result.dataset.target
    axes = figure.add_subplot()
    PredictionErrorDisplay.from_predictions(
        np.asarray(test.y_true, dtype=float),
        np.asarray(test.y_pred, dtype=float),
        kind="actual_vs_predicted",
        random_state=0,  # it draws at most 1,000 points: the same ones every time
        ax=axes,
    )
    axes.set(xlabel=f"predicted {target}", ylabel=f"true {target}")
    for axis in (axes.xaxis, axes.yaxis):  # the display's fixed ticks have odd values
        axis.set_major_locator(AutoLocator())
    result.title(axes, f"Predicted against true {target} on the {len(test.X)} test points")


def _axis_range(values: np.ndarray, n: int) -> np.ndarray:
    """``n`` evenly spaced values over the data's range plus a 5 % margin each side."""
    low, high = float(np.min(values)), float(np.max(values))
    margin = 0.05 * (high - low) or 0.5
    return np.linspace(low - margin, high + margin, n)
