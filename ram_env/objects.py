"""Several digits on one canvas, each at its own size: placement without overlap, reading order, resampling.

Used by :mod:`ram_env.canvas` when a task asks for ``n_objects > 1`` or a ``digit_size`` other than the source
images' 28 px; the paper's tasks never come here, so their episodes (and random draws) are unchanged.

- Sizes: each digit's side is uniform over the integers ``lo .. hi`` of ``digit_size``.
- Placement: each digit's top-left is uniform over the positions that keep it on the canvas; a canvas whose
  digits' boxes overlap is drawn again (all its digits), up to :data:`ROUNDS` times, after which the few left
  take the cells of a grid of ``hi``-px cells in order (a guarantee for tight canvases, not the distribution).
- Reading order: digits are sorted by the x of their centres, left to right, then by the y, top to bottom;
  object 0 is then the leftmost digit, whichever image the episode was started on.
- Resampling: area averaging. Output pixel ``i`` of an ``s``-px digit covers source pixels ``[i*D/s, (i+1)*D/s)``
  of a ``D``-px image and is the overlap-weighted mean of them, rounded to the nearest integer (halves up). The
  weights are integers over ``D * D``, so the sums are exact in float64 on every backend: numpy and torch give
  the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

ROUNDS = 100
_DRAW_BITS = 20  # offsets are (r * positions) >> 20 for r uniform in [0, 2**20): exact integers on both backends


@dataclass
class Objects:
    """The digits of a batch of canvases, in reading order; int64 arrays indexed by batch row."""

    index: Any  # (B, K) image of each digit
    offset: Any  # (B, K, 2) top-left (x, y) on the canvas
    size: Any  # (B, K) side in pixels

    def __getitem__(self, rows) -> "Objects":
        return Objects(self.index[rows], self.offset[rows], self.size[rows])

    def to(self, xp) -> "Objects":
        return Objects(xp.asarray(self.index), xp.asarray(self.offset), xp.asarray(self.size))

    def centres(self, canvas_size: int, xp):
        """Each digit's centre as a location ``(B, K, 2)`` float32: pixel ``offset + size / 2`` mapped to [-1, 1]."""
        twice = 2 * self.offset + self.size[..., None]  # twice the centre, in pixels: an exact integer
        return xp.astype(xp.astype(twice, xp.float64) / canvas_size - 1.0, xp.float32)


