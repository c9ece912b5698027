"""Batched multi-scale glimpse extraction (the "retina").

A location ``(x, y)`` in ``[-1, 1]^2`` maps to the continuous pixel point ``((x + 1) / 2 * S, (y + 1) / 2 * S)``
of an ``S x S`` canvas; patch ``i`` is the square of side ``patch_size * scale**i`` whose top-left pixel is
that point minus half the side, rounded to the nearest pixel (halves round up). Each patch is area-averaged
down to ``patch_size x patch_size`` (every output pixel is the mean of a ``scale**i x scale**i`` block) and
divided by 255; pixels outside the canvas read as 0.

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
    """Summed-area tables ``(B, S+1, S+1)`` int32 of uint8 canvases ``(B, S, S)``, with a zero first row and column.

    ``table[b, y, x]`` is the sum of ``canvases[b, :y, :x]``. Written into ``out`` when given; arrays of the
    backend ``xp``.
    """
    b, h, w = canvases.shape
    if out is None:
        out = xp.empty((b, h + 1, w + 1), xp.int32)
    out[:, 0, :] = 0
    out[:, :, 0] = 0
    inner = out[:, 1:, 1:]
    xp.cumsum(canvases, 2, out=inner)  # along rows: contiguous, fast
    xp.cumsum(inner, 1, out=inner)
    return out


class Retina:
    """Extracts ``n_patches`` concentric patches around each of a batch of locations.

    :param canvas_size: side ``S`` of the square canvases
    :param patch_size: side of every patch after downscaling
    :param n_patches: number of patches (scales)
    :param scale: each patch covers ``scale`` times the side of the previous one
    :param xp: the array backend of the tables, locations and glimpses (:mod:`ram_env.backend`); :meth:`one`
        is numpy's alone
    """

    def __init__(self, canvas_size: int, patch_size: int, n_patches: int, scale: int, xp=NUMPY):
        for name, value in (
            ("canvas_size", canvas_size),
            ("patch_size", patch_size),
            ("n_patches", n_patches),
            ("scale", scale),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if patch_size > canvas_size:
            raise ValueError(f"patch_size {patch_size} is larger than the {canvas_size}x{canvas_size} canvas")
        if canvas_size > MAX_CANVAS:
            raise ValueError(
                f"canvas_size {canvas_size} is too large: the summed-area tables are int32, so at most {MAX_CANVAS}"
            )
        if int(patch_size) * int(scale) ** (int(n_patches) - 1) > MAX_PATCH:
            raise ValueError(
                f"the largest patch, patch_size * scale**(n_patches - 1) = {patch_size} * {scale}**{n_patches - 1}, "
                f"is absurdly large (over {MAX_PATCH} pixels)"
            )
        self.xp = xp
        self.canvas_size = int(canvas_size)
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
        self._buffers: dict[int, tuple] = {}
        # For the one-location path: scalars per patch, and the clamped corner coordinates for every
        # top-left coordinate ``v`` a location in [-1, 1] can give, ``lut[v - lo]`` (saves np.clip calls).
        self._patches = []
        for i, (k, size, h) in enumerate(zip(self.blocks, self.sizes, half)):
            lo = math.floor(-h + 0.5)
            hi = math.floor(self.canvas_size - h + 0.5)
            lut = np.clip(np.arange(lo, hi + 1)[:, None] + corners[i], 0, self.canvas_size).astype(np.intp)
            self._patches.append((int(k), int(size), float(h), lo, lut, lut[:, :, None], denom[i], corners[i]))

    def top_left(self, locations):
        """Top-left pixel ``(x, y)`` of each patch: ``(B, n_patches, 2)`` int64 for locations ``(B, 2)``."""
        xp = self.xp
        centre = (xp.asarray(locations, dtype=xp.float64) + 1.0) * (0.5 * self.canvas_size)
        return xp.astype(xp.floor(centre[:, None, :] - self._half[None, :, None] + 0.5), xp.int64)

    def __call__(self, tables, locations, rows=None, out=None):
        """Glimpses ``(B, n_patches, 1, patch_size, patch_size)`` float32 in ``[0, 1]``.

        :param tables: summed-area tables ``(N, S+1, S+1)`` from :func:`integral_image`
        :param locations: ``(B, 2)`` locations in ``[-1, 1]``
        :param rows: which table each location looks at (default: location ``k`` looks at table ``k``)
        :param out: optional float32 array ``(B, n_patches, 1, p, p)`` to write the glimpses into
        """
        xp = self.xp
        s, p, n = self.canvas_size, self.patch_size, self.n_patches
        side = s + 1
        b = len(locations)
        if out is None:
            out = xp.empty((b, n, 1, p, p), xp.float32)
        if b == 0:
            return out
        tl = self.top_left(locations)
        xs = xp.clip_(tl[:, :, 0, None] + self._corners, 0, s)  # (B, n, p+1) columns of the corners
        ys = xp.clip_(tl[:, :, 1, None] + self._corners, 0, s)  # clamping to the table is zero padding
        ys *= side
        base = xp.arange(b) if rows is None else xp.asarray(rows, dtype=xp.int64)
        ys += (base * (side * side))[:, None, None]
        flat, c, d = self._scratch(b)
        xp.add(ys[:, :, :, None], xs[:, :, None, :], out=flat)  # (B, n, p+1, p+1) flat indices of the corners
        xp.take(tables.reshape(-1), flat, out=c)
        # Block sums from differences over the whole flat buffer (contiguous, so fast); the entries that
        # straddle two rows or two patches are junk and never read.
        q = p + 1
        c, d = c.reshape(-1), d.reshape(-1)
        xp.subtract(c[1:], c[:-1], out=d[:-1])  # d[i] = c[i+1] - c[i]: column differences
        xp.subtract(d[q:-1], d[: -q - 1], out=c[: -q - 1])  # c[i] = d[i+q] - d[i]: the sum of block (j, l)
        sums = c.reshape(b, n, q, q)[:, :, :p, :p]
        xp.divide(sums, self._denom[None, :, None, None], out=out[:, :, 0])
        return out

    def _scratch(self, b: int) -> tuple:
        """Scratch arrays for a batch of ``b`` locations, kept between calls (fresh ones cost page faults)."""
        buffers = self._buffers.get(b)
        if buffers is None:
            if len(self._buffers) >= 3:  # the env's batch, plus a partial reset or two
                self._buffers.clear()
            q = self.patch_size + 1
            shape = (b, self.n_patches, q, q)
            xp = self.xp
            buffers = self._buffers[b] = (
                xp.empty(shape, xp.int64),
                xp.empty(shape, xp.int32),
                xp.empty(shape, xp.int32),
            )
        return buffers

    def one(self, table: np.ndarray, x: float, y: float, out: np.ndarray | None = None) -> np.ndarray:
        """The glimpse ``(n_patches, 1, p, p)`` at one location ``(x, y)`` of one table ``(S+1, S+1)``; numpy only.

        Same numbers as :meth:`__call__` (same rounding, same arithmetic), without the batch overhead:
        a patch that lies inside the canvas is read as a strided view of the table.
        """
        s, p = self.canvas_size, self.patch_size
        if out is None:
            out = np.empty((self.n_patches, 1, p, p), dtype=np.float32)
        scale = 0.5 * s
        cx = (float(x) + 1.0) * scale
        cy = (float(y) + 1.0) * scale
        for i, (k, size, half, lo, lut, lut_col, denom, corners) in enumerate(self._patches):
            x0 = math.floor(cx - half + 0.5)
            y0 = math.floor(cy - half + 0.5)
            if x0 >= 0 and y0 >= 0 and x0 + size <= s and y0 + size <= s:
                c = table[y0 : y0 + size + 1 : k, x0 : x0 + size + 1 : k]
            elif 0 <= x0 - lo < len(lut) and 0 <= y0 - lo < len(lut):
                c = table[lut_col[y0 - lo], lut[x0 - lo]]
            else:  # a location outside [-1, 1]: the environment never asks for one, but stay exact
                c = table[np.clip(corners + y0, 0, s)[:, None], np.clip(corners + x0, 0, s)]
            d = c[:, 1:] - c[:, :-1]
            np.divide(d[1:] - d[:-1], denom, out=out[i, 0], dtype=np.float32)
        return out
