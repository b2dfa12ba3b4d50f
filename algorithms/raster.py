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

PNG: 8-bit RGB, the "up" filter (each byte minus the one above it: flat
colours and repeated rows become zeros) and zlib level 2, about as small as
the default level 6 for pictures like these and several times faster.
"""

from __future__ import annotations

import functools
import struct
import zlib
from typing import Any, Literal, NamedTuple

import numpy as np
from matplotlib.font_manager import FontProperties, findfont, get_font

__all__ = ["Box", "Raster"]

DPI = 100
Colour = tuple[float, ...] | np.ndarray
BLACK = (0.0, 0.0, 0.0)
_SUPERSAMPLE = 4
ZLIB_LEVEL = 2
_BAND_ROWS = 32  # rows converted to bytes at a time


class Box(NamedTuple):
    """A rectangle in pixels: left, top, right, bottom."""

    left: float
    top: float
    right: float
    bottom: float


class Raster:
    """White RGB pixels (floats in 0-1, rows from the top) with drawing calls."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.pixels = np.ones((height, width, 3), dtype=np.float32)

    def rect(self, box: Box, colour: Colour) -> None:
        """Fill ``box`` (rounded to whole pixels) with one colour."""
        left, top, right, bottom = (_pixel(v) for v in box)
        self.pixels[max(top, 0) : max(bottom, 0), max(left, 0) : max(right, 0)] = colour[:3]

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
        colours = np.asarray(colours[..., :3], dtype=np.float32)
        picked = colours[np.clip(pick_rows, 0, rows - 1)][:, np.clip(pick_columns, 0, columns - 1)]
        self.pixels[top:bottom, left:right] = picked

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
        fill = np.broadcast_to(np.asarray(fill, dtype=np.float32)[..., :3], (len(x), 3))
        offset = outer.shape[0] // 2
        dy, dx = np.nonzero(outer)
        rows = np.round(y).astype(int)[:, None] + (dy - offset)[None, :]
        cols = np.round(x).astype(int)[:, None] + (dx - offset)[None, :]
        inside = (
            (cols >= clip.left) & (cols < clip.right) & (rows >= clip.top) & (rows < clip.bottom)
        )
        rows, cols = np.broadcast_to(rows, inside.shape)[inside], cols[inside]
        o = np.broadcast_to(outer[dy, dx], inside.shape)[inside][:, None]
        i = np.broadcast_to(inner[dy, dx], inside.shape)[inside][:, None]
        colours = np.broadcast_to(fill[:, None, :], (*inside.shape, 3))[inside]
        background = self.pixels[rows, cols]
        self.pixels[rows, cols] = background * (1 - o) + colours * i  # the edge is black: o - i

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
            (cols >= clip.left) & (cols < clip.right) & (rows >= clip.top) & (rows < clip.bottom)
        )
        rows, cols, cover = rows[inside], cols[inside], cover[inside]
        if not len(rows):
            return
        top, left = int(rows.min()), int(cols.min())
        mask = np.zeros((int(rows.max()) - top + 1, int(cols.max()) - left + 1), np.float32)
        np.maximum.at(mask, (rows - top, cols - left), cover)
        self.blend(mask, colour, (top, left))

    def blend(self, mask: np.ndarray, colour: Colour, at: tuple[int, int] = (0, 0)) -> None:
        """Paint ``colour`` with the coverage ``mask`` (0-1), its top left corner at ``at``."""
        top, left = at
        bottom, right = top + mask.shape[0], left + mask.shape[1]
        cut = mask[max(-top, 0) : mask.shape[0] - max(bottom - self.height, 0)]
        cut = cut[:, max(-left, 0) : mask.shape[1] - max(right - self.width, 0)]
        top, left = max(top, 0), max(left, 0)
        rows, cols = np.nonzero(cut)  # most of a text's or a line's box is empty
        cover = cut[rows, cols][:, None]
        rows += top
        cols += left
        paint = np.asarray(colour[:3], dtype=np.float32)
        self.pixels[rows, cols] = self.pixels[rows, cols] * (1 - cover) + cover * paint

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
        mask = text_mask(text, size, ha).astype(np.float32) / 255
        if vertical:
            mask = np.rot90(mask)
        height, width = mask.shape
        left = {"left": x, "center": x - width / 2, "right": x - width}[ha]
        top = {"top": y, "center": y - height / 2, "bottom": y - height}[va]
        self.blend(mask, colour, (_pixel(top), _pixel(left)))

    def png(self) -> bytes:
        """The picture as PNG bytes."""
        return encode_png(_to_bytes(self.pixels))

    def halved(self) -> Raster:
        """The picture at half the width and height, each pixel the mean of four."""
        height, width = self.height // 2, self.width // 2
        smaller = Raster(width, height)
        blocks = self.pixels[: 2 * height, : 2 * width].reshape(height, 2, width, 2, 3)
        smaller.pixels = blocks.mean(axis=(1, 3))
        return smaller


def _to_bytes(pixels: np.ndarray) -> np.ndarray:
    """Colours in 0-1 as rounded bytes, a band of rows at a time.

    Eight times faster than one expression over the whole picture: its three
    temporaries of 5 MB each miss the CPU's cache; a band's stays in it.
    """
    out = np.empty(pixels.shape, dtype=np.uint8)
    scratch = np.empty((_BAND_ROWS, *pixels.shape[1:]), dtype=pixels.dtype)
    for top in range(0, len(pixels), _BAND_ROWS):
        rows = pixels[top : top + _BAND_ROWS]
        band = scratch[: len(rows)]
        np.multiply(rows, 255, out=band)
        band += 0.5
        out[top : top + len(rows)] = band  # truncates, as astype does: rounded half up
    return out


def encode_png(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of an ``(height, width, 3)`` uint8 array."""
    height, width, _ = rgb.shape
    rows = np.empty((height, 1 + 3 * width), dtype=np.uint8)
    flat = rgb.reshape(height, 3 * width)
    rows[:, 0] = 2  # the "up" filter
    rows[0, 1:] = flat[0]
    np.subtract(flat[1:], flat[:-1], out=rows[1:, 1:])
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(rows.tobytes(), ZLIB_LEVEL)),
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


@functools.lru_cache(maxsize=512)
def text_mask(text: str, size: float, align: str) -> np.ndarray:
    """The coverage (0-255) of ``text`` at ``size`` points, its lines aligned to ``align``.

    Kept per process: tick values, counts, class names and the first lines
    of titles recur in every picture; 512 texts of a byte per pixel are a
    few MB, also in a process that serves many jobs. Read-only, as shared.
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


def _line_mask(line: str, size: float) -> np.ndarray:
    """One line of text as coverage, its baseline at the same row whatever its letters."""
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
