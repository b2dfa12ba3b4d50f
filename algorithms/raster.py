"""A small RGB raster that pictures are drawn on: rectangles, images, markers, lines, text.

Why not matplotlib's figures: a figure builds dozens of artists per axes
(ticks, spines, their texts and transforms) and lays them out before the
first pixel, which took most of a picture's 100-300 ms; here a picture is a
few numpy operations on one array. Text stays crisp: it is drawn by
matplotlib's own FreeType font (DejaVu Sans) with its hinting, and colours
come from matplotlib's colormaps, so pictures look as before.

Coordinates are pixels from the top left corner; a :class:`Box` is
``(left, top, right, bottom)``. Shapes are anti-aliased by coverage masks
(markers are rendered 4 times larger and averaged down, once per shape and
size). Nothing here keeps state between pictures but caches of pure results
(marker masks, text bitmaps).

PNG: 8-bit RGB, no filter, deflated by ISA-L (``isal``) at level 1. On the
pictures of a course's job stream that is 0.3 ms and 37 KB a picture, where
zlib at level 2 took 2.2 ms for 35 KB; PNG's filters made these pictures
larger, not smaller (flat colours already repeat byte for byte).
"""

from __future__ import annotations

import functools
import struct
import zlib
from typing import Any, Literal, NamedTuple

import numpy as np
from isal import isal_zlib
from matplotlib.font_manager import FontProperties, findfont, get_font

__all__ = ["Box", "Raster"]

DPI = 100
Colour = tuple[float, ...] | np.ndarray
BLACK = (0.0, 0.0, 0.0)
_SUPERSAMPLE = 4
DEFLATE_LEVEL = 1


class Box(NamedTuple):
    """A rectangle in pixels: left, top, right, bottom."""

    left: float
    top: float
    right: float
    bottom: float


