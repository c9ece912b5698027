"""Batched multi-scale glimpse extraction (the "retina").

A location ``(x, y)`` in ``[-1, 1]^2`` maps to the continuous pixel point ``((x + 1) / 2 * W, (y + 1) / 2 * H)``
of an ``H x W`` canvas; patch ``i`` is the square of side ``patch_size * scale**i`` whose top-left pixel is
that point minus half the side, rounded to the nearest pixel (halves round up). Each patch is area-averaged
down to ``patch_size x patch_size`` (every output pixel is the mean of a ``scale**i x scale**i`` block) and
divided by 255; pixels outside the canvas read as 0. Each channel (C = 1 gray, 3 colour) has its own table and
the glimpse is ``(n_patches, C, p, p)``.

Area averages come from a summed-area table (integral image) built once per canvas: every output pixel
is four lookups, whatever the scale, and clamping the lookups to the table is exactly zero padding.
The sums are exact integers (int32); the only rounding is the final float32 division (exactly the
correctly rounded mean for canvases up to 256 px, whose sums fit float32's 24-bit mantissa).

The batched arithmetic is written once against a backend ``xp`` (:mod:`ram_env.backend`): numpy arrays by
default, torch tensors on a device for the torch backend; both give the same numbers.
"""

from __future__ import annotations

import math

import numpy as np

from ram_env.backend import NUMPY

MAX_CANVAS = 2048  # 255 * 2048**2 < 2**31: the int32 summed-area tables cannot overflow
MAX_PATCH = 2**20  # keeps every coordinate far from integer overflow


def integral_image(canvases, out=None, xp=NUMPY):
    """Summed-area tables ``(B, [C,] H+1, W+1)`` int32 of uint8 canvases ``(B, [C,] H, W)``, zero first row and column.

    ``table[b, c, y, x]`` is the sum of ``canvases[b, c, :y, :x]``. Written into ``out`` when given; arrays of the
    backend ``xp``.
    """
    *lead, h, w = canvases.shape
    if out is None:
        out = xp.empty((*lead, h + 1, w + 1), xp.int32)
    flat_out = out.reshape(-1, h + 1, w + 1)  # every plane of every canvas is one table (a view: out is contiguous)
    flat_out[:, 0, :] = 0
    flat_out[:, :, 0] = 0
    inner = flat_out[:, 1:, 1:]
    xp.cumsum(canvases.reshape(-1, h, w), 2, out=inner)  # along rows: contiguous, fast
    xp.cumsum(inner, 1, out=inner)
    return out


def _canvas_shape(canvas_size) -> tuple[int, int]:
    """``(height, width)`` from a side or a pair, or a ValueError."""
    pair = tuple(canvas_size) if isinstance(canvas_size, (tuple, list)) else (canvas_size, canvas_size)
    for value in pair:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"canvas_size must be a positive integer or a (height, width) pair, got {canvas_size!r}")
    if len(pair) != 2:
        raise ValueError(f"canvas_size must be a positive integer or a (height, width) pair, got {canvas_size!r}")
    return int(pair[0]), int(pair[1])


def suited(canvas_shape: tuple[int, int], scale: int = 2) -> dict:
    """Glimpse settings that suit a canvas: the paper's patches for 60 and 100 px, and alike in between.

    At 28 px this gives two 8 px patches where the paper's MNIST task (``RAM/MNIST-v0``) reads one.

    ``patch_size`` 8 below 48 px, 12 up to 128, a tenth of the side beyond; ``n_patches`` the fewest whose largest
    patch, doubled, covers the longer side; ``n_glimpses`` 6 up to 32 px, 8 beyond.
    """
    side = max(canvas_shape)
    patch = 8 if side < 48 else 12 if side <= 128 else side // 10
    patch = min(patch, min(canvas_shape))
    n = 1
    while 2 * patch * scale ** (n - 1) < side and n < 8:
        n += 1
    return dict(n_glimpses=6 if side <= 32 else 8, patch_size=patch, n_patches=n, scale=scale)


