"""The [0, 1] score and extra scores: hand-computed cases and plain scikit-learn on real data."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn import datasets, metrics
from sklearn.cluster import DBSCAN, KMeans
from sklearn.linear_model import LinearRegression
from sklearn.neighbors import KNeighborsClassifier

from algorithms import scoring
from algorithms.scoring import score_predictions


def assert_clean(main: float, extras: dict[str, float]) -> None:
    """The contract every result keeps: main in [0, 1], extras plain finite floats."""
    assert type(main) is float
    assert 0.0 <= main <= 1.0
    for name, value in extras.items():
        assert type(value) is float, name
        assert math.isfinite(value), name


def test_classification_matches_hand_computed_values() -> None:
    """Accuracy, macro averages and the most-frequent baseline agree with arithmetic by hand."""
    y_true = np.array(["cat", "dog", "cat", "cat"], dtype=object)
    y_pred = np.array(["cat", "cat", "cat", "dog"], dtype=object)
    y_train = np.array(["cat", "dog", "dog"], dtype=object)

    main, extras = score_predictions(
        "classification", np.zeros((4, 2)), y_true, y_pred, y_train=y_train
    )

    # cat: precision 2/3, recall 2/3; dog: never right; baseline always says "dog".
    assert main == pytest.approx(0.5)
    assert extras == pytest.approx(
        {
            "balanced_accuracy": 1 / 3,
            "f1_macro": 1 / 3,
            "precision_macro": 1 / 3,
            "recall_macro": 1 / 3,
            "baseline_accuracy": 0.25,
        }
    )
    assert_clean(main, extras)


def test_classification_on_iris_equals_plain_scikit_learn() -> None:
    """A real classifier's scores on iris are exactly scikit-learn's metric functions."""
    X, y = datasets.load_iris(return_X_y=True)
    X_train, y_train, X_test, y_test = X[::2], y[::2], X[1::2], y[1::2]
    y_pred = KNeighborsClassifier(n_neighbors=15).fit(X_train, y_train).predict(X_test)

    main, extras = score_predictions("classification", X_test, y_test, y_pred, y_train=y_train)

    assert main == metrics.accuracy_score(y_test, y_pred)
    assert extras["balanced_accuracy"] == metrics.balanced_accuracy_score(y_test, y_pred)
    assert extras["f1_macro"] == metrics.f1_score(y_test, y_pred, average="macro")
    assert extras["precision_macro"] == metrics.precision_score(y_test, y_pred, average="macro")
    assert extras["recall_macro"] == metrics.recall_score(y_test, y_pred, average="macro")
    most_frequent = np.bincount(y_train).argmax()
    assert extras["baseline_accuracy"] == pytest.approx(np.mean(y_test == most_frequent))


@pytest.mark.parametrize(
    ("y_true", "y_pred"),
    [
        (np.array([2, 0, 1, 2, 2, 0]), np.array([2, 1, 1, 0, 2, 0])),
        (np.array([5, 7, 7]), np.array([9, 7, 5], dtype=np.uint8)),  # a label only predicted
        (
            np.array(["setosa", "versicolor", "setosa"]),
            np.array(["versicolor", "virginica", "setosa"]),
        ),
        (np.array([1.0, 2.0, 2.0]), np.array([2.0, 2.0, 1.0])),  # floats: scikit-learn counts
    ],
)
def test_confusion_counts_are_scikit_learns(y_true: np.ndarray, y_pred: np.ndarray) -> None:
    """The confusion matrix counted with numpy equals scikit-learn's, labels sorted the same."""
    expected = metrics.confusion_matrix(y_true, y_pred)

    counts = scoring.confusion_counts(y_true, y_pred)

    assert counts.tolist() == expected.tolist()


def test_labels_of_two_kinds_are_refused_as_scikit_learn_refuses_them() -> None:
    """Predicted strings against true numbers are an error naming the mix, not a zero score."""
    with pytest.raises(ValueError, match="Mix of label input types"):
        scoring.confusion_counts(np.array([1, 2, 1]), np.array(["1", "2", "1"]))


def test_classification_all_same_prediction_has_zero_for_unpredicted_classes() -> None:
    """Predicting one class for everything gives zero precision for the others, not NaN."""
    y_true = np.array([0, 1, 2, 0, 1, 2])
    y_pred = np.zeros(6, dtype=int)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing leaks to the job's output
        main, extras = score_predictions(
            "classification", np.zeros((6, 1)), y_true, y_pred, y_train=y_true
        )

    assert main == pytest.approx(1 / 3)
    assert extras["precision_macro"] == pytest.approx((1 / 3) / 3)
    assert extras["recall_macro"] == pytest.approx(1 / 3)
    assert_clean(main, extras)


