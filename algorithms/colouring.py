"""Colours for pictures: one per class or cluster, or a scale for regression values.

Split from `algorithms.pictures` so that module keeps to drawing; both kinds
offer the same three calls (`style` for scattered points, `draw_surface` for
a prediction background, `add_key` for the legend or colour bar).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from sklearn.inspection import DecisionBoundaryDisplay

from algorithms.dataset import Dataset
from algorithms.scoring import NOISE_LABEL

NOISE_COLOR = (0.75, 0.75, 0.75, 1.0)
MAX_LEGEND_ENTRIES = 20
_HANDLE: dict[str, Any] = {"linestyle": "", "markersize": 8, "markeredgecolor": "black"}


@dataclass(frozen=True)
class Categories:
    """Distinct labels, each with its own colour; clustering's noise is grey."""

    labels: tuple[Any, ...]
    title: str
    has_noise: bool = False

    @classmethod
    def of(cls, arrays: Iterable[np.ndarray | None], title: str, noise: bool) -> Categories:
        """The sorted distinct values; with ``noise``, NOISE_LABEL is noise, not a label."""
        values = [v for a in arrays if a is not None for v in np.asarray(a).tolist()]
        unique = list(dict.fromkeys(v for v in values if not (noise and v == NOISE_LABEL)))
        with contextlib.suppress(TypeError):  # mixed types keep their first-seen order
            unique.sort()
        return cls(tuple(unique), title, noise and NOISE_LABEL in values)

    @property
    def colors(self) -> list[tuple[float, ...]]:
        n = len(self.labels)
        if n <= 20:
            cmap = colormaps["tab10" if n <= 10 else "tab20"]
            return [tuple(cmap(i)) for i in range(n)]
        return [tuple(c) for c in colormaps["turbo"](np.linspace(0.0, 1.0, n))]

    def codes(self, values: np.ndarray) -> np.ndarray:
        """Each value's position among the labels; noise (or an unknown value) is -1."""
        index = {label: i for i, label in enumerate(self.labels)}
        return np.array([index.get(v, -1) for v in np.asarray(values).tolist()], dtype=int)

    def style(self, values: np.ndarray) -> dict[str, Any]:
        palette = np.array([*self.colors, NOISE_COLOR])  # code -1 picks the last row
        return {"c": palette[self.codes(values)]}

    def draw_surface(self, axes: Axes, xx0: np.ndarray, xx1: np.ndarray, predicted: Any) -> None:
        # pcolormesh, not contourf: contourf interpolates between class numbers and
        # draws slivers of a third class along the border of two others.
        n = len(self.labels)
        kwargs: dict[str, Any] = {"vmin": -0.5, "vmax": n - 0.5, "alpha": 0.35}
        if n == 2:  # the display colours two classes with a colormap, more with a list
            kwargs["cmap"] = ListedColormap(self.colors)
        response = np.ma.masked_less(self.codes(predicted).reshape(xx0.shape), 0)  # noise
        display = DecisionBoundaryDisplay(
            xx0=xx0, xx1=xx1, n_classes=n, response=response, multiclass_colors=self.colors
        )
        display.plot(ax=axes, plot_method="pcolormesh", **kwargs)

    def add_key(self, figure: Figure, axes: Axes) -> None:
        handles = [handle(str(k), c) for k, c in zip(self.labels, self.colors, strict=True)]
        if len(handles) > MAX_LEGEND_ENTRIES:
            more = len(handles) - MAX_LEGEND_ENTRIES + 1
            handles = [*handles[: MAX_LEGEND_ENTRIES - 1], handle(f"and {more} more", "white")]
        if self.has_noise:
            handles.append(handle("noise", NOISE_COLOR))
        figure.legend(handles=handles, title=self.title, loc="outside right lower")


@dataclass(frozen=True)
class Scale:
    """A continuous colour scale for regression values."""

    norm: Normalize
    title: str

    @classmethod
    def of(cls, arrays: Iterable[np.ndarray | None], title: str) -> Scale:
        values = np.concatenate([np.asarray(a, dtype=float) for a in arrays if a is not None])
        low, high = float(values.min()), float(values.max())
        return cls(Normalize(low, high if high > low else low + 1.0), title)

    def style(self, values: np.ndarray) -> dict[str, Any]:
        return {"c": np.asarray(values, dtype=float), "cmap": "viridis", "norm": self.norm}

    def draw_surface(self, axes: Axes, xx0: np.ndarray, xx1: np.ndarray, predicted: Any) -> None:
        response = np.asarray(predicted, dtype=float).reshape(xx0.shape)
        display = DecisionBoundaryDisplay(xx0=xx0, xx1=xx1, n_classes=2, response=response)
        display.plot(ax=axes, plot_method="pcolormesh", cmap="viridis", norm=self.norm, alpha=0.5)

    def add_key(self, figure: Figure, axes: Axes) -> None:
        figure.colorbar(ScalarMappable(self.norm, "viridis"), ax=axes, label=self.title)


def colouring_for(
    dataset: Dataset, arrays: Iterable[np.ndarray | None], *, truth: bool
) -> Categories | Scale:
    """Colours for these labels or values; ``truth``: the training points' are the true ones."""
    target = dataset.target
    title = f"{target}\n(training: true,\nothers: predicted)" if truth else f"predicted {target}"
    if dataset.task == "regression":
        return Scale.of(arrays, title)
    if dataset.task == "clustering":
        return Categories.of(arrays, "cluster", noise=True)
    return Categories.of(arrays, title, noise=False)


def handle(label: str, color: Any, marker: str = "o") -> Line2D:
    """A legend entry: one marker of the given colour."""
    return Line2D([], [], marker=marker, markerfacecolor=color, label=label, **_HANDLE)
