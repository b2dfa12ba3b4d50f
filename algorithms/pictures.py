"""PNG pictures of a job's result, for students to see what their model did.

By the number of features: 1, ``feature_plot`` (the feature against the
target, the model's prediction along it as a line); 2, ``decision_regions``
(or ``prediction_surface`` for regression: the predictions over a grid, as
scikit-learn's DecisionBoundaryDisplay shows them, with the points on top)
or ``cluster_map`` for clusterers without ``predict``; more, ``pca_projection`` (the first two
principal components of the raw features, as the estimator sees them). Per
task: the training set's ``confusion_matrix``, or ``predicted_vs_true``.

Students see these pictures, and the protocol hides test and validation
labels from them, so no picture shows such a label point by point. Over a
prediction background a training point's colour shows its true class or
value, so the model's mistakes on what it learnt from stand out; test and
validation points, and every point elsewhere, show the prediction. The
confusion matrix counts training points: on a hidden set, a predicted class
whose points all share one true class would give each of them away.
Predicted against true shows training points one by one and the test set
only as the mean true value of bins of ten or more test points (by
predicted value, `algorithms.summaries`); validation labels appear nowhere. The marker shows
the set: circle training, square test, triangle validation.

Pictures are drawn on a numpy raster (`algorithms.raster`, laid out by
`algorithms.chart`) with matplotlib's font and colormaps, not on matplotlib
figures: a job's two pictures take milliseconds instead of hundreds of them,
and nothing global (pyplot, rcParams) is touched, so one job's picture
cannot change the next one's in a process that serves many jobs. A picture
that cannot be drawn becomes a warning sentence, never an exception: a job's
labels and scores matter more than its pictures.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from sklearn.decomposition import PCA

from algorithms.chart import HEIGHT, WIDTH, Entry, Plot, data_limits, legend
from algorithms.colouring import Categories, colouring_for
from algorithms.dataset import SETS, Dataset
from algorithms.jobresult import Picture
from algorithms.raster import Raster
from algorithms.summaries import confusion_matrix, predicted_vs_true

__all__ = ["MAX_PNG_BYTES", "Picture", "draw_pictures"]

MAX_PNG_BYTES = 5 * 2**20
"""The server refuses larger pictures."""

GRID_RESOLUTION = 100  # predictions per axis for regions and surfaces
MARKERS = {"training": "o", "test": "s", "validation": "^"}
_SET_OFFSET = {"training": 0.0, "test": -0.15, "validation": 0.15}  # rows of 1-feature plots


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
        labels from students.
        """
        if self.dataset.task == "clustering" or p.y_true is None or p.set_name != "training":
            return p.y_pred
        return p.y_true

    def training(self) -> _Points:
        """The training set with its true labels, which the summary pictures need."""
        found = next((p for p in self.sets if p.set_name == "training"), None)
        if found is None or found.y_true is None:
            raise _CannotDraw("the training set has no points with true labels")
        return found

    def labelled_test(self) -> _Points | None:
        """The test set, if it has points with true labels."""
        found = next((p for p in self.sets if p.set_name == "test"), None)
        return found if found is not None and found.y_true is not None else None

    def model_line(self) -> str:
        """Which model on which dataset: the second line of every title."""
        return f"{type(self.estimator).__name__} on the dataset {self.dataset.name!r}"

    def title(self, plot: Plot, what: str) -> None:
        """What the picture shows, then which model on which dataset."""
        plot.title(f"{what}\n{self.model_line()}")


_Drawer = Callable[[_Result], Raster]


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
    """Draw and return PNG bytes of at most MAX_PNG_BYTES (at half size if need be)."""
    raster = draw(result)
    png = raster.png()
    if len(png) > MAX_PNG_BYTES:
        png = raster.halved().png()
    if len(png) > MAX_PNG_BYTES:
        raise _CannotDraw(
            f"the PNG is {len(png):,} bytes even at half the size, "
            f"more than the limit of {MAX_PNG_BYTES:,} bytes"
        )
    return png


def _reason(error: Exception) -> str:
    """One short line saying what went wrong."""
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else "no reason given"
    if not isinstance(error, _CannotDraw):
        text = f"{type(error).__name__}: {text}"
    return text if len(text) <= 300 else text[:299] + "…"