def test_regression_matches_hand_computed_values() -> None:
    """R², MAE, RMSE and the mean baseline's R² agree with arithmetic by hand."""
    y_true = np.array([1.0, 2.0, 3.0, 4.0])
    y_pred = np.array([1.0, 2.0, 3.0, 5.0])

    main, extras = score_predictions(
        "regression", np.zeros((4, 1)), y_true, y_pred, y_train=np.array([1.0, 2.0])
    )

    # Sum of squares 5 around the mean 2.5; residuals 0, 0, 0, 1; the baseline predicts 1.5.
    assert main == pytest.approx(0.8)
    assert extras == pytest.approx({"r2": 0.8, "mae": 0.25, "rmse": 0.5, "baseline_r2": 1 - 9 / 5})


def test_regression_on_diabetes_equals_plain_scikit_learn() -> None:
    """A real regressor's scores on diabetes are exactly scikit-learn's metric functions."""
    X, y = datasets.load_diabetes(return_X_y=True)
    X_train, y_train, X_test, y_test = X[:300], y[:300], X[300:], y[300:]
    y_pred = LinearRegression().fit(X_train, y_train).predict(X_test)

    main, extras = score_predictions("regression", X_test, y_test, y_pred, y_train=y_train)

    assert main == max(0.0, metrics.r2_score(y_test, y_pred))
    assert extras["r2"] == metrics.r2_score(y_test, y_pred)
    assert extras["mae"] == metrics.mean_absolute_error(y_test, y_pred)
    assert extras["rmse"] == metrics.root_mean_squared_error(y_test, y_pred)
    baseline = np.full_like(y_test, y_train.mean())
    assert extras["baseline_r2"] == pytest.approx(metrics.r2_score(y_test, baseline))


def test_regression_worse_than_the_mean_scores_zero_but_reports_r2() -> None:
    """A negative R² gives the main score 0, while the extra ``r2`` keeps the real value."""
    y_true = np.array([1.0, 2.0, 3.0])
    y_pred = np.array([3.0, 2.0, 1.0])

    main, extras = score_predictions("regression", np.zeros((3, 1)), y_true, y_pred, y_train=None)

    assert main == 0.0
    assert extras["r2"] == pytest.approx(-3.0)
    assert "baseline_r2" not in extras


def test_undefined_measures_are_left_out() -> None:
    """R² of a single point is NaN: it is dropped from the extras and the main score is 0."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        main, extras = score_predictions(
            "regression", np.zeros((1, 1)), np.array([2.0]), np.array([3.0]), y_train=None
        )

    assert main == 0.0
    assert extras == {"mae": 1.0, "rmse": 1.0}


def test_clustering_with_labels_equals_plain_scikit_learn() -> None:
    """KMeans on blobs: ARI and every label-based extra are scikit-learn's own values."""
    X, y = datasets.make_blobs(n_samples=150, centers=3, cluster_std=2.0, random_state=0)
    labels = KMeans(n_clusters=3, n_init=10, random_state=0).fit_predict(X)

    main, extras = score_predictions("clustering", X, y, labels, y_train=None)

    assert main == metrics.adjusted_rand_score(y, labels)
    homogeneity, completeness, v_measure = metrics.homogeneity_completeness_v_measure(y, labels)
    assert extras == pytest.approx(
        {
            "n_clusters": 3.0,
            "noise_fraction": 0.0,
            "silhouette": metrics.silhouette_score(X, labels),
            "nmi": metrics.normalized_mutual_info_score(y, labels),
            "ami": metrics.adjusted_mutual_info_score(y, labels),
            "v_measure": v_measure,
            "homogeneity": homogeneity,
            "completeness": completeness,
            "fowlkes_mallows": metrics.fowlkes_mallows_score(y, labels),
        }
    )


