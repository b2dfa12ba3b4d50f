"""The summary pictures: a confusion matrix, and predicted against true values.

These are where true labels meet predictions, so they hold the rule that
no picture shows a hidden (test or validation) label point by point: a
student knows each point's prediction, so a hidden label drawn against it
can be read off. The confusion matrix counts training points, whose labels
students have (on a hidden set, a predicted class whose points all share
one true class would give each of them away). Predicted against true shows
training points one by one, and the test set only as :func:`hidden_bins`:
the mean true value of bins of ``MIN_BIN`` or more test points.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib import colormaps

from algorithms.chart import HEIGHT, WIDTH, Entry, Plot, data_limits, legend
from algorithms.colouring import Categories
from algorithms.raster import Box, Raster, text_size

__all__ = ["MAX_BINS", "MIN_BIN", "confusion_matrix", "hidden_bins", "predicted_vs_true"]

MIN_BIN = 10  # test points per bin of predicted against true: no single one can be read
MAX_BINS = 10
BLUE, ORANGE = (0.12, 0.47, 0.71), (1.0, 0.5, 0.05)  # matplotlib's tab:blue, tab:orange
BLACK, WHITE = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, target: str, title: str) -> Raster:
    """How often each true class was predicted as each class, drawn as scikit-learn's display."""
    categories = Categories.of([y_true, y_pred], target, noise=False)
    n = len(categories.labels)
    counts = np.zeros((n, n), dtype=int)
    np.add.at(counts, (categories.codes(y_true), categories.codes(y_pred)), 1)
    names = [str(label) for label in categories.labels]
    cell = max(16, min(80, 480 // n))
    longest = max(text_size(name)[0] for name in names)
    vertical = sum(map(len, names)) > 40 or longest + 4 > cell  # names side by side collide
    left = max(110, longest + 60)
    area = Box(left, 70, left + cell * n, 70 + cell * n)
    width = max(int(area.right) + 30, int((area.left + area.right + text_size(title, 12)[0]) / 2))
    height = int(area.bottom) + 60 + (longest if vertical else 0)
    plot = Plot(Raster(width + 10, height), (-0.5, n - 0.5), (n - 0.5, -0.5), area)
    shades = np.asarray(colormaps["Blues"](counts / max(counts.max(), 1)))[..., :3]
    plot.raster.image(area, shades[::-1])
    size = min(10.0, max(6.0, cell * 0.4))  # small cells of many classes: small numbers
    for (row, column), count in np.ndenumerate(counts):
        colour = WHITE if count > counts.max() / 2 else BLACK
        x, y = float(plot.x(column)), float(plot.y(row))
        plot.raster.text(str(count), x, y, size, colour, ha="center", va="center")
    ticks = (list(range(n)), names)
    plot.axes(f"predicted {target}", f"true {target}", ticks, ticks, vertical_xticks=vertical)
    plot.title(title)
    return plot.raster


def predicted_vs_true(
    training: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray] | None,
    target: str,
    model_line: str,
) -> Raster:
    """Training (predicted, true) pairs as points, the test set's as bins, and the diagonal."""
    predicted, true = (np.asarray(a, dtype=float) for a in training)
    bins = np.array(hidden_bins(*test) if test is not None else [])
    limits = data_limits(np.concatenate([predicted, true, bins.ravel()]))
    plot = Plot(Raster(WIDTH, HEIGHT), limits, limits)
    plot.raster.line(plot.x(limits), plot.y(limits), BLACK, plot.area, dashed=True)
    size = 8.0 if len(predicted) <= 500 else 5.0
    plot.raster.markers(plot.x(predicted), plot.y(true), "o", size, np.array(BLUE), plot.area)
    entries = [Entry(f"training points ({len(predicted)})", BLUE, "o")]
    if len(bins):
        low, high, mean_predicted, mean_true = bins.T
        for a, b, at in zip(plot.x(low), plot.x(high), plot.y(mean_true), strict=True):
            plot.raster.line(np.array([a, b]), np.array([at, at]), ORANGE, plot.area, width=2.5)
        centres = (plot.x(mean_predicted), plot.y(mean_true))
        plot.raster.markers(*centres, "s", 10, np.array(ORANGE), plot.area)
        per_bin = len(test[0]) // len(bins) if test is not None else 0
        label = f"test set: the mean\nof {len(bins)} bins of {per_bin}+\npoints each"
        entries.append(Entry(label, ORANGE, "s"))
    entries.append(Entry("perfect prediction", BLACK, "--"))
    legend(plot.raster, entries, "", top=10)
    plot.axes(f"predicted {target}", f"true {target}")
    where = "test set in bins" if len(bins) else "too few test points to show"
    plot.title(f"Predicted against true {target}: training points, {where}\n{model_line}")
    return plot.raster


def hidden_bins(predicted: np.ndarray, true: Any) -> list[tuple[float, float, float, float]]:
    """Points grouped by predicted value, at least MIN_BIN to a bin, at most MAX_BINS bins.

    Each bin is ``(lowest prediction, highest prediction, mean prediction,
    mean true value)``: a mean of ten or more hidden values, from which no
    single one can be read. Fewer than MIN_BIN points give no bin at all.
    """
    predicted = np.asarray(predicted, dtype=float)
    count = min(MAX_BINS, len(predicted) // MIN_BIN)
    if count == 0:
        return []
    true = np.asarray(true, dtype=float)
    groups = np.array_split(np.argsort(predicted, kind="stable"), count)
    return [
        (
            float(predicted[g].min()),
            float(predicted[g].max()),
            float(predicted[g].mean()),
            float(true[g].mean()),
        )
        for g in groups
    ]