def _scatter(
    plot: Plot,
    result: _Result,
    xy: Callable[[_Points], np.ndarray],
    colours: Callable[[_Points], np.ndarray],
) -> float:
    """Draw every set with its own marker, then the key to the markers; the key's bottom."""
    size = 8.0 if len(result.all_X) <= 500 else 5.0
    for p in result.sets:
        coords = xy(p)
        x, y = plot.x(coords[:, 0]), plot.y(coords[:, 1])
        plot.raster.markers(x, y, MARKERS[p.set_name], size, colours(p), plot.area)
    white = (1.0, 1.0, 1.0)
    entries = [Entry(f"{p.set_name} ({len(p.X)})", white, MARKERS[p.set_name]) for p in result.sets]
    return legend(plot.raster, entries, "set (points)", top=10)


def _draw_regions(result: _Result) -> Raster:
    """Decision regions or predicted-value surface over 2 features, with the points."""
    dataset, all_X = result.dataset, result.all_X
    axes = [_axis_range(all_X[:, i], GRID_RESOLUTION) for i in (0, 1)]
    xx0, xx1 = np.meshgrid(*axes)
    predicted = np.asarray(result.estimator.predict(np.c_[xx0.ravel(), xx1.ravel()]))
    colouring = colouring_for(dataset, [predicted, *map(result.shown, result.sets)], truth=True)
    plot = Plot(Raster(WIDTH, HEIGHT), _cell_edges(axes[0]), _cell_edges(axes[1]))
    plot.raster.image(plot.area, colouring.background(predicted, xx0.shape))
    bottom = _scatter(plot, result, lambda p: p.X, lambda p: colouring.colours(result.shown(p)))
    colouring.add_key(plot.raster, bottom)
    plot.axes(dataset.features[0], dataset.features[1])
    if dataset.task == "clustering":
        what = "Cluster regions and the clusters of the points"
    elif dataset.task == "regression":
        what = f"Predicted {dataset.target} (background), true {dataset.target} of training points"
    else:
        what = "Predicted classes (background), true classes of training points"
    result.title(plot, what)
    return plot.raster


def _draw_map(result: _Result) -> Raster:
    """All points coloured by prediction, in their 2 features or their first 2 principal ones."""
    dataset = result.dataset
    what = "Clusters" if dataset.task == "clustering" else f"Predicted {dataset.target}"
    project: Callable[[np.ndarray], np.ndarray] = np.asarray
    names = dataset.features
    if len(names) > 2:
        pca = PCA(n_components=2, svd_solver=_pca_solver(result.all_X)).fit(result.all_X)
        project, share = pca.transform, pca.explained_variance_ratio_
        names = tuple(
            f"{n} principal component ({v:.0%} of the variance)"
            for n, v in zip(("first", "second"), share, strict=True)
        )
        what = f"{what}, {len(dataset.features)} features projected by PCA"
    colouring = colouring_for(dataset, [p.y_pred for p in result.sets], truth=False)
    shown = project(result.all_X)  # once for all sets (`all_X` stacks them in order)
    ends = np.cumsum([len(p.X) for p in result.sets])[:-1]
    of_set = dict(zip((p.set_name for p in result.sets), np.split(shown, ends), strict=True))
    plot = Plot(Raster(WIDTH, HEIGHT), data_limits(shown[:, 0]), data_limits(shown[:, 1]))
    bottom = _scatter(
        plot, result, lambda p: of_set[p.set_name], lambda p: colouring.colours(p.y_pred)
    )
    colouring.add_key(plot.raster, bottom)
    plot.axes(names[0], names[1])
    result.title(plot, what)
    return plot.raster


def _pca_solver(X: np.ndarray) -> Literal["covariance_eigh", "full"]:
    """scikit-learn's eigendecomposition of the features' covariance where it is the cheaper.

    With more points than features it decomposes a features x features matrix
    instead of the whole data: digits' projection takes 1.7 ms instead of 7.9,
    and the same points to 1e-13 (both are exact and sign-fixed alike; the
    "auto" solver could pick the randomized one, whose pictures would vary).
    """
    return "covariance_eigh" if X.shape[0] >= X.shape[1] else "full"


