"""Axes, ticks, titles, legends and colour bars on a :class:`~algorithms.raster.Raster`.

The layout is fixed, as the pictures are all alike: an 800 x 550 picture,
the plot area on the left, the keys (legends, colour bar) in a column on
the right, the title above. Tick values come from matplotlib's MaxNLocator,
so axes read as matplotlib's do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.ticker import MaxNLocator

from algorithms.raster import BLACK, Box, Colour, Raster, text_size

__all__ = ["AREA", "HEIGHT", "WIDTH", "Entry", "Plot", "colour_bar", "legend", "nice_ticks"]

WIDTH, HEIGHT = 800, 550
AREA = Box(80, 62, 580, 482)  # the plot area, in pixels
KEYS = Box(585, 10, 795, 540)  # the column of legends and colour bars
TICK = 4  # pixels of a tick mark outside the frame
GREY = (0.8, 0.8, 0.8)
_LOCATOR = MaxNLocator(nbins=7, steps=[1, 2, 2.5, 5, 10])


@dataclass(frozen=True)
class Entry:
    """A legend line: a marker ("o", "s", "^") or a line ("-", "--") of a colour, and a label."""

    label: str
    colour: Colour
    marker: str = "o"


class Plot:
    """A plot area showing data from ``xlim`` to ``ylim``, and what is around it."""

    def __init__(
        self, raster: Raster, xlim: tuple[float, float], ylim: tuple[float, float], area: Box = AREA
    ) -> None:
        self.raster, self.area, self.xlim, self.ylim = raster, area, xlim, ylim

    def x(self, values: Any) -> np.ndarray:
        """Pixel columns of data x values."""
        low, high = self.xlim
        share = (np.asarray(values, dtype=float) - low) / (high - low)
        return self.area.left + share * (self.area.right - self.area.left)

    def y(self, values: Any) -> np.ndarray:
        """Pixel rows of data y values (up is up)."""
        low, high = self.ylim
        share = (np.asarray(values, dtype=float) - low) / (high - low)
        return self.area.bottom - share * (self.area.bottom - self.area.top)

    def axes(
        self,
        xlabel: str,
        ylabel: str,
        xticks: tuple[Sequence[float], Sequence[str]] | None = None,
        yticks: tuple[Sequence[float], Sequence[str]] | None = None,
        vertical_xticks: bool = False,
    ) -> None:
        """The frame, ticks with their values (nice ones unless given) and the axis labels."""
        raster, area = self.raster, self.area
        raster.frame(Box(area.left - 1, area.top - 1, area.right + 1, area.bottom + 1))
        values, labels = xticks or nice_ticks(*self.xlim)
        tallest = 0
        for at, label in zip(self.x(values), labels, strict=True):
            raster.rect(Box(at - 0.5, area.bottom + 1, at + 0.5, area.bottom + 1 + TICK), BLACK)
            raster.text(label, at, area.bottom + TICK + 3, ha="center", vertical=vertical_xticks)
            tallest = max(tallest, text_size(label)[0 if vertical_xticks else 1])
        values, labels = yticks or nice_ticks(*self.ylim)
        widest = 0
        for at, label in zip(self.y(values), labels, strict=True):
            raster.rect(Box(area.left - 1 - TICK, at - 0.5, area.left - 1, at + 0.5), BLACK)
            raster.text(label, area.left - TICK - 4, at, ha="right", va="center")
            widest = max(widest, text_size(label)[0])
        middle = (area.left + area.right) / 2
        raster.text(xlabel, middle, area.bottom + TICK + 6 + tallest, ha="center")
        left = max(area.left - TICK - 10 - widest, 20)
        raster.text(
            ylabel, left, (area.top + area.bottom) / 2, ha="right", va="center", vertical=True
        )

    def title(self, text: str) -> None:
        """Centred above the plot area."""
        middle = (self.area.left + self.area.right) / 2
        self.raster.text(text, middle, self.area.top - 8, size=12, ha="center", va="bottom")


def nice_ticks(low: float, high: float) -> tuple[list[float], list[str]]:
    """Round tick values between ``low`` and ``high``, and their labels."""
    values = [float(v) for v in _LOCATOR.tick_values(low, high) if low <= v <= high]
    step = values[1] - values[0] if len(values) > 1 else 1.0
    decimals = 0
    while decimals < 12 and any(abs(round(v, decimals) - v) > step * 1e-6 for v in values):
        decimals += 1
    return values, [f"{round(v, decimals) + 0.0:.{decimals}f}" for v in values]


def data_limits(values: np.ndarray) -> tuple[float, float]:
    """The data's range plus a 5 % margin each side (half a unit for a single value)."""
    low, high = float(np.min(values)), float(np.max(values))
    margin = 0.05 * (high - low) or 0.5
    return low - margin, high + margin