class Raster:
    """White RGB pixels (bytes, rows from the top) with drawing calls; colours are 0-1 floats.

    Bytes, not floats: a picture is 1.3 MB instead of 5.3 (allocating and
    filling it was a tenth of a picture's time), and the PNG needs no
    conversion. Only the pixels a blend touches are computed in floats.
    """

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        # Each row begins with PNG's filter byte (0, none): the PNG deflates this buffer as it is.
        self._rows = np.full((height, 1 + 3 * width), 255, dtype=np.uint8)
        self._rows[:, 0] = 0
        self.pixels = self._rows[:, 1:].reshape(height, width, 3)  # a view of the rows

    def rect(self, box: Box, colour: Colour) -> None:
        """Fill ``box`` (rounded to whole pixels) with one colour."""
        left, top, right, bottom = (_pixel(v) for v in box)
        self.pixels[max(top, 0) : max(bottom, 0), max(left, 0) : max(right, 0)] = _bytes(colour[:3])

    def frame(self, box: Box, colour: Colour = BLACK, width: int = 1) -> None:
        """The outline of ``box``, ``width`` pixels wide, inside it."""
        left, top, right, bottom = box
        self.rect(Box(left, top, right, top + width), colour)
        self.rect(Box(left, bottom - width, right, bottom), colour)
        self.rect(Box(left, top, left + width, bottom), colour)
        self.rect(Box(right - width, top, right, bottom), colour)

    def image(self, box: Box, colours: np.ndarray) -> None:
        """An ``(rows, columns, 3)`` grid stretched over ``box``, its first row at the bottom."""
        left, top, right, bottom = (_pixel(v) for v in box)
        rows, columns = colours.shape[:2]
        pick_rows = ((bottom - np.arange(top, bottom) - 0.5) * rows / (bottom - top)).astype(int)
        pick_columns = ((np.arange(left, right) - left + 0.5) * columns / (right - left)).astype(
            int
        )
        # Columns, then rows, each by `take` along one axis: seven times faster than indexing.
        wide = np.take(_bytes(colours[..., :3]), np.clip(pick_columns, 0, columns - 1), axis=1)
        self.pixels[top:bottom, left:right] = np.take(wide, np.clip(pick_rows, 0, rows - 1), axis=0)

    def markers(
        self,
        x: np.ndarray,
        y: np.ndarray,
        marker: str,
        size: float,
        fill: np.ndarray,
        clip: Box,
        edge: float = 1.0,
    ) -> None:
        """Markers of ``size`` pixels centred on (x, y), each its ``fill`` colour, edged in black.

        ``fill`` is one RGB(A) colour or one per marker; later markers cover
        earlier ones; pixels outside ``clip`` stay untouched.
        """
        outer, inner = _marker_masks(marker, _pixel(size), edge)
        fill = np.broadcast_to(np.asarray(fill, dtype=np.float32)[..., :3] * 255, (len(x), 3))
        offset = outer.shape[0] // 2
        dy, dx = np.nonzero(outer)
        rows = np.round(y).astype(np.intp)[:, None] + (dy - offset)  # markers x mask pixels
        cols = np.round(x).astype(np.intp)[:, None] + (dx - offset)
        inside = (
            (cols >= max(clip.left, 0))
            & (cols < min(clip.right, self.width))
            & (rows >= max(clip.top, 0))
            & (rows < min(clip.bottom, self.height))
        )
        marker_of, _ = np.nonzero(inside)
        o = np.broadcast_to(outer[dy, dx], inside.shape)[inside][:, None]
        i = np.broadcast_to(inner[dy, dx], inside.shape)[inside][:, None]
        # Bytes of the rows buffer, red green blue: one flat index is cheaper than two.
        red = (rows * self._rows.shape[1] + 3 * cols + 1)[inside]
        at = red[:, None] + np.arange(3)
        flat = self._rows.reshape(-1)
        flat[at] = flat[at] * (1 - o) + fill[marker_of] * i + 0.5  # the edge is black: o - i

    def line(
        self,
        x: np.ndarray,
        y: np.ndarray,
        colour: Colour,
        clip: Box,
        width: float = 1.5,
        dashed: bool = False,
    ) -> None:
        """A polyline through the points (x, y), ``width`` pixels wide, clipped to ``clip``."""
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        steps = np.maximum(np.ceil(np.hypot(np.diff(x), np.diff(y)) * 2), 1).astype(int)
        t = np.concatenate([np.arange(n) / n + i for i, n in enumerate(steps)] + [[len(steps)]])
        xs, ys = np.interp(t, np.arange(len(x)), x), np.interp(t, np.arange(len(y)), y)
        if dashed:  # 6 pixels on, 4 off, along the line's length
            travelled = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(xs), np.diff(ys)))])
            xs, ys = xs[travelled % 10 < 6], ys[travelled % 10 < 6]
        brush = _disc(width)
        offset = brush.shape[0] // 2
        dy, dx = np.nonzero(brush)
        rows = (np.round(ys).astype(int)[:, None] + dy - offset).ravel()
        cols = (np.round(xs).astype(int)[:, None] + dx - offset).ravel()
        cover = np.broadcast_to(brush[dy, dx], (len(xs), len(dy))).ravel()
        inside = (
            (cols >= max(clip.left, 0))
            & (cols < min(clip.right, self.width))
            & (rows >= max(clip.top, 0))
            & (rows < min(clip.bottom, self.height))
        )
        rows, cols, cover = rows[inside], cols[inside], cover[inside]
        if not len(rows):
            return
        top, left = int(rows.min()), int(cols.min())
        mask = np.zeros((int(rows.max()) - top + 1, int(cols.max()) - left + 1), np.float32)
        np.maximum.at(mask, (rows - top, cols - left), cover)  # where the brush overlaps itself
        rows, cols = np.nonzero(mask)  # most of a line's box is empty: paint only its pixels
        cover = mask[rows, cols][:, None]
        rows += top
        cols += left
        paint = np.asarray(colour[:3], dtype=np.float32) * 255
        self.pixels[rows, cols] = self.pixels[rows, cols] * (1 - cover) + cover * paint + 0.5

    def blend(self, mask: np.ndarray, colour: Colour, at: tuple[int, int] = (0, 0)) -> None:
        """Paint ``colour`` with the coverage ``mask`` (0-1), its top left corner at ``at``.

        Over the whole box, which suits small dense masks such as text.
        """
        top, left = at
        rows = slice(max(top, 0), min(top + mask.shape[0], self.height))
        cols = slice(max(left, 0), min(left + mask.shape[1], self.width))
        if rows.start >= rows.stop or cols.start >= cols.stop:
            return
        cover = mask[rows.start - top : rows.stop - top, cols.start - left : cols.stop - left]
        cover = cover[:, :, None]
        region = self.pixels[rows, cols]
        paint = np.asarray(colour[:3], dtype=np.float32) * 255
        blended = region * (1 - cover)
        if paint.any():  # most text is black
            blended += cover * paint
        blended += 0.5  # rounds half up; an uncovered pixel keeps its byte
        region[...] = blended

    def text(
        self,
        text: str,
        x: float,
        y: float,
        size: float = 10.0,
        colour: Colour = BLACK,
        ha: Literal["left", "center", "right"] = "left",
        va: Literal["top", "center", "bottom"] = "top",
        vertical: bool = False,
    ) -> None:
        """``text`` (lines split at newlines) aligned to (x, y); ``vertical`` reads upwards."""
        mask = _text_cover(text, size, ha, vertical)
        height, width = mask.shape
        left = {"left": x, "center": x - width / 2, "right": x - width}[ha]
        top = {"top": y, "center": y - height / 2, "bottom": y - height}[va]
        self.blend(mask, colour, (_pixel(top), _pixel(left)))

    def png(self) -> bytes:
        """The picture as PNG bytes."""
        return encode_png(self._rows, self.width)

    def halved(self) -> Raster:
        """The picture at half the width and height, each pixel the mean of four."""
        height, width = self.height // 2, self.width // 2
        smaller = Raster(width, height)
        blocks = self.pixels[: 2 * height, : 2 * width].reshape(height, 2, width, 2, 3)
        smaller.pixels[...] = blocks.mean(axis=(1, 3)) + 0.5
        return smaller