def _draw_feature_plot(result: _Result) -> Raster:
    """The one feature against the target, with the model's prediction as a line."""
    dataset, estimator = result.dataset, result.estimator
    line_x = _axis_range(result.all_X[:, 0], 300)
    line_y = (
        np.asarray(estimator.predict(line_x[:, None])) if hasattr(estimator, "predict") else None
    )
    colouring = colouring_for(dataset, [line_y, *map(result.shown, result.sets)], truth=True)
    categories = colouring if isinstance(colouring, Categories) else None

    def height(values: np.ndarray) -> np.ndarray:
        """Where a label (its row) or a value sits on the vertical axis."""
        return categories.codes(values) if categories else np.asarray(values, dtype=float)

    def xy(p: _Points) -> np.ndarray:
        """In rows, each set a little apart, so that overlapping markers stay visible."""
        apart = _SET_OFFSET[p.set_name] if categories else 0.0
        return np.c_[p.X[:, 0], height(result.shown(p)) + apart]

    yticks = None
    if categories is not None:  # one row per label
        noise = ["noise"] if categories.has_noise else []
        rows = range(-len(noise), len(categories.labels))
        yticks = (list(rows), [*noise, *map(str, categories.labels)])
        ylim = (rows[0] - 0.5, rows[-1] + 0.5)
    else:
        heights = [height(result.shown(p)) for p in result.sets]
        ylim = data_limits(np.concatenate([*heights, [] if line_y is None else height(line_y)]))
    plot = Plot(Raster(WIDTH, HEIGHT), (float(line_x[0]), float(line_x[-1])), ylim)
    bottom = _scatter(plot, result, xy, lambda p: colouring.colours(result.shown(p)))
    if line_y is not None:
        xs, ys = plot.x(line_x), plot.y(height(line_y))
        if categories:  # steps half-way between the grid's points, as "steps-mid" draws
            middle = (xs[1:] + xs[:-1]) / 2
            xs = np.concatenate([[xs[0]], np.repeat(middle, 2), [xs[-1]]])
            ys = np.repeat(ys, 2)
        plot.raster.line(xs, ys, (0.0, 0.0, 0.0), plot.area)
    colouring.add_key(plot.raster, bottom)
    target = "cluster" if dataset.task == "clustering" else dataset.target
    plot.axes(dataset.features[0], target, yticks=yticks)
    line = "; line: the model's prediction" if line_y is not None else ""
    result.title(plot, f"{target} by {dataset.features[0]}{line}")
    return plot.raster


def _draw_confusion_matrix(result: _Result) -> Raster:
    """How often each true class of the training set was predicted as each class."""
    training = result.training()
    assert training.y_true is not None  # checked by `training`
    what = f"Confusion matrix of the {len(training.X)} training points"
    title = f"{what}\n{result.model_line()}"
    return confusion_matrix(training.y_true, training.y_pred, result.dataset.target, title)


def _draw_predicted_vs_true(result: _Result) -> Raster:
    """Training points one by one, the test set only in bins (`summaries.hidden_bins`)."""
    training, test = result.training(), result.labelled_test()
    assert training.y_true is not None  # checked by `training`
    hidden = None
    if test is not None and test.y_true is not None:
        hidden = (test.y_pred, test.y_true)
    target = result.dataset.target
    return predicted_vs_true(
        (training.y_pred, training.y_true), hidden, target, result.model_line()
    )


def _axis_range(values: np.ndarray, n: int) -> np.ndarray:
    """``n`` evenly spaced values over the data's range plus a 5 % margin each side."""
    low, high = float(np.min(values)), float(np.max(values))
    margin = 0.05 * (high - low) or 0.5
    return np.linspace(low - margin, high + margin, n)


def _cell_edges(grid: np.ndarray) -> tuple[float, float]:
    """The extent of cells centred on the evenly spaced ``grid`` values."""
    half = (grid[1] - grid[0]) / 2
    return float(grid[0] - half), float(grid[-1] + half)