def test_clustering_without_labels_is_the_rescaled_silhouette() -> None:
    """Without true labels the score is (silhouette + 1) / 2 and no label-based extra appears."""
    X, _ = datasets.make_blobs(n_samples=120, centers=4, random_state=1)
    labels = KMeans(n_clusters=4, n_init=10, random_state=0).fit_predict(X)

    main, extras = score_predictions("clustering", X, None, labels, y_train=None)

    silhouette = metrics.silhouette_score(X, labels)
    assert main == pytest.approx((silhouette + 1) / 2)
    assert set(extras) == {"n_clusters", "noise_fraction", "silhouette"}


def test_noise_is_left_out_of_the_silhouette_but_counted() -> None:
    """DBSCAN's noise: silhouette over the clustered points, ARI with noise as one group."""
    X, y = datasets.make_blobs(n_samples=200, centers=3, cluster_std=1.2, random_state=3)
    labels = DBSCAN(eps=0.6, min_samples=5).fit_predict(X)
    noise = labels == -1
    assert 0 < noise.sum() < len(labels)  # the data really has noise and clusters

    unlabelled, extras = score_predictions("clustering", X, None, labels, y_train=None)
    labelled, labelled_extras = score_predictions("clustering", X, y, labels, y_train=None)

    silhouette = metrics.silhouette_score(X[~noise], labels[~noise])
    assert unlabelled == pytest.approx((silhouette + 1) / 2)
    assert extras["noise_fraction"] == pytest.approx(noise.mean())
    assert extras["n_clusters"] == len(set(labels[~noise]))
    assert labelled == pytest.approx(max(0.0, metrics.adjusted_rand_score(y, labels)))
    assert labelled_extras["nmi"] == metrics.normalized_mutual_info_score(y, labels)


@pytest.mark.parametrize(
    ("labels", "n_clusters", "noise_fraction"),
    [
        pytest.param([0, 0, 0, 0, 0, 0], 1, 0.0, id="one cluster"),
        pytest.param([-1, -1, -1, -1, -1, -1], 0, 1.0, id="all noise"),
        pytest.param([0, 1, 2, 3, 4, 5], 6, 0.0, id="every point its own cluster"),
        pytest.param([0, -1, 1, -1, 2, -1], 3, 0.5, id="singletons among noise"),
    ],
)
def test_clustering_without_a_silhouette_scores_zero(
    labels: list[int], n_clusters: int, noise_fraction: float
) -> None:
    """Fewer than 2 clusters, or no cluster with two points, score 0 with no silhouette."""
    X = np.arange(12.0).reshape(6, 2)

    main, extras = score_predictions("clustering", X, None, np.array(labels), y_train=None)

    assert main == 0.0
    assert extras == {"n_clusters": n_clusters, "noise_fraction": noise_fraction}


def test_clustering_worse_than_chance_scores_zero() -> None:
    """An adjusted Rand index below 0 gives the main score 0."""
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([0, 1, 0, 1])
    assert metrics.adjusted_rand_score(y_true, y_pred) < 0

    main, extras = score_predictions(
        "clustering", np.arange(8.0).reshape(4, 2), y_true, y_pred, y_train=None
    )

    assert main == 0.0
    assert_clean(main, extras)


def test_large_sets_take_the_silhouette_of_a_fixed_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the sample size the silhouette is scikit-learn's sampled one, seed 0, repeatably."""
    monkeypatch.setattr(scoring, "SILHOUETTE_SAMPLE_SIZE", 50)
    X, _ = datasets.make_blobs(n_samples=300, centers=3, random_state=0)
    labels = KMeans(n_clusters=3, n_init=10, random_state=0).fit_predict(X)

    first = score_predictions("clustering", X, None, labels, y_train=None)
    second = score_predictions("clustering", X, None, labels, y_train=None)

    sampled = metrics.silhouette_score(X, labels, sample_size=50, random_state=0)
    assert first[1]["silhouette"] == pytest.approx(sampled)
    assert first == second


@pytest.mark.parametrize(
    ("task", "y_true", "message"),
    [
        ("ranking", np.array([1, 2]), "unknown task 'ranking': the tasks are classification, "),
        ("classification", None, "classification scores need the true labels"),
        ("regression", None, "regression scores need the true labels"),
        ("clustering", np.array([1, 2, 3]), "there are 2 predictions for 3 true labels"),
    ],
)
def test_bad_input_is_a_clear_error(task: str, y_true: np.ndarray | None, message: str) -> None:
    """An unknown task, missing labels or a length mismatch raise a ValueError saying which."""
    with pytest.raises(ValueError, match=message):
        score_predictions(task, np.zeros((2, 1)), y_true, np.array([1, 2]), y_train=None)
