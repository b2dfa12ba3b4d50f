"""Pictures of results: real estimators on real data give valid, bounded, repeatable PNGs."""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest
from algorithm_data import info, points_from_arrays, real_dataset
from sklearn import datasets
from sklearn.cluster import DBSCAN, KMeans
from sklearn.linear_model import LinearRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeRegressor

from algorithms import pictures, summaries
from algorithms.dataset import SETS, Dataset
from algorithms.pictures import Picture, draw_pictures

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def dataset_of(name: str, task: str, X: np.ndarray, y: np.ndarray | None) -> Dataset:
    """A dataset converted from point dicts, as a job would convert it."""
    return Dataset.from_points(info(name, task, X.shape[1]), points_from_arrays(X, y))


def predict_all(estimator: Any, dataset: Dataset) -> dict[str, np.ndarray]:
    """Fit as a job does and return the predictions of every set."""
    if not hasattr(estimator, "predict"):  # a clusterer that labels what it is fitted on
        labels = estimator.fit_predict(np.vstack([dataset.split(s).X for s in SETS]))
        ends = np.cumsum([len(dataset.split(s).ids) for s in SETS])[:-1]
        return dict(zip(SETS, np.split(labels, ends), strict=True))
    if dataset.task == "clustering":
        estimator.fit(dataset.training.X)
    else:
        estimator.fit(dataset.training.X, dataset.training.y)
    return {s: estimator.predict(dataset.split(s).X) for s in SETS}


def draw(estimator: Any, dataset: Dataset) -> tuple[list[Picture], list[str]]:
    """Fit, predict and draw; check that no pyplot figure was opened on the way."""
    drawn = draw_pictures(estimator, dataset, predict_all(estimator, dataset))
    assert plt.get_fignums() == []
    return drawn


def decode(picture: Picture) -> np.ndarray:
    """The picture's pixels, after checking it is a PNG of allowed size."""
    assert picture.png.startswith(PNG_SIGNATURE)
    assert len(picture.png) <= 5 * 2**20
    pixels: np.ndarray = matplotlib.image.imread(io.BytesIO(picture.png), format="png")
    return pixels


def assert_drawn(picture: Picture, shape: tuple[int, int] | None = (550, 800)) -> None:
    """A decodable RGB PNG of the expected size, with real content (not one flat colour)."""
    pixels = decode(picture)
    assert pixels.ndim == 3
    assert pixels.shape[2] == 3
    if shape is not None:
        assert pixels.shape[:2] == shape
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50


def one_feature(name: str, column: int, loader: Any, task: str) -> Dataset:
    """A bundled dataset cut down to one of its features."""
    X, y = loader(return_X_y=True)
    return dataset_of(name, task, X[:, [column]], None if task == "clustering" else y)