def fits(canvas_size: int, n_objects: int, largest: int) -> bool:
    """Whether ``n_objects`` digits of ``largest`` px always fit a canvas without overlap (a grid holds them)."""
    return (canvas_size // largest) ** 2 >= n_objects


def sample(canvas_size: int, n_objects: int, digit_size: tuple[int, int], index, n_images: int, rng, xp) -> Objects:
    """Sizes, other images, and non-overlapping positions of the ``n_objects`` digits of each canvas.

    Digit 0 of row ``b`` is image ``index[b]`` before sorting; the others are uniform over the ``n_images``.
    """
    b, k = len(index), n_objects
    lo, hi = digit_size
    if hi > lo:
        size = xp.integers(rng, hi - lo + 1, (b, k)) + lo
    else:
        size = xp.zeros((b, k), xp.int64) + lo
    images = xp.zeros((b, k), xp.int64)
    images[:, 0] = xp.asarray(index, dtype=xp.int64)
    if k > 1:
        images[:, 1:] = xp.integers(rng, n_images, (b, k - 1))
    offset = _place(canvas_size, size, hi, rng, xp)
    return _reading_order(Objects(images, offset, size), canvas_size, xp)


def _overlap(offset, size, xp):
    """``(B,)`` bool: whether any two of a row's boxes share a pixel."""
    k = size.shape[1]
    lo = offset
    hi = offset + size[..., None]
    cross = (lo[:, :, None, :] < hi[:, None, :, :]) & (lo[:, None, :, :] < hi[:, :, None, :])  # (B, K, K, 2)
    both = cross[..., 0] & cross[..., 1]
    other = xp.asarray(~np.eye(k, dtype=bool))
    return (both & other).reshape(len(size), -1).any(1)


def _place(canvas_size: int, size, largest: int, rng, xp):
    """Top-left corners ``(B, K, 2)`` of boxes of ``size`` on the canvas, without overlap (see the module)."""
    b, k = size.shape
    offset = xp.zeros((b, k, 2), xp.int64)
    todo = np.arange(b)
    for _ in range(ROUNDS):
        at = xp.asarray(todo)
        positions = (canvas_size - size[at] + 1)[..., None]
        drawn = (xp.integers(rng, 2**_DRAW_BITS, (len(todo), k, 2)) * positions) // 2**_DRAW_BITS
        offset[at] = drawn
        if k == 1:
            return offset
        todo = todo[xp.to_numpy(_overlap(drawn, size[at], xp))]
        if not len(todo):
            return offset
    cells = canvas_size // largest  # the rare rows left: one digit per grid cell, in row-major order
    grid = np.array([[(c % cells) * largest, (c // cells) * largest] for c in range(k)], dtype=np.int64)
    offset[xp.asarray(todo)] = xp.asarray(np.broadcast_to(grid, (len(todo), k, 2)).copy())
    return offset


def _reading_order(objects: Objects, canvas_size: int, xp) -> Objects:
    """The same digits sorted left to right by centre x, then top to bottom by centre y."""
    b, k = objects.size.shape
    if k == 1:
        return objects
    twice = 2 * objects.offset + objects.size[..., None]
    key = twice[..., 0] * (4 * canvas_size + 4) + twice[..., 1]  # distinct: boxes that do not overlap
    rank = (key[:, None, :] < key[:, :, None]).sum(-1)  # (B, K): how many digits come before each
    rows = xp.arange(b)[:, None]
    out = Objects(xp.zeros((b, k), xp.int64), xp.zeros((b, k, 2), xp.int64), xp.zeros((b, k), xp.int64))
    out.index[rows, rank] = objects.index
    out.offset[rows, rank] = objects.offset
    out.size[rows, rank] = objects.size
    return out


_weights: dict = {}


def weights(source: int, side: int, xp):
    """Integer area weights ``(side, source)`` float64: ``W[i, j]`` is how much of output pixel ``i`` source pixel
    ``j`` covers, in units of ``1/side`` source pixels; every row sums to ``source``."""
    key = (source, side, xp.name, str(xp.device))
    if key not in _weights:
        out = np.arange(side)[:, None] * source, (np.arange(side)[:, None] + 1) * source
        src = np.arange(source)[None, :] * side, (np.arange(source)[None, :] + 1) * side
        w = np.clip(np.minimum(out[1], src[1]) - np.maximum(out[0], src[0]), 0, None)
        _weights[key] = xp.asarray(w.astype(np.float64))
    return _weights[key]


def resample(images, side: int, xp):
    """uint8 images ``(B, [C,] D, D)`` area-averaged to ``(B, [C,] side, side)`` uint8 (exact; see the module)."""
    source = images.shape[-1]
    if side == source:
        return images
    w = weights(source, side, xp)
    sums = w @ xp.astype(images, xp.float64) @ w.T  # exact integers: products and sums stay below 2**53
    half = (source * source) // 2
    return xp.astype((xp.astype(sums, xp.int64) + half) // (source * source), xp.uint8)


def paste(canvases, images, objects: Objects, xp) -> None:
    """Draw every image (resampled to its size) on ``canvases`` ``(B, C, S, S)``, keeping the brighter value.

    ``images`` are ``(N, C, D, D)``.
    """
    b, k = objects.size.shape
    s, c = canvases.shape[-1], canvases.shape[1]
    flat = canvases.reshape(-1)
    host_size = xp.to_numpy(objects.size)
    for j in range(k):
        for side in np.unique(host_size[:, j]).tolist():
            rows = np.flatnonzero(host_size[:, j] == side)
            at = xp.asarray(rows)
            digits = resample(images[objects.index[at, j]], int(side), xp)
            windows = xp.windows(flat, s, int(side), int(side), c, s * s)
            top_left = objects.offset[at, j]
            start = at * (c * s * s) + top_left[:, 1] * s + top_left[:, 0]
            windows[start] = xp.maximum(windows[start], digits)