def legend(
    raster: Raster, entries: Sequence[Entry], title: str, top: float | None, below: float = 0.0
) -> float:
    """A framed legend in the key column; its bottom.

    At ``top``, or else ending at the column's bottom but not above ``below``.
    """
    size, gap = (10.0, 6) if len(entries) <= 8 else (8.0, 3)
    title_width, title_height = text_size(title, size) if title else (0, 0)
    labels = [text_size(e.label, size) for e in entries]
    width = max([title_width] + [32 + w for w, _ in labels]) + 16
    height = title_height + sum(h + gap for _, h in labels) + 10
    box_top = top if top is not None else max(KEYS.bottom - height, below + 10)
    box = Box(KEYS.right - width, box_top, KEYS.right, box_top + height)
    raster.rect(box, (1.0, 1.0, 1.0))
    raster.frame(box, GREY)
    if title:
        raster.text(title, (box.left + box.right) / 2, box.top + 6, size=size, ha="center")
    at = box.top + 6 + title_height
    for entry, (_, label_height) in zip(entries, labels, strict=True):
        middle = at + (label_height + gap) / 2
        first_line = at + gap / 2 + size * 0.7  # a marker goes beside a label's first line
        _sample(raster, entry, box.left + 17, first_line if label_height > 2 * size else middle)
        raster.text(entry.label, box.left + 33, middle, size=size, va="center")
        at += label_height + gap
    return box.bottom


def _sample(raster: Raster, entry: Entry, x: float, y: float) -> None:
    """The marker or line of a legend entry, centred on (x, y)."""
    if entry.marker in ("-", "--"):
        xs = np.array([x - 10, x + 10])
        raster.line(xs, np.array([y, y]), entry.colour, KEYS, dashed=entry.marker == "--")
    else:
        colour = np.asarray(entry.colour, dtype=float)[None, :3]
        raster.markers(np.array([x]), np.array([y]), entry.marker, 11, colour, KEYS)


def colour_bar(
    raster: Raster, colours: np.ndarray, limits: tuple[float, float], label: str
) -> None:
    """A vertical bar of ``colours`` (low to high) in the key column, ticks and ``label``."""
    box = Box(KEYS.left + 40, KEYS.bottom - 260, KEYS.left + 62, KEYS.bottom - 10)
    raster.image(box, colours[:, None, :])
    raster.frame(Box(box.left - 1, box.top - 1, box.right + 1, box.bottom + 1))
    bar = Plot(raster, (0.0, 1.0), limits, area=box)
    values, labels = nice_ticks(*limits)
    widest = 0
    for at, text in zip(bar.y(values), labels, strict=True):
        raster.rect(Box(box.right + 1, at - 0.5, box.right + 1 + TICK, at + 0.5), BLACK)
        raster.text(text, box.right + TICK + 4, at, ha="left", va="center")
        widest = max(widest, text_size(text)[0])
    middle = (box.top + box.bottom) / 2
    raster.text(label, box.right + TICK + 10 + widest, middle, va="center", vertical=True)