CASES = [
    pytest.param(
        KNeighborsClassifier(),
        lambda: real_dataset("moons"),
        ["decision_regions.png", "confusion_matrix.png"],
        id="2 features classification",
    ),
    pytest.param(
        KNeighborsClassifier(),
        lambda: real_dataset("iris_names"),
        ["pca_projection.png", "confusion_matrix.png"],
        id="4 features classification with text labels",
    ),
    pytest.param(
        KMeans(n_clusters=3, n_init=10, random_state=0),
        lambda: real_dataset("blobs"),
        ["decision_regions.png"],
        id="2 features clustering with predict",
    ),
    pytest.param(
        DBSCAN(eps=0.5),
        lambda: real_dataset("blobs_unlabelled"),
        ["cluster_map.png"],
        id="2 features clustering without predict, with noise",
    ),
    pytest.param(
        KMeans(n_clusters=3, n_init=10, random_state=0),
        lambda: dataset_of("iris", "clustering", *datasets.load_iris(return_X_y=True)),
        ["pca_projection.png"],
        id="4 features clustering",
    ),
    pytest.param(
        LinearRegression(),
        lambda: real_dataset("diabetes"),
        ["pca_projection.png", "predicted_vs_true.png"],
        id="10 features regression",
    ),
    pytest.param(
        DecisionTreeRegressor(max_depth=4, random_state=0),
        lambda: dataset_of("bmi_bp", "regression", *_diabetes_columns([2, 3])),
        ["prediction_surface.png", "predicted_vs_true.png"],
        id="2 features regression",
    ),
    pytest.param(
        KNeighborsClassifier(),
        lambda: one_feature("petal", 2, datasets.load_iris, "classification"),
        ["feature_plot.png", "confusion_matrix.png"],
        id="1 feature classification",
    ),
    pytest.param(
        LinearRegression(),
        lambda: one_feature("bmi", 2, datasets.load_diabetes, "regression"),
        ["feature_plot.png", "predicted_vs_true.png"],
        id="1 feature regression",
    ),
    pytest.param(
        DBSCAN(eps=0.1, min_samples=10),
        lambda: one_feature("petal", 2, datasets.load_iris, "clustering"),
        ["feature_plot.png"],
        id="1 feature clustering without predict",
    ),
]


def _diabetes_columns(columns: list[int]) -> tuple[np.ndarray, np.ndarray]:
    X, y = datasets.load_diabetes(return_X_y=True)
    return X[:, columns], y


@pytest.mark.parametrize(("estimator", "make_dataset", "names"), CASES)
def test_each_case_draws_its_pictures(estimator: Any, make_dataset: Any, names: list[str]) -> None:
    """Every kind of dataset and estimator gets its pictures, as valid PNGs, with no warning."""
    found, warnings = draw(estimator, make_dataset())

    assert warnings == []
    assert [picture.name for picture in found] == names
    for picture in found:
        assert_drawn(picture, shape=None if picture.name == "confusion_matrix.png" else (550, 800))


def test_the_same_result_draws_the_same_bytes() -> None:
    """Pictures are deterministic: drawing one result twice gives byte-identical PNGs."""
    dataset = real_dataset("diabetes")
    estimator = LinearRegression()
    predictions = predict_all(estimator, dataset)

    first, _ = draw_pictures(estimator, dataset, predictions)
    second, _ = draw_pictures(estimator, dataset, predictions)

    assert first == second


HIDDEN_CASES = [  # every picture kind that shows points of the sets
    pytest.param(KNeighborsClassifier(), lambda: real_dataset("moons"), id="regions"),
    pytest.param(KNeighborsClassifier(), lambda: real_dataset("iris"), id="pca"),
    pytest.param(
        DecisionTreeRegressor(max_depth=4, random_state=0),
        lambda: dataset_of("bmi_bp", "regression", *_diabetes_columns([2, 3])),
        id="surface",
    ),
    pytest.param(
        LinearRegression(),
        lambda: one_feature("bmi", 2, datasets.load_diabetes, "regression"),
        id="feature plot",
    ),
]
TEST_SUMMARIES = {"predicted_vs_true.png"}  # test labels only as means of MIN_BIN or more


def with_labels_moved(dataset: Dataset, set_name: str) -> Dataset:
    """The same dataset with one set's labels moved to other points of that set."""
    split = dataset.split(set_name)
    assert split.y is not None
    moved = np.roll(split.y, 1)
    assert (moved != split.y).any()
    return dataclasses.replace(dataset, **{set_name: dataclasses.replace(split, y=moved)})


@pytest.mark.parametrize(("estimator", "make_dataset"), HIDDEN_CASES)
def test_no_picture_depends_on_validation_labels(estimator: Any, make_dataset: Any) -> None:
    """Students see the pictures but not validation labels: moving those changes no byte."""
    dataset = make_dataset()
    predictions = predict_all(estimator, dataset)

    seen, _ = draw_pictures(estimator, dataset, predictions)
    moved, _ = draw_pictures(estimator, with_labels_moved(dataset, "validation"), predictions)

    assert seen == moved