def _bytes(colours: Any) -> np.ndarray:
    """Colours in 0-1 as bytes, rounded half up."""
    return (np.asarray(colours, dtype=np.float32) * 255 + 0.5).astype(np.uint8)


def encode_png(rows: np.ndarray, width: int) -> bytes:
    """An 8-bit RGB PNG of ``(height, 1 + 3 * width)`` bytes, each row led by its filter byte."""
    header = struct.pack(">IIBBBBB", width, len(rows), 8, 2, 0, 0, 0)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", isal_zlib.compress(rows, DEFLATE_LEVEL)),
            _chunk(b"IEND", b""),
        )
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    """A PNG chunk: length, type, data, and the CRC of type and data."""
    crc = zlib.crc32(data, zlib.crc32(kind))
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _pixel(value: float) -> int:
    """The nearest whole pixel (halves up, not to even)."""
    return int(np.floor(value + 0.5))


def text_size(text: str, size: float = 10.0) -> tuple[int, int]:
    """Width and height in pixels of ``text`` drawn horizontally."""
    height, width = text_mask(text, size, "left").shape
    return width, height


@functools.lru_cache(maxsize=256)
def text_mask(text: str, size: float, align: str) -> np.ndarray:
    """The coverage (0-255) of ``text`` at ``size`` points, its lines aligned to ``align``.

    Kept per process: tick values, counts and class names recur in every
    picture. 256 texts of a byte per pixel are at most 6 MB (a two-line
    title is 23 KB), also in a process that serves many jobs. Read-only.
    """
    lines = [_line_mask(line, size) for line in text.split("\n")]
    step = _pixel(size * DPI / 72 * 1.2)
    width = max(line.shape[1] for line in lines)
    mask = np.zeros((step * (len(lines) - 1) + lines[0].shape[0], width), np.uint8)
    for number, line in enumerate(lines):
        spare = width - line.shape[1]
        left = {"left": 0, "center": spare // 2}.get(align, spare)
        rows = mask[number * step : number * step + line.shape[0], left : left + line.shape[1]]
        np.maximum(rows, line, out=rows)  # a descender reaches into the next line's box
    mask.setflags(write=False)
    return mask


def _text_cover(text: str, size: float, align: str, vertical: bool) -> np.ndarray:
    """`text_mask` as coverage in 0-1, turned to read upwards if ``vertical``.

    Not kept: floats take four times the bytes of the kept mask, and a
    title's would be a tenth of a megabyte in every job process.
    """
    mask = text_mask(text, size, align)
    return (np.rot90(mask) if vertical else mask) * np.float32(1 / 255)


@functools.lru_cache(maxsize=512)
def _line_mask(line: str, size: float) -> np.ndarray:
    """One line of text as coverage, its baseline at the same row whatever its letters.

    Kept per process, as lines recur in texts that differ (a title's two lines
    come in many pairs), and FreeType takes 20-40 us a letter. 512 lines are
    at most 6 MB (a title's line is 12 KB). Read-only.
    """
    font = _font()
    font.clear()
    font.set_size(size, DPI)
    font.set_text(line or " ", 0.0)
    font.draw_glyphs_to_bitmap(antialiased=True)
    bitmap = np.asarray(font.get_image(), dtype=np.uint8)
    pixels = size * DPI / 72
    ascent, descent = _pixel(pixels * 0.93) + 1, _pixel(pixels * 0.24) + 1
    top = ascent - (bitmap.shape[0] - _pixel(font.get_descent() / 64))
    mask = np.zeros((ascent + descent, bitmap.shape[1] + 1), np.uint8)
    cut = bitmap[max(-top, 0) :][: ascent + descent - max(top, 0)]
    mask[max(top, 0) : max(top, 0) + cut.shape[0], : bitmap.shape[1]] = cut
    mask.setflags(write=False)
    return mask


@functools.cache
def _font() -> Any:
    """matplotlib's default font (DejaVu Sans), as its Agg backend loads it."""
    return get_font(findfont(FontProperties(family="DejaVu Sans")))


@functools.lru_cache(maxsize=64)
def _marker_masks(marker: str, size: int, edge: float) -> tuple[np.ndarray, np.ndarray]:
    """Coverage of a marker with its edge, and of its inside only, on a square of pixels."""
    side = size + 3
    fine = (np.arange(side * _SUPERSAMPLE) + 0.5) / _SUPERSAMPLE - side / 2
    x, y = np.meshgrid(fine, fine)

    def covered(radius: float) -> np.ndarray:
        if marker == "s":
            inside = (np.abs(x) <= radius * 0.9) & (np.abs(y) <= radius * 0.9)
        elif marker == "^":  # pointing up: rows grow downwards
            inside = (y <= radius * 0.8) & (np.abs(x) * 1.7 <= y + radius * 1.2)
        else:
            inside = np.hypot(x, y) <= radius
        return inside.reshape(side, _SUPERSAMPLE, side, _SUPERSAMPLE).mean(axis=(1, 3))

    outer, inner = (covered(r).astype(np.float32) for r in (size / 2, size / 2 - edge))
    outer.setflags(write=False)
    inner.setflags(write=False)
    return outer, inner


@functools.lru_cache(maxsize=16)
def _disc(width: float) -> np.ndarray:
    """A round brush of ``width`` pixels, anti-aliased."""
    outer, _ = _marker_masks("o", max(_pixel(width), 1), 0.0)
    return outer
