"""The scikit-learn algorithms we ship, under the names students type.

Each is a thin adapter: the estimator class with scikit-learn's own defaults,
and an explicit list of the hyper-parameters a job may set. Left out
everywhere, besides the forbidden names of ``forbidden.py``:

- parameters that take arrays of the worker's making or Python objects:
  ``metric_params``/``kernel_params`` (dicts of arbitrary values),
  ``connectivity``, ``covariance_estimator``;
- ``cache_size`` and ``precompute`` (speed and memory knobs, not learning
  choices), ``verbose_interval`` (only matters with ``verbose``);
- deprecated parameters (SVC's ``probability``, LogisticRegression's
  ``penalty``): they warn on every job and will disappear.

HDBSCAN is made with ``copy=True``: its default ``"warn"`` emits a
FutureWarning on every job, and ``True`` guarantees the worker's arrays are
never changed in place (it is the default from scikit-learn 1.10).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from sklearn.cluster import (
    DBSCAN,
    HDBSCAN,
    OPTICS,
    AgglomerativeClustering,
    Birch,
    KMeans,
    MeanShift,
    MiniBatchKMeans,
    SpectralClustering,
)
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.ensemble import (
    ExtraTreesClassifier,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import Lasso, LinearRegression, LogisticRegression, Ridge
from sklearn.mixture import GaussianMixture
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.neural_network import MLPClassifier
from sklearn.svm import SVC, SVR, LinearSVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from algorithms.registry import Algorithm

__all__ = ["BUILTINS"]

_NEIGHBORS = "n_neighbors weights algorithm leaf_size metric p"
_TREE = (
    "criterion splitter max_depth min_samples_split min_samples_leaf min_weight_fraction_leaf "
    "max_features max_leaf_nodes min_impurity_decrease ccp_alpha monotonic_cst random_state"
)
_FOREST = (
    "n_estimators criterion max_depth min_samples_split min_samples_leaf "
    "min_weight_fraction_leaf max_features max_leaf_nodes min_impurity_decrease bootstrap "
    "oob_score max_samples ccp_alpha monotonic_cst random_state"
)
_HIST_GB = (
    "loss learning_rate max_iter max_leaf_nodes max_depth min_samples_leaf l2_regularization "
    "max_features max_bins categorical_features monotonic_cst interaction_cst early_stopping "
    "scoring validation_fraction n_iter_no_change tol random_state"
)


def _algorithm(
    name: str, task: str, estimator: Callable[..., Any], params: str, description: str
) -> Algorithm:
    """A built-in; ``params`` is a space-separated list of the names a job may set."""
    return Algorithm(name, task, description, estimator, tuple(params.split()))


_CLASSIFICATION = (
    _algorithm(
        "knn", "classification", KNeighborsClassifier, _NEIGHBORS,
        "k-nearest neighbours: the majority class of the closest training points.",
    ),
    _algorithm(
        "svm", "classification", SVC,
        "C kernel degree gamma coef0 shrinking tol class_weight max_iter "
        "decision_function_shape break_ties random_state",
        "Support vector machine with a kernel (RBF by default).",
    ),
    _algorithm(
        "linear_svm", "classification", LinearSVC,
        "C penalty loss dual tol multi_class fit_intercept intercept_scaling class_weight "
        "max_iter random_state",
        "Linear support vector machine (liblinear).",
    ),
    _algorithm(
        "logistic_regression", "classification", LogisticRegression,
        "C l1_ratio dual tol fit_intercept intercept_scaling class_weight solver max_iter "
        "random_state",
        "Logistic regression: a linear model of class probabilities.",
    ),
    _algorithm(
        "decision_tree", "classification", DecisionTreeClassifier, f"{_TREE} class_weight",
        "A single decision tree.",
    ),
    _algorithm(
        "random_forest", "classification", RandomForestClassifier, f"{_FOREST} class_weight",
        "Random forest: many decision trees on bootstrap samples, voting.",
    ),
    _algorithm(
        "extra_trees", "classification", ExtraTreesClassifier, f"{_FOREST} class_weight",
        "Extremely randomised trees: a forest with random split thresholds.",
    ),
    _algorithm(
        "gradient_boosting", "classification", HistGradientBoostingClassifier,
        f"{_HIST_GB} class_weight",
        "Histogram-based gradient boosting of decision trees.",
    ),
    _algorithm(
        "naive_bayes", "classification", GaussianNB, "priors var_smoothing",
        "Gaussian naive Bayes: independent normal features per class.",
    ),
    _algorithm(
        "lda", "classification", LinearDiscriminantAnalysis,
        "solver shrinkage priors n_components store_covariance tol",
        "Linear discriminant analysis: classes as normals with a shared covariance.",
    ),
    _algorithm(
        "mlp", "classification", MLPClassifier,
        "hidden_layer_sizes activation solver alpha batch_size learning_rate "
        "learning_rate_init power_t max_iter shuffle random_state tol momentum "
        "nesterovs_momentum early_stopping validation_fraction beta_1 beta_2 epsilon "
        "n_iter_no_change max_fun",
        "Multi-layer perceptron: a small neural network.",
    ),
)  # fmt: skip

_REGRESSION = (
    _algorithm(
        "linear_regression", "regression", LinearRegression, "fit_intercept positive tol",
        "Ordinary least squares linear regression.",
    ),
    _algorithm(
        "ridge", "regression", Ridge,
        "alpha fit_intercept max_iter tol solver positive random_state",
        "Linear regression with an L2 penalty.",
    ),
    _algorithm(
        "lasso", "regression", Lasso,
        "alpha fit_intercept max_iter tol positive random_state selection",
        "Linear regression with an L1 penalty (sparse coefficients).",
    ),
    _algorithm(
        "knn_regression", "regression", KNeighborsRegressor, _NEIGHBORS,
        "k-nearest neighbours: the mean target of the closest training points.",
    ),
    _algorithm(
        "svr", "regression", SVR,
        "kernel degree gamma coef0 tol C epsilon shrinking max_iter",
        "Support vector regression with a kernel (RBF by default).",
    ),
    _algorithm(
        "decision_tree_regression", "regression", DecisionTreeRegressor, _TREE,
        "A single regression tree.",
    ),
    _algorithm(
        "random_forest_regression", "regression", RandomForestRegressor, _FOREST,
        "Random forest of regression trees, averaging.",
    ),
    _algorithm(
        "gradient_boosting_regression", "regression", HistGradientBoostingRegressor,
        f"{_HIST_GB} quantile",
        "Histogram-based gradient boosting of regression trees.",
    ),
)  # fmt: skip

_CLUSTERING = (
    _algorithm(
        "kmeans", "clustering", KMeans,
        "n_clusters init n_init max_iter tol random_state algorithm",
        "k-means: points to the nearest of k centres.",
    ),
    _algorithm(
        "minibatch_kmeans", "clustering", MiniBatchKMeans,
        "n_clusters init max_iter batch_size compute_labels tol max_no_improvement init_size "
        "n_init reassignment_ratio random_state",
        "k-means fitted on mini-batches: faster on large sets.",
    ),
    _algorithm(
        "dbscan", "clustering", DBSCAN, "eps min_samples metric algorithm leaf_size p",
        "DBSCAN: dense regions become clusters, sparse points noise (-1).",
    ),
    _algorithm(
        "hdbscan", "clustering", functools.partial(HDBSCAN, copy=True),
        "min_cluster_size min_samples cluster_selection_epsilon max_cluster_size metric alpha "
        "algorithm leaf_size cluster_selection_method allow_single_cluster store_centers",
        "HDBSCAN: DBSCAN over all densities, keeping the most stable clusters.",
    ),
    _algorithm(
        "optics", "clustering", OPTICS,
        "min_samples max_eps metric p cluster_method eps xi predecessor_correction "
        "min_cluster_size algorithm leaf_size",
        "OPTICS: density-based clusters from a reachability ordering.",
    ),
    _algorithm(
        "agglomerative", "clustering", AgglomerativeClustering,
        "n_clusters metric compute_full_tree linkage distance_threshold compute_distances",
        "Agglomerative clustering: merge the closest clusters bottom-up (Ward by default).",
    ),
    _algorithm(
        "gaussian_mixture", "clustering", GaussianMixture,
        "n_components covariance_type tol reg_covar max_iter n_init init_params weights_init "
        "means_init precisions_init random_state",
        "Gaussian mixture model fitted by expectation-maximisation.",
    ),
    _algorithm(
        "spectral", "clustering", SpectralClustering,
        "n_clusters eigen_solver n_components random_state n_init gamma affinity n_neighbors "
        "eigen_tol assign_labels degree coef0",
        "Spectral clustering: k-means on an embedding of the similarity graph.",
    ),
    _algorithm(
        "mean_shift", "clustering", MeanShift,
        "bandwidth seeds bin_seeding min_bin_freq cluster_all max_iter",
        "Mean shift: points climb to the densest nearby mode.",
    ),
    _algorithm(
        "birch", "clustering", Birch, "threshold branching_factor n_clusters compute_labels",
        "BIRCH: a clustering-feature tree, then global clustering of its leaves.",
    ),
)  # fmt: skip

BUILTINS: tuple[Algorithm, ...] = _CLASSIFICATION + _REGRESSION + _CLUSTERING