@pytest.mark.parametrize(("estimator", "make_dataset"), HIDDEN_CASES)
def test_only_the_binned_summary_depends_on_test_labels(estimator: Any, make_dataset: Any) -> None:
    """Test labels appear only as bin means of predicted against true; no confusion matrix."""
    dataset = make_dataset()
    predictions = predict_all(estimator, dataset)

    seen, _ = draw_pictures(estimator, dataset, predictions)
    moved, _ = draw_pictures(estimator, with_labels_moved(dataset, "test"), predictions)

    assert [p.name for p in seen] == [p.name for p in moved]
    for before, after in zip(seen, moved, strict=True):
        if before.name not in TEST_SUMMARIES:
            assert before == after, before.name


class BrokenPredict(KNeighborsClassifier):
    """A classifier that fits but cannot predict new points (as a broken plugin might)."""

    def predict(self, X: Any) -> Any:
        if len(X) > 1000:  # the picture's grid, not the job's own sets
            raise RuntimeError("predict exploded on the grid")
        return super().predict(X)


def test_a_failing_picture_is_a_warning_and_the_others_are_drawn() -> None:
    """An estimator that raises while drawing gives a warning sentence, not an exception."""
    found, warnings = draw(BrokenPredict(), real_dataset("moons"))

    assert [picture.name for picture in found] == ["confusion_matrix.png"]
    assert warnings == [
        "picture 'decision_regions' could not be drawn: RuntimeError: predict exploded on the grid"
    ]
    assert plt.get_fignums() == []


def test_predictions_that_do_not_fit_the_dataset_give_one_warning() -> None:
    """Predictions of the wrong length give no pictures and one sentence saying which set."""
    dataset = real_dataset("moons")
    predictions = predict_all(KNeighborsClassifier(), dataset)
    predictions["test"] = predictions["test"][:3]

    found, warnings = draw_pictures(KNeighborsClassifier(), dataset, predictions)

    n_test = len(dataset.test.ids)
    assert found == []
    assert warnings == [
        f"no pictures could be drawn: there are 3 predictions for the {n_test} points "
        "of the test set"
    ]


def test_a_test_set_without_labels_still_gets_every_picture() -> None:
    """No picture needs test labels: without them both pictures are drawn, with no warning."""
    points = points_from_arrays(*datasets.make_moons(n_samples=100, random_state=0))
    for point in points:
        if point["set"] == "test":
            point["label"] = None
    dataset = Dataset.from_points(info("moons", "classification", 2), points)

    found, warnings = draw(KNeighborsClassifier(), dataset)

    assert [picture.name for picture in found] == ["decision_regions.png", "confusion_matrix.png"]
    assert warnings == []


def test_too_large_a_picture_is_drawn_again_smaller(monkeypatch: pytest.MonkeyPatch) -> None:
    """A PNG over the size limit is made again at half the width and height."""
    dataset = real_dataset("moons")
    estimator = KNeighborsClassifier()
    predictions = predict_all(estimator, dataset)
    full, _ = draw_pictures(estimator, dataset, predictions)
    monkeypatch.setattr(pictures, "MAX_PNG_BYTES", len(full[0].png) - 1)

    smaller, warnings = draw_pictures(estimator, dataset, predictions)

    assert warnings == []
    assert len(smaller[0].png) < len(full[0].png)
    assert decode(smaller[0]).shape[:2] == (275, 400)