class Retina:
    """Extracts ``n_patches`` concentric patches around each of a batch of locations.

    :param canvas_size: side ``S`` of square canvases, or ``(height, width)``
    :param patch_size: side of every patch after downscaling
    :param n_patches: number of patches (scales)
    :param scale: each patch covers ``scale`` times the side of the previous one
    :param xp: the array backend of the tables, locations and glimpses (:mod:`ram_env.backend`); :meth:`one`
        is numpy's alone

    The channels come with the tables: ``(N, C, H+1, W+1)`` gives glimpses of C channels, ``(N, H+1, W+1)`` one.
    """

    def __init__(self, canvas_size, patch_size: int, n_patches: int, scale: int, xp=NUMPY):
        height, width = _canvas_shape(canvas_size)
        for name, value in (("patch_size", patch_size), ("n_patches", n_patches), ("scale", scale)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if patch_size > min(height, width):
            raise ValueError(f"patch_size {patch_size} is larger than the {height}x{width} canvas")
        if max(height, width) > MAX_CANVAS:
            raise ValueError(
                f"canvas_size {max(height, width)} is too large: the summed-area tables are int32, so at most "
                f"{MAX_CANVAS}"
            )
        if int(patch_size) * int(scale) ** (int(n_patches) - 1) > MAX_PATCH:
            raise ValueError(
                f"the largest patch, patch_size * scale**(n_patches - 1) = {patch_size} * {scale}**{n_patches - 1}, "
                f"is absurdly large (over {MAX_PATCH} pixels)"
            )
        self.xp = xp
        self.height, self.width = height, width
        self.canvas_size = height if height == width else (height, width)
        self.patch_size = int(patch_size)
        self.n_patches = int(n_patches)
        self.scale = int(scale)
        self.blocks = self.scale ** np.arange(self.n_patches, dtype=np.int64)  # canvas pixels per output pixel
        self.sizes = self.patch_size * self.blocks  # side of each patch in canvas pixels
        # Corner offsets of every output pixel inside each patch: (n_patches, patch_size + 1).
        corners = np.arange(self.patch_size + 1, dtype=np.int64)[None, :] * self.blocks[:, None]
        half = self.sizes / 2.0  # float64, as in top_left
        denom = (255.0 * self.blocks**2).astype(np.float32)  # per-patch divisor, exact in float32
        self._corners, self._half, self._denom = xp.asarray(corners), xp.asarray(half), xp.asarray(denom)
        self._scale_xy = xp.asarray(np.array([0.5 * width, 0.5 * height]))
        self._buffers: dict[tuple, tuple] = {}
        # For the one-location path: scalars per patch, and the clamped corner coordinates for every
        # top-left coordinate ``v`` a location in [-1, 1] can give, ``lut[v - lo]`` (saves np.clip calls), per axis.
        self._patches = []
        for i, (k, size, h) in enumerate(zip(self.blocks, self.sizes, half)):
            luts = []
            for side in (width, height):
                lo = math.floor(-h + 0.5)
                hi = math.floor(side - h + 0.5)
                luts.append((lo, np.clip(np.arange(lo, hi + 1)[:, None] + corners[i], 0, side).astype(np.intp)))
            (lo_x, lut_x), (lo_y, lut_y) = luts
            self._patches.append(
                (int(k), int(size), float(h), lo_x, lut_x, lo_y, lut_y[:, :, None], denom[i], corners[i])
            )

    def top_left(self, locations):
        """Top-left pixel ``(x, y)`` of each patch: ``(B, n_patches, 2)`` int64 for locations ``(B, 2)``."""
        xp = self.xp
        centre = (xp.asarray(locations, dtype=xp.float64) + 1.0) * self._scale_xy
        return xp.astype(xp.floor(centre[:, None, :] - self._half[None, :, None] + 0.5), xp.int64)

    def __call__(self, tables, locations, rows=None, out=None):
        """Glimpses ``(B, n_patches, C, patch_size, patch_size)`` float32 in ``[0, 1]``.

        :param tables: summed-area tables ``(N, [C,] H+1, W+1)`` from :func:`integral_image`
        :param locations: ``(B, 2)`` locations in ``[-1, 1]``
        :param rows: which table each location looks at (default: location ``k`` looks at table ``k``)
        :param out: optional float32 array ``(B, n_patches, C, p, p)`` to write the glimpses into
        """
        xp = self.xp
        p, n = self.patch_size, self.n_patches
        c = tables.shape[1] if tables.ndim == 4 else 1
        row, plane = self.width + 1, (self.width + 1) * (self.height + 1)
        b = len(locations)
        if out is None:
            out = xp.empty((b, n, c, p, p), xp.float32)
        if b == 0:
            return out
        tl = self.top_left(locations)
        xs = xp.clip_(tl[:, :, 0, None] + self._corners, 0, self.width)  # (B, n, p+1) columns of the corners
        ys = xp.clip_(tl[:, :, 1, None] + self._corners, 0, self.height)  # clamping to the table is zero padding
        ys *= row
        base = xp.arange(b) if rows is None else xp.asarray(rows, dtype=xp.int64)
        ys += (base * (c * plane))[:, None, None]
        flat, s, d = self._scratch(b, c)
        ys = ys[:, :, None, :] if c == 1 else ys[:, :, None, :] + (xp.arange(c) * plane)[:, None]  # (B, n, C, p+1)
        xp.add(ys[..., None], xs[:, :, None, None, :], out=flat)  # (B, n, C, p+1, p+1) flat indices of the corners
        xp.take(tables.reshape(-1), flat, out=s)
        # Block sums from differences over the whole flat buffer (contiguous, so fast); the entries that
        # straddle two rows, two planes or two patches are junk and never read.
        q = p + 1
        s, d = s.reshape(-1), d.reshape(-1)
        xp.subtract(s[1:], s[:-1], out=d[:-1])  # d[i] = s[i+1] - s[i]: column differences
        xp.subtract(d[q:-1], d[: -q - 1], out=s[: -q - 1])  # s[i] = d[i+q] - d[i]: the sum of block (j, l)
        sums = s.reshape(b, n, c, q, q)[..., :p, :p]
        xp.divide(sums, self._denom[None, :, None, None, None], out=out)
        return out

    def _scratch(self, b: int, c: int) -> tuple:
        """Scratch arrays for a batch of ``b`` locations of ``c`` channels, kept between calls (fresh ones fault)."""
        buffers = self._buffers.get((b, c))
        if buffers is None:
            if len(self._buffers) >= 3:  # the env's batch, plus a partial reset or two
                self._buffers.clear()
            q = self.patch_size + 1
            shape = (b, self.n_patches, c, q, q)
            xp = self.xp
            buffers = self._buffers[b, c] = (
                xp.empty(shape, xp.int64),
                xp.empty(shape, xp.int32),
                xp.empty(shape, xp.int32),
            )
        return buffers

    def one(self, table: np.ndarray, x: float, y: float, out: np.ndarray | None = None) -> np.ndarray:
        """The glimpse ``(n_patches, C, p, p)`` at one location ``(x, y)`` of one table ``([C,] H+1, W+1)``; numpy.

        Same numbers as :meth:`__call__` (same rounding, same arithmetic), without the batch overhead:
        a patch that lies inside the canvas is read as a strided view of the table.
        """
        if table.ndim == 2:
            table = table[None]
        p, width, height = self.patch_size, self.width, self.height
        if out is None:
            out = np.empty((self.n_patches, len(table), p, p), dtype=np.float32)
        cx = (float(x) + 1.0) * (0.5 * width)
        cy = (float(y) + 1.0) * (0.5 * height)
        for i, (k, size, half, lo_x, lut_x, lo_y, lut_y, denom, corners) in enumerate(self._patches):
            x0 = math.floor(cx - half + 0.5)
            y0 = math.floor(cy - half + 0.5)
            if x0 >= 0 and y0 >= 0 and x0 + size <= width and y0 + size <= height:
                c = table[:, y0 : y0 + size + 1 : k, x0 : x0 + size + 1 : k]
            elif 0 <= x0 - lo_x < len(lut_x) and 0 <= y0 - lo_y < len(lut_y):
                c = table[:, lut_y[y0 - lo_y], lut_x[x0 - lo_x]]
            else:  # a location outside [-1, 1]: the environment never asks for one, but stay exact
                c = table[:, np.clip(corners + y0, 0, height)[:, None], np.clip(corners + x0, 0, width)]
            d = c[..., 1:] - c[..., :-1]
            np.divide(d[:, 1:] - d[:, :-1], denom, out=out[i], dtype=np.float32)
        return out
