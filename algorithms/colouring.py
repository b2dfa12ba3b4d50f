"""Colours for pictures: one per class or cluster, or a scale for regression values.

Split from `algorithms.pictures` so that module keeps to drawing; both kinds
offer the same three calls (`colours` for scattered points, `background`
for a prediction surface, `add_key` for the legend or colour bar).

A prediction background is the colour of each grid prediction blended with
white, as a translucent layer over white would be: what scikit-learn's
DecisionBoundaryDisplay draws with ``pcolormesh`` (a cell per grid point, no
slivers of a third class between two others), as one image.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import Normalize

from algorithms.chart import Entry, colour_bar, legend
from algorithms.dataset import Dataset
from algorithms.raster import Raster
from algorithms.scoring import NOISE_LABEL

NOISE_COLOR = (0.75, 0.75, 0.75, 1.0)
MAX_LEGEND_ENTRIES = 20
WHITE = np.ones(3, dtype=np.float32)


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
        values = np.asarray(values)
        try:  # a prediction grid repeats a few labels thousands of times: look each up once
            distinct, where = np.unique(values, return_inverse=True)
        except TypeError:  # labels of mixed types cannot be sorted
            return np.array([index.get(v, -1) for v in values.tolist()], dtype=int)
        found = np.array([index.get(v, -1) for v in distinct.tolist()], dtype=int)
        return found[where.reshape(-1)] if len(distinct) else np.zeros(0, dtype=int)

    def colours(self, values: np.ndarray) -> np.ndarray:
        """One RGB colour per value; noise is grey."""
        palette = np.array([*self.colors, NOISE_COLOR])[:, :3]  # code -1 picks the last row
        return palette[self.codes(values)]

    def background(self, predicted: Any, shape: tuple[int, int]) -> np.ndarray:
        """The grid's colours, at 35 % over white; noise leaves it white."""
        palette = np.array([*self.colors, (1.0, 1.0, 1.0, 1.0)])[:, :3]
        return 0.65 + 0.35 * palette[self.codes(predicted).reshape(shape)]

    def add_key(self, raster: Raster, below: float) -> None:
        entries = [Entry(str(k), c) for k, c in zip(self.labels, self.colors, strict=True)]
        if len(entries) > MAX_LEGEND_ENTRIES:
            more = len(entries) - MAX_LEGEND_ENTRIES + 1
            entries = [*entries[: MAX_LEGEND_ENTRIES - 1], Entry(f"and {more} more", WHITE)]
        if self.has_noise:
            entries.append(Entry("noise", NOISE_COLOR))
        legend(raster, entries, self.title, top=None, below=below)


@dataclass(frozen=True)
class Scale:
    """A continuous colour scale (viridis) for regression values."""

    norm: Normalize
    title: str

    @classmethod
    def of(cls, arrays: Iterable[np.ndarray | None], title: str) -> Scale:
        values = np.concatenate([np.asarray(a, dtype=float) for a in arrays if a is not None])
        low, high = float(values.min()), float(values.max())
        return cls(Normalize(low, high if high > low else low + 1.0), title)

    def colours(self, values: np.ndarray) -> np.ndarray:
        """One RGB colour per value."""
        shares = self.norm(np.asarray(values, dtype=float))
        return np.asarray(colormaps["viridis"](shares))[..., :3]

    def background(self, predicted: Any, shape: tuple[int, int]) -> np.ndarray:
        """The grid's colours, at 50 % over white."""
        return 0.5 + 0.5 * self.colours(np.asarray(predicted).reshape(shape))

    def add_key(self, raster: Raster, below: float) -> None:
        colours = np.asarray(colormaps["viridis"](np.linspace(0.0, 1.0, 256)))[:, :3]
        limits = (float(self.norm.vmin or 0.0), float(self.norm.vmax or 0.0))  # set by `of`
        colour_bar(raster, colours, limits, self.title)


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