def test_a_picture_too_large_even_when_smaller_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A PNG over the limit at half the size too is left out with a warning."""
    monkeypatch.setattr(pictures, "MAX_PNG_BYTES", 1000)

    found, warnings = draw(KMeans(n_clusters=3, n_init=10, random_state=0), real_dataset("blobs"))

    assert found == []
    assert len(warnings) == 1
    assert warnings[0].startswith("picture 'decision_regions' could not be drawn: the PNG is ")
    assert warnings[0].endswith(" bytes even at half the size, more than the limit of 1,000 bytes")


def regression_on(columns: list[int], points: int) -> Dataset:
    """Two diabetes features against the target, the first ``points`` points."""
    X, y = _diabetes_columns(columns)
    return dataset_of("bmi_bp", "regression", X[:points], y[:points])


def test_predicted_vs_true_hides_which_test_point_has_which_label() -> None:
    """Swapping the labels of two test points predicted alike changes no byte of any picture."""
    dataset = regression_on([2, 3], 442)
    estimator = LinearRegression()
    predictions = predict_all(estimator, dataset)
    assert dataset.test.y is not None
    first, second = np.argsort(predictions["test"])[:2]  # in the same bin, of MIN_BIN or more
    assert dataset.test.y[first] != dataset.test.y[second]
    swapped = dataset.test.y.copy()
    swapped[[first, second]] = swapped[[second, first]]
    test = dataclasses.replace(dataset.test, y=swapped)

    seen, _ = draw_pictures(estimator, dataset, predictions)
    changed, _ = draw_pictures(estimator, dataclasses.replace(dataset, test=test), predictions)

    assert [p.name for p in seen] == ["prediction_surface.png", "predicted_vs_true.png"]
    assert seen == changed


def test_a_test_set_too_small_for_a_bin_shows_no_test_label() -> None:
    """With fewer test points than MIN_BIN, no picture depends on the test labels at all."""
    dataset = regression_on([2, 3], 30)
    assert 1 < len(dataset.test.ids) < summaries.MIN_BIN
    estimator = LinearRegression()
    predictions = predict_all(estimator, dataset)

    seen, _ = draw_pictures(estimator, dataset, predictions)
    moved, _ = draw_pictures(estimator, with_labels_moved(dataset, "test"), predictions)

    assert seen == moved


@pytest.mark.parametrize("points", [0, 9, 10, 19, 20, 57, 100, 101, 1000])
def test_each_hidden_label_weighs_at_most_one_bin_point(points: int) -> None:
    """Each bin mean counts MIN_BIN or more points: one label moves it by 1/MIN_BIN at most."""
    predicted = np.random.default_rng(points).permutation(points).astype(float)
    for marked in range(points):
        true = np.zeros(points)
        true[marked] = 1.0  # the mean of a bin is this point's share of it

        bins = summaries.hidden_bins(predicted, true)

        assert len(bins) == min(summaries.MAX_BINS, points // summaries.MIN_BIN)
        assert max((b[3] for b in bins), default=0.0) <= 1 / summaries.MIN_BIN


def test_one_jobs_pictures_leave_nothing_behind_for_the_next() -> None:
    """A process drawing many jobs (and a failed picture) gives each the bytes of a fresh start."""
    regression = regression_on([2, 3], 442)
    linear = LinearRegression()
    regression_predictions = predict_all(linear, regression)
    alone, _ = draw_pictures(linear, regression, regression_predictions)

    draw(BrokenPredict(), real_dataset("moons"))  # fails half-way through a picture
    draw(KNeighborsClassifier(), real_dataset("iris_names"))
    after, _ = draw_pictures(linear, regression, regression_predictions)

    assert after == alone


def test_matplotlib_settings_changed_by_a_plugin_change_no_picture() -> None:
    """Pictures do not read pyplot's global settings, which another job may have changed."""
    dataset = real_dataset("moons")
    estimator = KNeighborsClassifier()
    predictions = predict_all(estimator, dataset)
    plain, _ = draw_pictures(estimator, dataset, predictions)
    changed = {"font.size": 30, "axes.facecolor": "red", "lines.linewidth": 9, "image.cmap": "jet"}

    with matplotlib.rc_context(changed):
        styled, _ = draw_pictures(estimator, dataset, predictions)

    assert styled == plain
